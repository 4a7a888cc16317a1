//! Battle operations (SPEC §5): create, read, resolve.
