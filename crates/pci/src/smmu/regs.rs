//! The SMMUv3's programming interface as Moat drives it (IHI 0070, 6.3 "Register formats"):
//! register offsets and fields, the sizes Moat gives its stream table and queues, and the
//! queues' producer/consumer index arithmetic (3.5 "Command and Event queues", 6.3.26–6.3.31).
//!
//! Pure: the EL2 binary reads and writes the registers at these offsets with these values.

use moat_arm::field::Field;

use super::idr::SmmuFeatures;

/// `SMMU_IDR0`, `SMMU_IDR1`, `SMMU_IDR5` (page 0).
pub const IDR0: usize = 0x00;
/// `SMMU_IDR1`.
pub const IDR1: usize = 0x04;
/// `SMMU_IDR5`.
pub const IDR5: usize = 0x14;
/// `SMMU_CR0` (6.3.9).
pub const CR0: usize = 0x20;
/// `SMMU_CR0ACK` (6.3.10): the CR0 fields the SMMU has taken.
pub const CR0ACK: usize = 0x24;
/// `SMMU_CR1` (6.3.11): table and queue memory attributes.
pub const CR1: usize = 0x28;
/// `SMMU_CR2` (6.3.12).
pub const CR2: usize = 0x2C;
/// `SMMU_GBPA` (6.3.14): what transactions do while `SMMUEN` = 0.
pub const GBPA: usize = 0x44;
/// `SMMU_IRQ_CTRL` (6.3.17).
pub const IRQ_CTRL: usize = 0x50;
/// `SMMU_IRQ_CTRLACK` (6.3.18).
pub const IRQ_CTRLACK: usize = 0x54;
/// `SMMU_GERROR` (6.3.19).
pub const GERROR: usize = 0x60;
/// `SMMU_GERRORN` (6.3.20).
pub const GERRORN: usize = 0x64;
/// `SMMU_STRTAB_BASE` (6.3.24), 64 bits.
pub const STRTAB_BASE: usize = 0x80;
/// `SMMU_STRTAB_BASE_CFG` (6.3.25).
pub const STRTAB_BASE_CFG: usize = 0x88;
/// `SMMU_CMDQ_BASE` (6.3.26), 64 bits.
pub const CMDQ_BASE: usize = 0x90;
/// `SMMU_CMDQ_PROD` (6.3.27).
pub const CMDQ_PROD: usize = 0x98;
/// `SMMU_CMDQ_CONS` (6.3.28).
pub const CMDQ_CONS: usize = 0x9C;
/// `SMMU_EVENTQ_BASE` (6.3.29), 64 bits.
pub const EVENTQ_BASE: usize = 0xA0;
/// `SMMU_EVENTQ_PROD` (6.3.30): in register page 1.
pub const EVENTQ_PROD: usize = 0x1_00A8;
/// `SMMU_EVENTQ_CONS` (6.3.31): in register page 1.
pub const EVENTQ_CONS: usize = 0x1_00AC;

/// `SMMU_CR0.SMMUEN`, bit [0].
pub const CR0_SMMUEN: Field = Field::bit(0);
/// `SMMU_CR0.EVENTQEN`, bit [2].
pub const CR0_EVENTQEN: Field = Field::bit(2);
/// `SMMU_CR0.CMDQEN`, bit [3].
pub const CR0_CMDQEN: Field = Field::bit(3);
/// `SMMU_CR1.TABLE_IC`, `TABLE_OC`, `TABLE_SH`, `QUEUE_IC`, `QUEUE_OC`, `QUEUE_SH`: bits
/// [1:0], [3:2], [5:4], [7:6], [9:8], [11:10].
pub const CR1_TABLE_IC: Field = Field::new(0, 2);
/// `SMMU_CR1.TABLE_OC`.
pub const CR1_TABLE_OC: Field = Field::new(2, 2);
/// `SMMU_CR1.TABLE_SH`.
pub const CR1_TABLE_SH: Field = Field::new(4, 2);
/// `SMMU_CR1.QUEUE_IC`.
pub const CR1_QUEUE_IC: Field = Field::new(6, 2);
/// `SMMU_CR1.QUEUE_OC`.
pub const CR1_QUEUE_OC: Field = Field::new(8, 2);
/// `SMMU_CR1.QUEUE_SH`.
pub const CR1_QUEUE_SH: Field = Field::new(10, 2);
/// `SMMU_CR2.RECINVSID`, bit [1]: record `C_BAD_STREAMID` for stream IDs beyond the table.
pub const CR2_RECINVSID: Field = Field::bit(1);
/// `SMMU_GBPA.ABORT`, bit [20]: abort transactions while the SMMU is disabled.
pub const GBPA_ABORT: Field = Field::bit(20);
/// `SMMU_GBPA.Update`, bit [31]: set to apply, cleared by the SMMU when applied.
pub const GBPA_UPDATE: Field = Field::bit(31);
/// `SMMU_IRQ_CTRL.GERROR_IRQEN`, bit [0].
pub const IRQ_CTRL_GERROR_IRQEN: Field = Field::bit(0);
/// `SMMU_IRQ_CTRL.EVENTQ_IRQEN`, bit [2].
pub const IRQ_CTRL_EVENTQ_IRQEN: Field = Field::bit(2);
/// `SMMU_STRTAB_BASE.ADDR`, bits [51:6]; `RA`, bit [62].
pub const STRTAB_BASE_ADDR: Field = Field::new(6, 46);
/// `SMMU_STRTAB_BASE.RA`: read-allocate hint.
pub const STRTAB_BASE_RA: Field = Field::bit(62);
/// `SMMU_STRTAB_BASE_CFG.LOG2SIZE`, bits [5:0]; `FMT`, bits [17:16] (0b00 linear).
pub const STRTAB_CFG_LOG2SIZE: Field = Field::new(0, 6);
/// `SMMU_STRTAB_BASE_CFG.FMT`.
pub const STRTAB_CFG_FMT: Field = Field::new(16, 2);
/// `SMMU_{CMDQ,EVENTQ}_BASE.LOG2SIZE`, bits [4:0]; `ADDR`, bits [51:5]; `RA`/`WA`, bit [62].
pub const Q_BASE_LOG2SIZE: Field = Field::new(0, 5);
/// `SMMU_{CMDQ,EVENTQ}_BASE.ADDR`.
pub const Q_BASE_ADDR: Field = Field::new(5, 47);
/// `SMMU_CMDQ_BASE.RA` / `SMMU_EVENTQ_BASE.WA`.
pub const Q_BASE_ALLOCATE: Field = Field::bit(62);
/// `SMMU_CMDQ_CONS.ERR`, bits [30:24]: why the command at `RD` failed (`CERROR_*`).
pub const CMDQ_CONS_ERR: Field = Field::new(24, 7);
/// `SMMU_EVENTQ_PROD.OVFLG`, bit [31]: the queue overflowed (toggles at each overflow);
/// `SMMU_EVENTQ_CONS.OVACKFLG`, bit [31], acknowledges it by copying it.
pub const EVENTQ_OVFLG: Field = Field::bit(31);

/// `CR1`/STE cacheability 0b01: Write-Back cacheable, Read-Allocate, Write-Allocate.
const WBRAWA: u64 = 0b01;
/// `CR1` shareability 0b11: Inner Shareable.
const INNER_SHAREABLE: u64 = 0b11;

/// The largest linear stream table Moat makes: 2^16 STEs (4 MiB), all the stream IDs of 256
/// buses; an SMMU with more (`SIDSIZE` up to 32) gets a table of the stream IDs its host
/// bridges can send, at most this many, and a stream beyond it is aborted by the SMMU with
/// `C_BAD_STREAMID` (3.3.2: a StreamID outside the table).
pub const MAX_STREAM_TABLE_LOG2: u32 = 16;
/// The command queue Moat uses: 2^8 entries of 16 bytes (4 KiB), or fewer where `CMDQS` is
/// smaller. Moat issues a handful of commands at a time and waits for each batch.
pub const CMDQ_LOG2: u32 = 8;
/// The event queue: 2^8 records of 32 bytes (8 KiB), or fewer where `EVENTQS` is smaller.
/// Events of a device faulting in a loop are merged (`STE.MEV`) or overflow, which is
/// reported.
pub const EVENTQ_LOG2: u32 = 8;
/// Bytes of one STE, one command, one event record.
pub const STE_BYTES: u64 = 64;
/// Bytes of one command.
pub const CMD_BYTES: u64 = 16;
/// Bytes of one event record.
pub const EVENT_BYTES: u64 = 32;

/// The sizes of Moat's SMMU structures, as log2 of their entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The linear stream table's `LOG2SIZE`.
    pub stream_table_log2: u32,
    /// The command queue's `LOG2SIZE`.
    pub cmdq_log2: u32,
    /// The event queue's `LOG2SIZE`.
    pub eventq_log2: u32,
}

impl Layout {
    /// The layout for `smmu` when the highest stream ID its host bridges send is
    /// `max_stream_id`: a linear table covering it (within `SIDSIZE` and
    /// [`MAX_STREAM_TABLE_LOG2`]), the queues at Moat's sizes within `CMDQS`/`EVENTQS`.
    #[must_use]
    pub fn new(smmu: &SmmuFeatures, max_stream_id: u32) -> Self {
        let needed = u32::BITS - max_stream_id.leading_zeros();
        Self {
            stream_table_log2: needed.min(smmu.sid_bits).min(MAX_STREAM_TABLE_LOG2),
            cmdq_log2: CMDQ_LOG2.min(smmu.cmdq_log2),
            eventq_log2: EVENTQ_LOG2.min(smmu.eventq_log2),
        }
    }

    /// STEs in the table.
    #[must_use]
    pub const fn stream_count(&self) -> u64 {
        1 << self.stream_table_log2
    }

    /// Bytes of the stream table; it is aligned to its size (6.3.24: `ADDR` is aligned to the
    /// table's size for a linear table), at least 64.
    #[must_use]
    pub const fn stream_table_bytes(&self) -> u64 {
        self.stream_count() * STE_BYTES
    }

    /// Bytes of the command queue (aligned to its size, at least 32: 6.3.26).
    #[must_use]
    pub const fn cmdq_bytes(&self) -> u64 {
        let b = (1 << self.cmdq_log2) * CMD_BYTES;
        if b < 32 { 32 } else { b }
    }

    /// Bytes of the event queue (aligned to its size, at least 32: 6.3.29).
    #[must_use]
    pub const fn eventq_bytes(&self) -> u64 {
        (1 << self.eventq_log2) * EVENT_BYTES
    }

    /// `SMMU_STRTAB_BASE` for a table at `pa`.
    #[must_use]
    pub const fn strtab_base(&self, pa: u64) -> u64 {
        let v = STRTAB_BASE_ADDR.insert(0, pa >> 6);
        STRTAB_BASE_RA.insert(v, 1)
    }

    /// `SMMU_STRTAB_BASE_CFG`: linear, `LOG2SIZE`.
    #[must_use]
    pub const fn strtab_base_cfg(&self) -> u32 {
        let v = STRTAB_CFG_LOG2SIZE.insert(0, self.stream_table_log2 as u64);
        STRTAB_CFG_FMT.insert(v, 0b00) as u32
    }

    /// `SMMU_CMDQ_BASE` for a queue at `pa`.
    #[must_use]
    pub const fn cmdq_base(&self, pa: u64) -> u64 {
        queue_base(pa, self.cmdq_log2)
    }

    /// `SMMU_EVENTQ_BASE` for a queue at `pa`.
    #[must_use]
    pub const fn eventq_base(&self, pa: u64) -> u64 {
        queue_base(pa, self.eventq_log2)
    }
}

const fn queue_base(pa: u64, log2: u32) -> u64 {
    let v = Q_BASE_LOG2SIZE.insert(0, log2 as u64);
    let v = Q_BASE_ADDR.insert(v, pa >> 5);
    Q_BASE_ALLOCATE.insert(v, 1)
}

/// `SMMU_CR1`: tables and queues in Normal Inner/Outer Write-Back RA-WA Inner Shareable
/// memory, as Moat's own (its heap, from which they come) is mapped.
#[must_use]
pub const fn cr1() -> u32 {
    let v = CR1_TABLE_IC.insert(0, WBRAWA);
    let v = CR1_TABLE_OC.insert(v, WBRAWA);
    let v = CR1_TABLE_SH.insert(v, INNER_SHAREABLE);
    let v = CR1_QUEUE_IC.insert(v, WBRAWA);
    let v = CR1_QUEUE_OC.insert(v, WBRAWA);
    CR1_QUEUE_SH.insert(v, INNER_SHAREABLE) as u32
}

/// One queue's index register value: `WR`/`RD` in bits [log2−1:0], its wrap flag in bit
/// [log2] (3.5: the queue is empty when both indexes and wrap flags are equal, full when the
/// indexes are equal and the wrap flags differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueIndex {
    /// `LOG2SIZE` of the queue.
    pub log2: u32,
    /// Index and wrap flag, bits [log2:0].
    pub value: u32,
}

impl QueueIndex {
    /// The index part of a `PROD`/`CONS` register of a queue of 2^`log2` entries (other bits,
    /// `OVFLG`, `ERR`, dropped).
    #[must_use]
    pub const fn from_register(log2: u32, reg: u32) -> Self {
        Self {
            log2,
            value: reg & ((2 << log2) - 1),
        }
    }

    /// The entry it points at.
    #[must_use]
    pub const fn slot(self) -> u32 {
        self.value & ((1 << self.log2) - 1)
    }

    const fn wrap(self) -> u32 {
        self.value >> self.log2 & 1
    }

    /// The next index, the wrap flag toggled when the index wraps.
    #[must_use]
    pub const fn next(self) -> Self {
        Self {
            log2: self.log2,
            value: (self.value + 1) & ((2 << self.log2) - 1),
        }
    }

    /// Whether a queue whose producer is `self` and consumer `cons` is empty.
    #[must_use]
    pub const fn is_empty(self, cons: Self) -> bool {
        self.value == cons.value
    }

    /// Whether a queue whose producer is `self` and consumer `cons` is full.
    #[must_use]
    pub const fn is_full(self, cons: Self) -> bool {
        self.slot() == cons.slot() && self.wrap() != cons.wrap()
    }
}

/// `SMMU_CMDQ_CONS.ERR` values (4.8 "Command errors").
#[must_use]
pub const fn command_error_name(err: u32) -> &'static str {
    match err {
        0x00 => "CERROR_NONE",
        0x01 => "CERROR_ILL",
        0x02 => "CERROR_ABT",
        0x03 => "CERROR_ATC_INV_SYNC",
        _ => "a reserved CERROR",
    }
}
