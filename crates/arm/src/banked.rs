//! Where the AArch32 general-purpose registers of each mode live in AArch64 state ("Mapping of
//! the general-purpose registers between the Execution states", DDI 0487 D1): the EL2 trap
//! frame holds `X0`..`X30`, and an AArch32 guest's `R<n>` in its current mode is one of them.

use crate::pstate::Aarch32Mode;

/// `R13` (SP) and `R14` (LR).
const SP: u8 = 13;
const LR: u8 = 14;

/// The AArch64 register index (`X<n>`) holding AArch32 register `r` of `mode`, or `None` for
/// `R15` (the PC), `LR_hyp` (which is `ELR_hyp`, not a general-purpose register), Monitor mode
/// (EL3's) and reserved modes.
#[must_use]
pub const fn aarch64_home(mode: Aarch32Mode, r: u8) -> Option<usize> {
    use Aarch32Mode as M;
    let x = match (mode, r) {
        (_, 0..=7) => r,
        (M::Monitor | M::Reserved(_), _) | (_, 15..) => return None,
        (M::Fiq, 8..=12) => r + 16,
        (_, 8..=12) => r,
        (M::User | M::System, SP | LR) => r,
        (M::Hyp, SP) => 15,
        (M::Hyp, _) => return None,
        (M::Irq, LR) => 16,
        (M::Irq, _) => 17,
        (M::Supervisor, LR) => 18,
        (M::Supervisor, _) => 19,
        (M::Abort, LR) => 20,
        (M::Abort, _) => 21,
        (M::Undefined, LR) => 22,
        (M::Undefined, _) => 23,
        (M::Fiq, SP) => 29,
        (M::Fiq, _) => 30,
    };
    Some(x as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Aarch32Mode as M;

    #[test]
    fn banked_sp_and_lr_homes_match_the_arm_arm_table() {
        // (mode, SP home, LR home)
        let table = [
            (M::User, Some(13), Some(14)),
            (M::System, Some(13), Some(14)),
            (M::Hyp, Some(15), None),
            (M::Irq, Some(17), Some(16)),
            (M::Supervisor, Some(19), Some(18)),
            (M::Abort, Some(21), Some(20)),
            (M::Undefined, Some(23), Some(22)),
            (M::Fiq, Some(29), Some(30)),
            (M::Monitor, None, None),
        ];
        for (mode, sp, lr) in table {
            assert_eq!(aarch64_home(mode, 13), sp, "SP_{mode:?}");
            assert_eq!(aarch64_home(mode, 14), lr, "LR_{mode:?}");
        }
    }

    #[test]
    fn r8_to_r12_are_banked_only_in_fiq_mode() {
        for r in 8..=12u8 {
            assert_eq!(aarch64_home(M::Supervisor, r), Some(usize::from(r)));
            assert_eq!(aarch64_home(M::Fiq, r), Some(usize::from(r) + 16));
        }
    }

    #[test]
    fn r0_to_r7_are_shared_and_the_pc_has_no_home() {
        for mode in [M::User, M::Fiq, M::Abort, M::Hyp] {
            assert_eq!(aarch64_home(mode, 7), Some(7));
            assert_eq!(aarch64_home(mode, 15), None);
        }
    }
}
