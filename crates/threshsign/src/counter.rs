//! Counter values: packing (view, sequence number) into one `u64`.
//!
//! Trusted counters only move forward, so a counter value that means "slot s
//! of view v" must order first by view, then by slot: after a view change a
//! replica must be able to sign in the new view whatever it signed in the
//! old one, and inside a view the slots must be signed in increasing order
//! (digest ambiguity (d): signing s+1 makes s unsignable, so the caller
//! serialises signing per counter). `tv = view << 40 | seq` does both. Forty
//! bits of sequence number (10^12 slots) because Hybster's sequence numbers
//! run on across views and never restart; 24 bits of view (16 M view changes).

/// Bits of the sequence number in a packed value.
pub const SEQ_BITS: u32 = 40;
/// Largest sequence number that packs.
pub const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;
/// Largest view that packs.
pub const MAX_VIEW: u64 = (1 << (64 - SEQ_BITS)) - 1;

/// `view << 40 | seq`, or `None` when either does not fit.
pub fn pack_view_seq(view: u64, seq: u64) -> Option<u64> {
    if view > MAX_VIEW || seq > MAX_SEQ {
        return None;
    }
    Some(view << SEQ_BITS | seq)
}

/// The (view, seq) a packed value stands for.
pub fn unpack_view_seq(value: u64) -> (u64, u64) {
    (value >> SEQ_BITS, value & MAX_SEQ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_orders_by_view_then_seq() {
        let a = pack_view_seq(0, MAX_SEQ).unwrap();
        let b = pack_view_seq(1, 0).unwrap();
        let c = pack_view_seq(1, 1).unwrap();
        assert!(a < b && b < c);
        assert_eq!(unpack_view_seq(c), (1, 1));
        assert_eq!(unpack_view_seq(pack_view_seq(MAX_VIEW, MAX_SEQ).unwrap()), (MAX_VIEW, MAX_SEQ));
        assert_eq!(pack_view_seq(MAX_VIEW + 1, 0), None);
        assert_eq!(pack_view_seq(0, MAX_SEQ + 1), None);
    }
}
