//! Integration tests against the local AWS emulator: one test binary, one module per area.

mod api;
mod budgets;
mod demo;
mod hostile;
mod realtime;
mod scores;
mod stack;
mod store;
mod workflows;
