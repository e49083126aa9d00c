//! Stream table entries (IHI 0070, 5.2 "STE, Stream Table Entry"): 64 bytes per stream ID in
//! a linear stream table (`SMMU_STRTAB_BASE_CFG.FMT` = linear).

use super::Field;
use moat_arm::addr::Pa;
use moat_stage2::geometry::Geometry;

/// `V`, bit [0]: the STE is valid.
pub const V: Field = Field::bit(0);
/// `Config`, bits [3:1]: 0b000 abort, 0b100 bypass, 0b101 stage 1, 0b110 stage 2, 0b111
/// both.
pub const CONFIG: Field = Field::bits(3, 1);
/// `MEV`, bit [83]: events of this stream may be merged.
pub const MEV: Field = Field::bit(83);
/// `EATS`, bits [93:92]: ATS; 0b00 = ATS translation requests are refused.
pub const EATS: Field = Field::bits(93, 92);
/// `SHCFG`, bits [109:108]: 0b01 = use the incoming Shareability.
pub const SHCFG: Field = Field::bits(109, 108);
/// `S2VMID`, bits [143:128]: the VMID that tags stage-2 TLB entries.
pub const S2VMID: Field = Field::bits(143, 128);
/// `S2T0SZ`, bits [165:160]: 64 − IPA bits, as `VTCR_EL2.T0SZ`.
pub const S2T0SZ: Field = Field::bits(165, 160);
/// `S2SL0`, bits [167:166]: the start level, as `VTCR_EL2.SL0`.
pub const S2SL0: Field = Field::bits(167, 166);
/// `S2IR0`, bits [169:168]: inner cacheability of table walks (0b01 WB RA WA).
pub const S2IR0: Field = Field::bits(169, 168);
/// `S2OR0`, bits [171:170]: outer cacheability of table walks.
pub const S2OR0: Field = Field::bits(171, 170);
/// `S2SH0`, bits [173:172]: shareability of table walks (0b11 Inner Shareable).
pub const S2SH0: Field = Field::bits(173, 172);
/// `S2TG`, bits [175:174]: the granule (0b00 4 KiB).
pub const S2TG: Field = Field::bits(175, 174);
/// `S2PS`, bits [178:176]: the output size, as `VTCR_EL2.PS`.
pub const S2PS: Field = Field::bits(178, 176);
/// `S2AA64`, bit [179]: VMSAv8-64 descriptors.
pub const S2AA64: Field = Field::bit(179);
/// `S2ENDI`, bit [180]: 0 = little-endian tables.
pub const S2ENDI: Field = Field::bit(180);
/// `S2AFFD`, bit [181]: 1 = no Access flag faults.
pub const S2AFFD: Field = Field::bit(181);
/// `S2S`, bit [185]: 1 = a stage-2 fault stalls the transaction.
pub const S2S: Field = Field::bit(185);
/// `S2R`, bit [186]: 1 = a stage-2 fault is recorded in the event queue.
pub const S2R: Field = Field::bit(186);
/// `S2TTB`, bits [243:196]: the stage-2 table base, address bits [51:4].
pub const S2TTB: Field = Field::bits(243, 196);

/// `Config` values (5.2, `Config`).
mod config {
    /// No traffic passes; an abort is reported to the device, no event recorded.
    pub const ABORT: u64 = 0b000;
    /// Stage 1 bypass, stage 2 translates.
    pub const STAGE2: u64 = 0b110;
}

/// `S2IR0`/`S2OR0` 0b01: Write-Back cacheable, Read-Allocate, Write-Allocate — as
/// `VTCR_EL2.IRGN0`/`ORGN0` for the same tables.
const WB_RA_WA: u64 = 0b01;
/// `S2SH0` 0b11: Inner Shareable, as `VTCR_EL2.SH0`.
const INNER_SHAREABLE: u64 = 0b11;
/// `S2TG` 0b00: 4 KiB.
const GRANULE_4K: u64 = 0b00;
/// `SHCFG` 0b01: the incoming Shareability.
const SHCFG_INCOMING: u64 = 0b01;
/// The `PARange`/`S2PS` encodings in order (5.2, `S2PS`).
const PS_BITS: [u32; 6] = [32, 36, 40, 42, 44, 48];

/// One stream table entry: 8 words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ste(pub [u64; 8]);

impl Ste {
    /// `V` = 0: every field IGNORED; a transaction is terminated and `C_BAD_STE` recorded.
    pub const INVALID: Self = Self([0; 8]);

    /// `V` = 1, `Config` = abort: the stream's transactions are aborted without an event —
    /// what every stream not assigned to a VM gets.
    #[must_use]
    pub fn abort() -> Self {
        let mut ste = Self::INVALID;
        V.set(&mut ste.0, 1);
        CONFIG.set(&mut ste.0, config::ABORT);
        ste
    }

    /// The field's value.
    #[must_use]
    pub fn get(&self, field: Field) -> u64 {
        field.get(&self.0)
    }
}

/// What a stage-2 STE is made from: the VM's stage 2 as its CPUs use it, and the SMMU's
/// address sizes.
#[derive(Clone, Copy, Debug)]
pub struct Stage2Ste<'a> {
    /// The VM's VMID (`VTTBR_EL2.VMID`).
    pub vmid: u16,
    /// The VM's stage-2 geometry (`VTCR_EL2`).
    pub geometry: &'a Geometry,
    /// The root of the VM's stage-2 tables (`VTTBR_EL2.BADDR`).
    pub root: Pa,
    /// The SMMU's output address size in bits (`SMMU_IDR5.OAS`).
    pub oas_bits: u32,
    /// The SMMU's input address size in bits: the OAS, or 40 if larger and the SMMU reads
    /// VMSAv8-32 tables (IHI 0070, 3.4 "Address sizes").
    pub ias_bits: u32,
}

/// Why a VM's stage 2 cannot be given to the SMMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteError {
    /// The VM's IPA space is larger than the SMMU's input size: `S2T0SZ` would be below its
    /// minimum, 64 − IAS (5.2, `S2T0SZ`), and the STE ILLEGAL.
    IpaTooLarge {
        /// The VM's IPA size.
        ipa_bits: u32,
        /// The SMMU's input size.
        ias_bits: u32,
    },
    /// The SMMU's output size is none of 32, 36, 40, 42, 44, 48.
    UnknownOas(u32),
    /// The table root is not 4 KiB aligned or lies beyond the output size.
    BadRoot(Pa),
}

impl Stage2Ste<'_> {
    /// The STE that translates the stream's DMA through the VM's stage 2: `V`, `Config` =
    /// stage 2 only, `S2VMID` the VM's, `S2T0SZ`/`S2SL0`/`S2TG` as in `VTCR_EL2` (4 KiB),
    /// table walks Inner Shareable WB-RA-WA as the CPUs', `S2PS` the smaller of the VM's PA
    /// limit and the SMMU's OAS, `S2AA64`, faults recorded (`S2R`) and terminated, not
    /// stalled (`S2S` = 0), `S2AFFD` = 0 (Moat sets the Access flag in every descriptor it
    /// writes, so an Access flag fault means a bug and should be seen), events mergeable
    /// (`MEV`: a device that faults in a loop fills the queue less), no ATS (`EATS` = 0).
    ///
    /// # Errors
    ///
    /// [`SteError`] when the SMMU cannot translate the VM's IPA space or reach its tables.
    pub fn encode(&self) -> Result<Ste, SteError> {
        let g = self.geometry;
        if g.ipa_bits() > self.ias_bits {
            return Err(SteError::IpaTooLarge {
                ipa_bits: g.ipa_bits(),
                ias_bits: self.ias_bits,
            });
        }
        let ps_bits = g.pa_limit_bits().min(self.oas_bits);
        let ps = PS_BITS
            .iter()
            .position(|&b| b == ps_bits)
            .ok_or(SteError::UnknownOas(self.oas_bits))?;
        if !self.root.0.is_multiple_of(0x1000) || self.root.0 >> ps_bits != 0 {
            return Err(SteError::BadRoot(self.root));
        }
        let mut ste = Ste::INVALID;
        let w = &mut ste.0;
        V.set(w, 1);
        CONFIG.set(w, config::STAGE2);
        MEV.set(w, 1);
        EATS.set(w, 0);
        SHCFG.set(w, SHCFG_INCOMING);
        S2VMID.set(w, u64::from(self.vmid));
        S2T0SZ.set(w, g.t0sz());
        S2SL0.set(w, g.sl0());
        S2IR0.set(w, WB_RA_WA);
        S2OR0.set(w, WB_RA_WA);
        S2SH0.set(w, INNER_SHAREABLE);
        S2TG.set(w, GRANULE_4K);
        S2PS.set(w, ps as u64);
        S2AA64.set(w, 1);
        S2ENDI.set(w, 0);
        S2AFFD.set(w, 0);
        S2S.set(w, 0);
        S2R.set(w, 1);
        S2TTB.set(w, self.root.0 >> 4);
        Ok(ste)
    }
}
