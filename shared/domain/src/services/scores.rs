//! Battle event ingestion and score reads (SPEC §5, §6).
