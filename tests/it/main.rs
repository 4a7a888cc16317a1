//! Integration tests against the local AWS emulator: one test binary, one module per area.

mod store;
