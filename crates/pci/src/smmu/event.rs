//! Event records (IHI 0070, 7.3 "Event records"): 32 bytes, the event number in bits [7:0],
//! the stream in bits [63:32]. Moat decodes every record it takes from the event queue and
//! reports it on its console; the translation faults (7.3.13–7.3.16) carry the access and
//! the addresses that show what a device tried.

use super::Field;
use core::fmt;

/// The event number, bits [7:0].
pub const EVENT_TYPE: Field = Field::bits(7, 0);
/// `SSV`, bit [11]: `SubstreamID` is valid.
pub const SSV: Field = Field::bit(11);
/// `SubstreamID`, bits [31:12].
pub const SUBSTREAM_ID: Field = Field::bits(31, 12);
/// `StreamID`, bits [63:32].
pub const STREAM_ID: Field = Field::bits(63, 32);
/// `STAG`, bits [79:64]: the stall tag (translation faults, when `Stall`).
pub const STAG: Field = Field::bits(79, 64);
/// `Stall`, bit [95]: the transaction is stalled, awaiting `CMD_RESUME`.
pub const STALL: Field = Field::bit(95);
/// `PnU`, bit [97]: privileged (1) or unprivileged (0).
pub const PNU: Field = Field::bit(97);
/// `InD`, bit [98]: instruction (1) or data (0).
pub const IND: Field = Field::bit(98);
/// `RnW`, bit [99]: read (1) or write (0).
pub const RNW: Field = Field::bit(99);
/// `S2`, bit [103]: the fault is at stage 2.
pub const S2: Field = Field::bit(103);
/// `CLASS`, bits [105:104]: what was being translated (see [`Class`]).
pub const CLASS: Field = Field::bits(105, 104);
/// `TTRnW`, bit [108] (`F_PERMISSION` with `CLASS` = TT): a descriptor read (1) or write (0).
pub const TTRNW: Field = Field::bit(108);
/// `InputAddr`, bits [191:128]: the address the device used.
pub const INPUT_ADDR: Field = Field::bits(191, 128);
/// `IPA[55:12]`, bits [251:204]: the IPA of a stage-2 fault.
pub const IPA: Field = Field::bits(251, 204);
/// `FetchAddr[55:3]`, bits [247:195] (`F_STE_FETCH`, `F_CD_FETCH`, `F_WALK_EABT`,
/// `F_VMS_FETCH`).
pub const FETCH_ADDR: Field = Field::bits(247, 195);

/// The events, by number (7.3.2–7.3.20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// 0x01 `F_UUT`: unsupported upstream transaction.
    Uut,
    /// 0x02 `C_BAD_STREAMID`: the stream ID is beyond the stream table.
    BadStreamId,
    /// 0x03 `F_STE_FETCH`: fetching the STE aborted.
    SteFetch,
    /// 0x04 `C_BAD_STE`: the STE is invalid (`V` = 0) or ILLEGAL.
    BadSte,
    /// 0x05 `F_BAD_ATS_TREQ`.
    BadAtsTreq,
    /// 0x06 `F_STREAM_DISABLED`.
    StreamDisabled,
    /// 0x07 `F_TRANSL_FORBIDDEN`.
    TranslForbidden,
    /// 0x08 `C_BAD_SUBSTREAMID`.
    BadSubstreamId,
    /// 0x09 `F_CD_FETCH`.
    CdFetch,
    /// 0x0A `C_BAD_CD`.
    BadCd,
    /// 0x0B `F_WALK_EABT`: a table walk aborted.
    WalkEabt,
    /// 0x10 `F_TRANSLATION`: no valid descriptor for the address.
    Translation,
    /// 0x11 `F_ADDR_SIZE`: a descriptor's output address is beyond `S2PS`.
    AddrSize,
    /// 0x12 `F_ACCESS`: Access flag 0.
    Access,
    /// 0x13 `F_PERMISSION`: the descriptor forbids the access.
    Permission,
    /// 0x20 `F_TLB_CONFLICT`.
    TlbConflict,
    /// 0x21 `F_CFG_CONFLICT`.
    CfgConflict,
    /// 0x24 `E_PAGE_REQUEST`.
    PageRequest,
    /// 0x25 `F_VMS_FETCH`.
    VmsFetch,
    /// Any other number (IMPLEMENTATION DEFINED or later architecture): Arm recommends
    /// treating it as non-fatal (7.3).
    Other(u8),
}

impl EventKind {
    /// The event with number `number`.
    #[must_use]
    pub const fn from_number(number: u8) -> Self {
        match number {
            0x01 => Self::Uut,
            0x02 => Self::BadStreamId,
            0x03 => Self::SteFetch,
            0x04 => Self::BadSte,
            0x05 => Self::BadAtsTreq,
            0x06 => Self::StreamDisabled,
            0x07 => Self::TranslForbidden,
            0x08 => Self::BadSubstreamId,
            0x09 => Self::CdFetch,
            0x0a => Self::BadCd,
            0x0b => Self::WalkEabt,
            0x10 => Self::Translation,
            0x11 => Self::AddrSize,
            0x12 => Self::Access,
            0x13 => Self::Permission,
            0x20 => Self::TlbConflict,
            0x21 => Self::CfgConflict,
            0x24 => Self::PageRequest,
            0x25 => Self::VmsFetch,
            n => Self::Other(n),
        }
    }

    /// Its name in IHI 0070.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Uut => "F_UUT",
            Self::BadStreamId => "C_BAD_STREAMID",
            Self::SteFetch => "F_STE_FETCH",
            Self::BadSte => "C_BAD_STE",
            Self::BadAtsTreq => "F_BAD_ATS_TREQ",
            Self::StreamDisabled => "F_STREAM_DISABLED",
            Self::TranslForbidden => "F_TRANSL_FORBIDDEN",
            Self::BadSubstreamId => "C_BAD_SUBSTREAMID",
            Self::CdFetch => "F_CD_FETCH",
            Self::BadCd => "C_BAD_CD",
            Self::WalkEabt => "F_WALK_EABT",
            Self::Translation => "F_TRANSLATION",
            Self::AddrSize => "F_ADDR_SIZE",
            Self::Access => "F_ACCESS",
            Self::Permission => "F_PERMISSION",
            Self::TlbConflict => "F_TLB_CONFLICT",
            Self::CfgConflict => "F_CFG_CONFLICT",
            Self::PageRequest => "E_PAGE_REQUEST",
            Self::VmsFetch => "F_VMS_FETCH",
            Self::Other(_) => "event",
        }
    }

    /// Whether its record has the translation-fault layout (7.3.13–7.3.16).
    const fn is_translation_fault(self) -> bool {
        matches!(
            self,
            Self::Translation | Self::AddrSize | Self::Access | Self::Permission
        )
    }

    /// Whether its record carries `FetchAddr`.
    const fn has_fetch_addr(self) -> bool {
        matches!(
            self,
            Self::SteFetch | Self::CdFetch | Self::WalkEabt | Self::VmsFetch
        )
    }
}

/// `CLASS` of a translation fault (7.3, "CLASS").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 0b00 CD: fetching a context descriptor.
    Cd,
    /// 0b01 TTD: a stage-1 table walk.
    Ttd,
    /// 0b10 IN: the transaction's own address.
    In,
    /// 0b11: Reserved.
    Reserved,
}

/// The fields of a translation, address-size, access-flag or permission fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// `Stall`: the transaction waits for `CMD_RESUME` (never, with `STE.S2S` = 0).
    pub stall: bool,
    /// `STAG`.
    pub stag: u16,
    /// `PnU`: privileged.
    pub privileged: bool,
    /// `InD`: an instruction fetch.
    pub instruction: bool,
    /// `RnW`: a read (the device writing memory is `false`).
    pub read: bool,
    /// `S2`: the fault is at stage 2.
    pub stage2: bool,
    /// `CLASS`.
    pub class: Class,
    /// `TTRnW`, for `F_PERMISSION` on a table walk.
    pub table_read: Option<bool>,
    /// `InputAddr`: the address the device used.
    pub input_addr: u64,
    /// `IPA` (bits [55:12], page offset 0): meaningful at stage 2.
    pub ipa: u64,
}

/// One decoded event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Which event.
    pub kind: EventKind,
    /// `StreamID`: the requester ID of a PCI device behind QEMU's `virt` bridge.
    pub stream_id: u32,
    /// `SubstreamID`, when `SSV`.
    pub substream_id: Option<u32>,
    /// The fault fields, for the translation faults.
    pub fault: Option<FaultRecord>,
    /// `FetchAddr`, for the fetch and walk aborts.
    pub fetch_addr: Option<u64>,
}

impl Event {
    /// Decodes a record taken from the event queue.
    #[must_use]
    pub fn decode(record: &[u64; 4]) -> Self {
        let r = record.as_slice();
        let kind = EventKind::from_number(EVENT_TYPE.get(r) as u8);
        let fault = kind.is_translation_fault().then(|| FaultRecord {
            stall: STALL.get(r) == 1,
            stag: STAG.get(r) as u16,
            privileged: PNU.get(r) == 1,
            instruction: IND.get(r) == 1,
            read: RNW.get(r) == 1,
            stage2: S2.get(r) == 1,
            class: match CLASS.get(r) {
                0b00 => Class::Cd,
                0b01 => Class::Ttd,
                0b10 => Class::In,
                _ => Class::Reserved,
            },
            table_read: (kind == EventKind::Permission && CLASS.get(r) == 0b01)
                .then(|| TTRNW.get(r) == 1),
            input_addr: INPUT_ADDR.get(r),
            ipa: IPA.get(r) << 12,
        });
        Self {
            kind,
            stream_id: STREAM_ID.get(r) as u32,
            substream_id: (SSV.get(r) == 1).then(|| SUBSTREAM_ID.get(r) as u32),
            fault,
            fetch_addr: kind.has_fetch_addr().then(|| FETCH_ADDR.get(r) << 3),
        }
    }
}

impl Event {
    /// Whether `other` reports the same fault as this one: the same event, stream and
    /// substream, and for a translation fault the same access (read or write, stage) in the
    /// same page. A device's one transfer into an address the SMMU refuses gives an event per
    /// bus write (QEMU 10.0.2's virtio-blk: 129 for one 512-byte sector); Moat reports the
    /// first and counts the rest.
    #[must_use]
    pub fn same_fault(&self, other: &Self) -> bool {
        const PAGE_MASK: u64 = !0xfff;
        let same_access = match (self.fault, other.fault) {
            (Some(a), Some(b)) => {
                a.read == b.read
                    && a.stage2 == b.stage2
                    && a.input_addr & PAGE_MASK == b.input_addr & PAGE_MASK
            }
            (None, None) => self.fetch_addr == other.fetch_addr,
            _ => false,
        };
        self.kind == other.kind
            && self.stream_id == other.stream_id
            && self.substream_id == other.substream_id
            && same_access
    }
}

/// One line for Moat's console: `F_TRANSLATION stream 0x8: stage 2 write at 0x48000000
/// (IPA 0x48000000)`.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        if let EventKind::Other(n) = self.kind {
            write!(f, " {n:#04x}")?;
        }
        write!(f, " stream {:#x}", self.stream_id)?;
        if let Some(ssid) = self.substream_id {
            write!(f, " substream {ssid:#x}")?;
        }
        if let Some(fault) = self.fault {
            let stage = if fault.stage2 { 2 } else { 1 };
            let access = if fault.read { "read" } else { "write" };
            write!(f, ": stage {stage} {access} at {:#x}", fault.input_addr)?;
            if fault.stage2 {
                write!(f, " (IPA {:#x})", fault.ipa)?;
            }
        }
        if let Some(at) = self.fetch_addr {
            write!(f, ": fetch at {at:#x}")?;
        }
        Ok(())
    }
}
