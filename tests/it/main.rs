//! Integration tests against the local AWS emulator: one test binary, one module per area.

mod api;
mod budgets;
mod demo;
mod faults;
mod hostile;
mod liveops;
mod realtime;
mod reward_scale;
mod scores;
mod soak;
mod stack;
mod store;
mod workflows;
