//! Integration tests against the local AWS emulator: one test binary, one module per area.

mod api;
mod demo;
mod realtime;
mod stack;
mod store;
mod workflows;
