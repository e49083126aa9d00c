//! The SMMUv3 structures Moat writes and reads (Arm IHI 0070, "SMMU architecture version 3"),
//! encoded by their field names: stream table entries (5.2 "STE, Stream Table Entry"),
//! commands (chapter 4), event records (7.3) and global errors (6.3.19 `SMMU_GERROR`).
//!
//! **Stage 2, not stage 1.** A device assigned to a VM translates its DMA through the VM's own
//! stage-2 tables with the VM's VMID (`STE.Config` = 0b110: stage 1 bypass, stage 2
//! translate): one set of tables, which Moat writes and no guest can, so a device reaches
//! exactly the memory the VM's CPUs reach. This needs an SMMU with stage 2
//! (`SMMU_IDR0.S2P`): QEMU 10.0.2's `virt` SMMUv3 has it (nested stage 1 + 2; measured,
//! issue 12), QEMU 7.2's only stage 1 — on 7.2 Moat refuses assignment at boot rather than
//! fall back to a stage-1 mirror of the VM's map. The SMMU's own input size bounds the
//! VM's IPA space (`STE.S2T0SZ` ≥ 64 − IAS; QEMU's OAS, hence IAS, is 44 bits), which the
//! configuration checks before boot.
//!
//! All structures are little-endian 64-bit words; bit n of a structure is bit n mod 64 of
//! word n / 64, as the specification numbers them.

pub mod cmd;
pub mod event;
pub mod gerror;
pub mod idr;
pub mod regs;
pub mod ste;

pub use cmd::{CmdSync, Command, CompletionSignal};
pub use event::{Class, Event, EventKind, FaultRecord};
pub use gerror::GlobalErrors;
pub use idr::SmmuFeatures;
pub use ste::{Stage2Ste, Ste, SteError};

/// A field of a structure made of 64-bit words, numbered over the whole structure as IHI 0070
/// gives them (`S2VMID, bits [143:128]`): a [`moat_arm::field::Field`] of one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    word: usize,
    field: moat_arm::field::Field,
}

impl Field {
    /// The field `[msb:lsb]`.
    ///
    /// # Panics
    ///
    /// When the field spans two words (a mistake in a layout table, caught at compile time
    /// for the constants).
    #[must_use]
    pub const fn bits(msb: u32, lsb: u32) -> Self {
        assert!(
            msb >= lsb && msb / 64 == lsb / 64,
            "a field lies in one word"
        );
        Self {
            word: (lsb / 64) as usize,
            field: moat_arm::field::Field::new(lsb % 64, msb - lsb + 1),
        }
    }

    /// The one-bit field `[bit]`.
    #[must_use]
    pub const fn bit(bit: u32) -> Self {
        Self::bits(bit, bit)
    }

    /// The field's value in `words`.
    #[must_use]
    pub fn get(self, words: &[u64]) -> u64 {
        self.field.get(words[self.word])
    }

    /// Sets the field in `words` to `value`.
    ///
    /// # Panics
    ///
    /// When `value` does not fit the field: the caller computed a value the structure cannot
    /// hold, a bug in Moat.
    pub fn set(self, words: &mut [u64], value: u64) {
        assert!(
            value <= self.field.max(),
            "{value:#x} does not fit a {}-bit field",
            self.field.width()
        );
        words[self.word] = self.field.insert(words[self.word], value);
    }
}

#[cfg(test)]
mod tests;
