//! The guest-visible PARange `P` of SPEC §1: what Moat reports in `ID_AA64MMFR0_EL1.PARange`
//! and where it starts injecting Address Size Faults.

use crate::schema::ParangeMode;

/// The physical address sizes that `ID_AA64MMFR0_EL1.PARange` can encode, in bits, smallest
/// first (Arm ARM, `ID_AA64MMFR0_EL1.PARange`: 0b0000..=0b0110).
pub const PARANGE_ENCODINGS: [u32; 7] = [32, 36, 40, 42, 44, 48, 52];

/// The guest-visible PARange `P`, in bits, for a VM of IPA size `ipa_bits` (`S`) on a machine
/// whose IPA limit is `ipa_limit` (`L`): `L` in [`ParangeMode::Max`]; in
/// [`ParangeMode::Tight`] the smallest encoding that covers `S`. Never above `L`, so for a
/// valid VM (`S <= L`) `S <= P <= L`.
#[must_use]
pub fn guest_parange_bits(mode: ParangeMode, ipa_bits: u32, ipa_limit: u32) -> u32 {
    match mode {
        ParangeMode::Max => ipa_limit,
        ParangeMode::Tight => PARANGE_ENCODINGS
            .into_iter()
            .find(|&bits| bits >= ipa_bits)
            .map_or(ipa_limit, |bits| bits.min(ipa_limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_mode_shows_the_ipa_limit_whatever_the_vm_size() {
        assert_eq!(guest_parange_bits(ParangeMode::Max, 32, 48), 48);
        assert_eq!(guest_parange_bits(ParangeMode::Max, 40, 44), 44);
    }

    #[test]
    fn tight_mode_rounds_up_to_the_next_encoding() {
        let cases = [
            (32, 32),
            (33, 36),
            (36, 36),
            (39, 40),
            (41, 42),
            (43, 44),
            (45, 48),
        ];
        for (ipa_bits, parange) in cases {
            assert_eq!(
                guest_parange_bits(ParangeMode::Tight, ipa_bits, 48),
                parange,
                "S={ipa_bits}"
            );
        }
    }

    #[test]
    fn tight_mode_never_goes_above_the_limit() {
        assert_eq!(guest_parange_bits(ParangeMode::Tight, 43, 42), 42);
        assert_eq!(guest_parange_bits(ParangeMode::Tight, 49, 48), 48);
    }
}
