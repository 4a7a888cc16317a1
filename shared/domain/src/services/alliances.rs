//! Alliance operations (SPEC §8): create, invite, accept, decline, leave, dissolve.
