//! What an SMMUv3 implements, from its ID registers (IHI 0070, 6.3.1 `SMMU_IDR0`, 6.3.2
//! `SMMU_IDR1`, 6.3.6 `SMMU_IDR5`), and whether Moat can give it a VM's devices.

use core::fmt;

use moat_arm::field::Field;

/// `SMMU_IDR0.S2P`, bit [0]: stage 2 translation.
pub const IDR0_S2P: Field = Field::bit(0);
/// `SMMU_IDR0.S1P`, bit [1]: stage 1 translation.
pub const IDR0_S1P: Field = Field::bit(1);
/// `SMMU_IDR0.TTF`, bits [3:2]: table formats, bit 0 VMSAv8-32 LPAE, bit 1 VMSAv8-64.
pub const IDR0_TTF: Field = Field::new(2, 2);
/// `SMMU_IDR0.COHACC`, bit [4]: the SMMU's accesses to translation tables, structures and
/// queues are coherent with the PEs' caches.
pub const IDR0_COHACC: Field = Field::bit(4);
/// `SMMU_IDR0.VMID16`, bit [18]: 16-bit VMIDs.
pub const IDR0_VMID16: Field = Field::bit(18);
/// `SMMU_IDR0.ST_LEVEL`, bits [28:27]: 0b00 linear stream table only, 0b01 2-level too.
pub const IDR0_ST_LEVEL: Field = Field::new(27, 2);
/// `SMMU_IDR1.SIDSIZE`, bits [5:0]: stream ID bits.
pub const IDR1_SIDSIZE: Field = Field::new(0, 6);
/// `SMMU_IDR1.EVENTQS`, bits [20:16]: log2 of the largest event queue.
pub const IDR1_EVENTQS: Field = Field::new(16, 5);
/// `SMMU_IDR1.CMDQS`, bits [25:21]: log2 of the largest command queue.
pub const IDR1_CMDQS: Field = Field::new(21, 5);
/// `SMMU_IDR5.OAS`, bits [2:0]: output address size, encoded as `STE.S2PS`.
pub const IDR5_OAS: Field = Field::new(0, 3);
/// `SMMU_IDR5.GRAN4K`, bit [4]: the 4 KiB granule.
pub const IDR5_GRAN4K: Field = Field::bit(4);

/// The `OAS` encodings in order (6.3.6): 32, 36, 40, 42, 44, 48, 52 bits.
const OAS_BITS: [u32; 7] = [32, 36, 40, 42, 44, 48, 52];

/// An SMMUv3's features that matter to Moat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmmuFeatures {
    /// `S1P`.
    pub stage1: bool,
    /// `S2P`.
    pub stage2: bool,
    /// `TTF` bit 1: VMSAv8-64 tables.
    pub aarch64_tables: bool,
    /// `TTF` bit 0: VMSAv8-32 LPAE tables.
    pub aarch32_tables: bool,
    /// `COHACC`.
    pub coherent: bool,
    /// `VMID16`.
    pub vmid16: bool,
    /// `ST_LEVEL` = 0b01: 2-level stream tables.
    pub two_level_stream_table: bool,
    /// `SIDSIZE`.
    pub sid_bits: u32,
    /// `CMDQS`.
    pub cmdq_log2: u32,
    /// `EVENTQS`.
    pub eventq_log2: u32,
    /// `OAS` in bits (`None` for a reserved encoding).
    pub oas_bits: Option<u32>,
    /// `GRAN4K`.
    pub gran4k: bool,
}

impl SmmuFeatures {
    /// Decodes the three ID registers.
    #[must_use]
    pub fn decode(idr0: u32, idr1: u32, idr5: u32) -> Self {
        let (idr0, idr1, idr5) = (u64::from(idr0), u64::from(idr1), u64::from(idr5));
        let ttf = IDR0_TTF.get(idr0);
        Self {
            stage1: IDR0_S1P.is_set(idr0),
            stage2: IDR0_S2P.is_set(idr0),
            aarch64_tables: ttf & 0b10 != 0,
            aarch32_tables: ttf & 0b01 != 0,
            coherent: IDR0_COHACC.is_set(idr0),
            vmid16: IDR0_VMID16.is_set(idr0),
            two_level_stream_table: IDR0_ST_LEVEL.get(idr0) == 0b01,
            sid_bits: IDR1_SIDSIZE.get(idr1) as u32,
            cmdq_log2: IDR1_CMDQS.get(idr1) as u32,
            eventq_log2: IDR1_EVENTQS.get(idr1) as u32,
            oas_bits: OAS_BITS.get(IDR5_OAS.get(idr5) as usize).copied(),
            gran4k: IDR5_GRAN4K.is_set(idr5),
        }
    }

    /// The input address size (IHI 0070, 3.4 "Address sizes"): the OAS, or 40 bits if that
    /// is more and VMSAv8-32 LPAE tables are implemented.
    #[must_use]
    pub fn ias_bits(&self) -> Option<u32> {
        let oas = self.oas_bits?;
        Some(if self.aarch32_tables {
            oas.max(40)
        } else {
            oas
        })
    }

    /// Why Moat cannot confine a VM's devices with this SMMU, if it cannot: Moat's STEs
    /// translate at stage 2 only, through VMSAv8-64 tables of 4 KiB pages; and Moat writes its
    /// stream table, queues and the VMs' stage-2 tables through the caches without cleaning
    /// them to the point of coherency, which an SMMU without coherent access would read stale.
    #[must_use]
    pub fn cannot_assign(&self) -> Option<&'static str> {
        if !self.stage2 {
            Some("it has no stage 2 translation (SMMU_IDR0.S2P = 0)")
        } else if !self.aarch64_tables {
            Some("it reads no VMSAv8-64 tables (SMMU_IDR0.TTF)")
        } else if !self.gran4k {
            Some("it has no 4 KiB granule (SMMU_IDR5.GRAN4K = 0)")
        } else if self.oas_bits.is_none() {
            Some("its output size is a reserved SMMU_IDR5.OAS value")
        } else if !self.coherent {
            Some(
                "its accesses to tables and queues are not coherent with the CPUs' caches (SMMU_IDR0.COHACC = 0), and Moat does not clean them for it",
            )
        } else {
            None
        }
    }
}

/// `stage 1 yes, stage 2 no, OAS 44 bits, 16-bit stream IDs`.
impl fmt::Display for SmmuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "stage 1 {}, stage 2 {}, ",
            yes(self.stage1),
            yes(self.stage2)
        )?;
        match self.oas_bits {
            Some(bits) => write!(f, "OAS {bits} bits")?,
            None => f.write_str("OAS reserved")?,
        }
        write!(f, ", {}-bit stream IDs", self.sid_bits)
    }
}
