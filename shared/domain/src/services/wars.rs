//! War operations (SPEC §2, §3, §8): declare, join, surrender, cancel, phase moves, final tally.
