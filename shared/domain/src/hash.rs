//! The one stable hash of the code base (FNV-1a, 64 bit): fingerprints that are stored or
//! compared between deployments, and the choice of a shard. std's hasher is neither stable
//! across Rust releases nor meant to be.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a of `bytes`: the same input gives the same value on every platform and release.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(OFFSET_BASIS, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The shard (`0..shards`) that `input` always lands on; `shards = 0` counts as one.
pub fn shard_of(input: &str, shards: u32) -> u32 {
    let shard = stable_hash(input.as_bytes()) % u64::from(shards.max(1));
    u32::try_from(shard).expect("below a u32 shard count")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv_1a() {
        // The published FNV-1a 64-bit test vectors.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn shards_are_stable_in_range_and_spread() {
        let mut used = std::collections::BTreeSet::new();
        for i in 0..1000 {
            let id = format!("event-{i}");
            let s = shard_of(&id, 8);
            assert!(s < 8);
            assert_eq!(s, shard_of(&id, 8));
            used.insert(s);
        }
        assert_eq!(used.len(), 8, "1,000 ids reach every one of 8 shards");
        assert_eq!(shard_of("x", 0), 0);
        assert_eq!(shard_of("x", 1), 0);
    }
}
