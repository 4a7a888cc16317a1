//! Territory operations (SPEC §4): upsert, read, nearby, capture, fortify.
