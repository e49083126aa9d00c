//! The register and descriptor fields the stage-1 walkers read, named as in the Arm ARM, so
//! that no walk shifts or masks with bare numbers. (Candidates for `moat_arm::sysreg` once
//! another module needs them.)

/// `TCR_EL1` (AArch64). The TTBR0 and TTBR1 halves have the same fields at different places;
/// [`TcrHalf`] names one half.
pub mod tcr_el1 {
    use moat_arm::field::Field;

    /// One half of `TCR_EL1`: the fields that control the walks from one `TTBRn_EL1`.
    pub struct TcrHalf {
        /// `TnSZ`: the region is `2^(64 - TnSZ)` bytes.
        pub txsz: Field,
        /// `EPDn`: a TLB miss in this region is a translation fault, without a walk.
        pub epd: Field,
        /// `TGn`: the granule (TG0 and TG1 encode it differently).
        pub tg: Field,
        /// `TBIn`: the top byte is ignored in address checks.
        pub tbi: Field,
        /// `TBIDn` (FEAT_PAuth): `TBIn` applies to data accesses only.
        pub tbid: Field,
    }

    /// The TTBR0_EL1 half.
    pub const HALF0: TcrHalf = TcrHalf {
        txsz: Field::new(0, 6),
        epd: Field::bit(7),
        tg: Field::new(14, 2),
        tbi: Field::bit(37),
        tbid: Field::bit(51),
    };

    /// The TTBR1_EL1 half.
    pub const HALF1: TcrHalf = TcrHalf {
        txsz: Field::new(16, 6),
        epd: Field::bit(23),
        tg: Field::new(30, 2),
        tbi: Field::bit(38),
        tbid: Field::bit(52),
    };

    /// `IPS`: the intermediate physical address size, in the `PARange` encoding.
    pub const IPS: Field = Field::new(32, 3);
}

/// `TTBCR` (AArch32), in `TCR_EL1[31:0]`.
pub mod ttbcr {
    use moat_arm::field::Field;

    /// `EAE`: the long-descriptor (LPAE) format.
    pub use moat_arm::sysreg::ttbcr::EAE;

    /// Long-descriptor `T0SZ`: TTBR0 covers `2^(32 - T0SZ)` bytes from 0.
    pub const T0SZ: Field = Field::new(0, 3);
    /// Long-descriptor `EPD0`: no walk from TTBR0.
    pub const EPD0: Field = Field::bit(7);
    /// Long-descriptor `T1SZ`: TTBR1 covers the top `2^(32 - T1SZ)` bytes.
    pub const T1SZ: Field = Field::new(16, 3);
    /// Long-descriptor `EPD1`: no walk from TTBR1.
    pub const EPD1: Field = Field::bit(23);

    /// Short-descriptor `N`: TTBR0 covers VAs with bits \[31:32-N\] zero.
    pub const N: Field = Field::new(0, 3);
    /// Short-descriptor `PD0`: no walk from TTBR0.
    pub const PD0: Field = Field::bit(4);
    /// Short-descriptor `PD1`: no walk from TTBR1.
    pub const PD1: Field = Field::bit(5);
}

/// `TTBRn_EL1` and the 64-bit (long-descriptor) AArch32 `TTBRn`.
pub mod ttbr {
    use moat_arm::field::Field;

    /// `BADDR` with the bits above it that must be zero for a 48-bit output: bits \[47:1\]
    /// (bit 0 is `CnP`). The low bits below the first table's size are ignored.
    pub const BADDR: Field = Field::new(1, 47);
}

/// Long-descriptor (VMSAv8-64 and AArch32 LPAE) descriptor fields.
pub mod long_desc {
    use moat_arm::field::Field;

    /// Bit 0: the descriptor is valid.
    pub const VALID: Field = Field::bit(0);
    /// Bit 1: a table (levels 0–2) or page (level 3) rather than a block.
    pub const TABLE_OR_PAGE: Field = Field::bit(1);
    /// The output or next-level table address field, up to bit 47 (48-bit formats; AArch32
    /// descriptors hold bits \[39:12\] with \[47:40\] to be zero, checked as part of it).
    pub const ADDRESS_TOP: u32 = 47;
}

/// Short-descriptor (AArch32, `TTBCR.EAE` = 0) descriptor and `TTBR` fields.
pub mod short_desc {
    use moat_arm::field::Field;

    /// `TTBRn` bits \[31:14\]: the level-1 table base for `N` = 0 (bits \[31:14-N\] for TTBR0).
    pub const TTBR_BASE_TOP: u32 = 31;
    /// Level-1 and level-2 descriptor type, bits \[1:0\].
    pub const TYPE: Field = Field::new(0, 2);
    /// Level-1 bit 18: a supersection rather than a section.
    pub const SUPERSECTION: Field = Field::bit(18);
    /// Level-1 page table descriptor: the level-2 table base, bits \[31:10\].
    pub const L2_TABLE_BASE: Field = Field::new(10, 22);
    /// Section base address, bits \[31:20\].
    pub const SECTION_BASE: Field = Field::new(20, 12);
    /// Supersection base address PA\[31:24\], in bits \[31:24\].
    pub const SUPERSECTION_BASE: Field = Field::new(24, 8);
    /// Supersection extended base address PA\[35:32\], in bits \[23:20\].
    pub const SUPERSECTION_EXT_35_32: Field = Field::new(20, 4);
    /// Supersection extended base address PA\[39:36\], in bits \[8:5\].
    pub const SUPERSECTION_EXT_39_36: Field = Field::new(5, 4);
    /// Large page base address, bits \[31:16\].
    pub const LARGE_PAGE_BASE: Field = Field::new(16, 16);
    /// Small page base address, bits \[31:12\].
    pub const SMALL_PAGE_BASE: Field = Field::new(12, 20);
}
