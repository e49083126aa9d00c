//! Commands (IHI 0070, chapter 4): 16 bytes each, the opcode in bits [7:0]. Moat needs
//! `CMD_CFGI_STE` after writing an STE, `CMD_TLBI_S12_VMALL` after changing a VM's stage 2
//! or reusing its VMID, `CMD_CFGI_ALL`/`CMD_TLBI_NSNH_ALL` when it takes the SMMU over, and
//! `CMD_SYNC` to wait for them.

use super::Field;

/// The opcode, bits [7:0] of every command (4.1 "Commands overview").
pub const OPCODE: Field = Field::bits(7, 0);
/// `SSec`, bit [10]: the StreamID is Secure (Moat uses the Non-secure stream table: 0).
pub const SSEC: Field = Field::bit(10);
/// `StreamID`, bits [63:32] (`CMD_CFGI_STE`).
pub const STREAM_ID: Field = Field::bits(63, 32);
/// `Leaf`, bit [64] (`CMD_CFGI_STE`): only the STE, not the level-1 descriptors above it.
pub const LEAF: Field = Field::bit(64);
/// `Range`, bits [68:64] (`CMD_CFGI_STE_RANGE`): 2^(Range+1) stream IDs; 31 = all
/// (`CMD_CFGI_ALL`).
pub const RANGE: Field = Field::bits(68, 64);
/// `VMID`, bits [47:32] (`CMD_TLBI_S12_VMALL`).
pub const VMID: Field = Field::bits(47, 32);
/// `CS` (ComplSignal), bits [13:12] (`CMD_SYNC`).
pub const CS: Field = Field::bits(13, 12);
/// `MSH`, bits [23:22] (`CMD_SYNC`): the MSI's shareability.
pub const MSH: Field = Field::bits(23, 22);
/// `MSIAttr`, bits [27:24] (`CMD_SYNC`).
pub const MSI_ATTR: Field = Field::bits(27, 24);
/// `MSIData`, bits [63:32] (`CMD_SYNC`).
pub const MSI_DATA: Field = Field::bits(63, 32);
/// `MSIAddress[55:2]`, bits [119:66] (`CMD_SYNC`).
pub const MSI_ADDRESS: Field = Field::bits(119, 66);

/// The opcodes (4.1, table "Command opcodes").
mod opcode {
    pub const CFGI_STE: u64 = 0x03;
    pub const CFGI_STE_RANGE: u64 = 0x04;
    pub const TLBI_S12_VMALL: u64 = 0x28;
    pub const TLBI_NSNH_ALL: u64 = 0x30;
    pub const SYNC: u64 = 0x46;
}

/// One command: 2 words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command(pub [u64; 2]);

/// How a `CMD_SYNC` says it completed (4.7.3, `ComplSignal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionSignal {
    /// `SIG_NONE` (0b00): software polls `SMMU_CMDQ_CONS`.
    None = 0b00,
    /// `SIG_IRQ` (0b01): the `cmdq-sync` interrupt (or an MSI).
    Irq = 0b01,
    /// `SIG_SEV` (0b10): an event for `WFE`.
    Sev = 0b10,
}

/// `CMD_SYNC`'s parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdSync {
    /// How completion is signalled.
    pub signal: CompletionSignal,
}

impl Command {
    fn with_opcode(opcode: u64) -> Self {
        let mut c = Self([0; 2]);
        OPCODE.set(&mut c.0, opcode);
        c
    }

    /// The field's value.
    #[must_use]
    pub fn get(&self, field: Field) -> u64 {
        field.get(&self.0)
    }

    /// `CMD_CFGI_STE(StreamID, SSec = 0, Leaf = 1)` (4.3.1): forget the cached STE of
    /// `stream_id` (a linear table has no level-1 descriptors, so `Leaf` = 1, as Arm
    /// recommends).
    #[must_use]
    pub fn cfgi_ste(stream_id: u32) -> Self {
        let mut c = Self::with_opcode(opcode::CFGI_STE);
        STREAM_ID.set(&mut c.0, u64::from(stream_id));
        LEAF.set(&mut c.0, 1);
        c
    }

    /// `CMD_CFGI_ALL(SSec = 0)` (4.3.6): `CMD_CFGI_STE_RANGE` with `Range` = 31, every STE.
    #[must_use]
    pub fn cfgi_all() -> Self {
        let mut c = Self::with_opcode(opcode::CFGI_STE_RANGE);
        RANGE.set(&mut c.0, 31);
        c
    }

    /// `CMD_TLBI_S12_VMALL(VMID)` (4.4.3.2): every TLB entry of `vmid`, both stages.
    #[must_use]
    pub fn tlbi_s12_vmall(vmid: u16) -> Self {
        let mut c = Self::with_opcode(opcode::TLBI_S12_VMALL);
        VMID.set(&mut c.0, u64::from(vmid));
        c
    }

    /// `CMD_TLBI_NSNH_ALL` (4.4.4.1): every Non-secure, non-hypervisor TLB entry.
    #[must_use]
    pub fn tlbi_nsnh_all() -> Self {
        Self::with_opcode(opcode::TLBI_NSNH_ALL)
    }

    /// `CMD_SYNC(ComplSignal, MSIAddress = 0, MSIData = 0, MSIWriteAttributes = 0)` (4.7.3):
    /// completes when every command before it has, and makes the events of transactions
    /// terminated before it visible.
    #[must_use]
    pub fn sync(sync: CmdSync) -> Self {
        let mut c = Self::with_opcode(opcode::SYNC);
        CS.set(&mut c.0, sync.signal as u64);
        c
    }
}
