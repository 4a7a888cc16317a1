//! The reward saga steps (SPEC §7) and an in-process runner of the saga.
