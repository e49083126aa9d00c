//! The machine's SMMUv3, taken over by Moat at boot (issue 12): a linear stream table in which
//! every stream aborts (`STE.V` = 1, `Config` = abort) until a function is given to a VM, the
//! command queue (`CMD_CFGI_*`, `CMD_TLBI_*`, `CMD_SYNC`), the event queue, and global
//! errors. The event queue's and `gerror`'s interrupts come to Moat (never to a VM); each
//! event record is decoded (`moat_pci::smmu::Event`) and reported on Moat's console, each
//! global error reported and acknowledged through `SMMU_GERRORN`.
//!
//! The hardware side only: sizes, register values, queue arithmetic, STEs, commands and event
//! decoding come from `moat_pci::smmu`. IHI 0070 is cited by section.

use crate::console::log;
use crate::lock::Lock;
use crate::mm::PhysAllocator;
use moat_pci::smmu::regs::{self, Layout, QueueIndex};
use moat_pci::smmu::{CmdSync, Command, CompletionSignal, Event, GlobalErrors, SmmuFeatures, Ste};
use moat_platform::SmmuV3;

/// How many times a register is read while waiting for the SMMU to acknowledge an update or
/// consume the command queue before Moat gives up on the hardware (a bug, or a broken SMMU: a
/// panic, never a hang). QEMU answers at the first read.
const POLL_LIMIT: u32 = 10_000_000;

/// The SMMU Moat drives.
struct Smmu {
    /// Register page 0's address (page 1 follows at +64 KiB).
    base: usize,
    layout: Layout,
    /// The stream table's address.
    strtab: u64,
    /// The command queue's address and Moat's producer index.
    cmdq: u64,
    cmd_prod: QueueIndex,
    /// The event queue's address and Moat's consumer index.
    eventq: u64,
    event_cons: QueueIndex,
    /// The event queue overflow flag last acknowledged (`SMMU_EVENTQ_CONS.OVACKFLG`).
    overflow_acked: bool,
    /// The interrupts Moat takes: the event queue's, `gerror`'s.
    eventq_intid: Option<u32>,
    gerror_intid: Option<u32>,
}

/// The SMMU once taken; shared by every CPU (a VM's creation writes its STEs; whichever CPU
/// takes the interrupts serves the queue).
static SMMU: Lock<Option<Smmu>> = Lock::new(None);

impl Smmu {
    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: `offset` is one of `regs`' register offsets, inside the two register pages
        // the device tree names, identity-mapped as device memory (`pci::device_ranges`).
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as for `read32`; Moat is the only software driving the SMMU.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn write64(&self, offset: usize, value: u64) {
        // SAFETY: as for `read32`: a 64-bit register at an 8-byte-aligned offset.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u64, value) }
    }

    /// Waits until `done` holds for the register at `offset`.
    fn poll(&self, offset: usize, what: &str, done: impl Fn(u32) -> bool) {
        for _ in 0..POLL_LIMIT {
            if done(self.read32(offset)) {
                return;
            }
            core::hint::spin_loop();
        }
        panic!("SMMUv3: {what} did not complete");
    }

    /// Writes `SMMU_CR0` and waits for `SMMU_CR0ACK` to match it (6.3.9: an update takes
    /// effect when CR0ACK shows it).
    fn set_cr0(&self, cr0: u32) {
        self.write32(regs::CR0, cr0);
        self.poll(regs::CR0ACK, "SMMU_CR0ACK", |ack| ack == cr0);
    }

    /// Writes `SMMU_IRQ_CTRL` and waits for `SMMU_IRQ_CTRLACK`.
    fn set_irq_ctrl(&self, value: u32) {
        self.write32(regs::IRQ_CTRL, value);
        self.poll(regs::IRQ_CTRLACK, "SMMU_IRQ_CTRLACK", |ack| ack == value);
    }

    /// Writes `ste` as stream `stream`'s entry, word 0 (`V`, `Config`) last so that the SMMU
    /// never reads a half-written valid entry (3.21.3 "Configuration structure update
    /// procedure"); the caller then invalidates the cached copy.
    fn write_ste(&self, stream: u64, ste: &Ste) {
        let at = self.strtab + stream * regs::STE_BYTES;
        let words = at as *mut u64;
        for (i, &w) in ste.0.iter().enumerate().skip(1) {
            // SAFETY: `stream` is inside the table (the caller checks), which Moat allocated
            // and identity-mapped; only the SMMU reads it.
            unsafe { words.add(i).write_volatile(w) };
        }
        barrier();
        // SAFETY: as above.
        unsafe { words.write_volatile(ste.0[0]) };
        barrier();
    }

    /// Puts `commands` on the command queue, then a `CMD_SYNC`, and waits until the SMMU has
    /// consumed them all (4.7.3: the sync completes after every earlier command).
    fn issue(&mut self, commands: &[Command]) {
        let sync = Command::sync(CmdSync {
            signal: CompletionSignal::None,
        });
        for command in commands.iter().chain(core::iter::once(&sync)) {
            let log2 = self.layout.cmdq_log2;
            self.poll(
                regs::CMDQ_CONS,
                "making room in the command queue",
                |cons| !self.cmd_prod.is_full(QueueIndex::from_register(log2, cons)),
            );
            let at = self.cmdq + u64::from(self.cmd_prod.slot()) * regs::CMD_BYTES;
            for (i, &w) in command.0.iter().enumerate() {
                // SAFETY: a slot of the command queue Moat allocated and identity-mapped; the
                // SMMU reads it only once PROD passes it.
                unsafe { (at as *mut u64).add(i).write_volatile(w) };
            }
            self.cmd_prod = self.cmd_prod.next();
            barrier();
            self.write32(regs::CMDQ_PROD, self.cmd_prod.value);
        }
        let (prod, log2) = (self.cmd_prod, self.layout.cmdq_log2);
        self.poll(regs::CMDQ_CONS, "CMD_SYNC", |cons| {
            let err = regs::CMDQ_CONS_ERR.get(u64::from(cons)) as u32;
            if err != 0 {
                panic!(
                    "SMMUv3: a command Moat issued failed: {}",
                    regs::command_error_name(err)
                );
            }
            prod.is_empty(QueueIndex::from_register(log2, cons))
        });
    }

    /// Reports and consumes every record in the event queue, and an overflow. Records of the
    /// same fault as the one before (`Event::same_fault`: one transfer's many bus writes) are
    /// counted, not printed one by one.
    fn drain_events(&mut self) {
        let log2 = self.layout.eventq_log2;
        let mut last: Option<(Event, u32)> = None;
        let flush = |last: &mut Option<(Event, u32)>| {
            if let Some((event, more)) = last.take().filter(|(_, more)| *more > 0) {
                log!(
                    "SMMUv3: {more} more {} events of stream {:#x} in the same page",
                    event.kind.name(),
                    event.stream_id
                );
            }
        };
        loop {
            let prod_reg = self.read32(regs::EVENTQ_PROD);
            let overflow = regs::EVENTQ_OVFLG.is_set(u64::from(prod_reg));
            if overflow != self.overflow_acked {
                log!("SMMUv3: the event queue overflowed: events were lost");
                self.overflow_acked = overflow;
            }
            let prod = QueueIndex::from_register(log2, prod_reg);
            if prod.is_empty(self.event_cons) {
                self.write_event_cons();
                flush(&mut last);
                return;
            }
            let at = self.eventq + u64::from(self.event_cons.slot()) * regs::EVENT_BYTES;
            let mut record = [0u64; 4];
            for (i, w) in record.iter_mut().enumerate() {
                // SAFETY: a slot of the event queue Moat allocated and identity-mapped, which
                // the SMMU filled before advancing PROD past it.
                *w = unsafe { (at as *const u64).add(i).read_volatile() };
            }
            let event = Event::decode(&record);
            match &mut last {
                Some((first, more)) if first.same_fault(&event) => *more += 1,
                _ => {
                    flush(&mut last);
                    log!("SMMUv3 event: {event}");
                    last = Some((event, 0));
                }
            }
            self.event_cons = self.event_cons.next();
            self.write_event_cons();
        }
    }

    fn write_event_cons(&self) {
        let ack = regs::EVENTQ_OVFLG.insert(0, u64::from(self.overflow_acked)) as u32;
        self.write32(regs::EVENTQ_CONS, self.event_cons.value | ack);
    }

    /// Reports the active global errors and acknowledges them (6.3.19: an error is active
    /// while its `SMMU_GERROR` bit differs from `SMMU_GERRORN`'s; writing GERRORN toggles it
    /// back).
    fn serve_gerror(&self) {
        let gerror = self.read32(regs::GERROR);
        let active = GlobalErrors::active(gerror, self.read32(regs::GERRORN));
        if active.0 == 0 {
            return;
        }
        log!("SMMUv3 global error: {active}");
        if active.has(GlobalErrors::CMDQ_ERR) {
            let err = regs::CMDQ_CONS_ERR.get(u64::from(self.read32(regs::CMDQ_CONS))) as u32;
            log!(
                "SMMUv3: command queue error {}",
                regs::command_error_name(err)
            );
        }
        self.write32(regs::GERRORN, GlobalErrors::acknowledge(gerror));
    }
}

/// A barrier that orders Moat's writes of the tables and queues (Normal memory) before the
/// register write that hands them to the SMMU, as IHI 0070 3.5.2 asks (`DSB`).
fn barrier() {
    // SAFETY: a barrier only; no memory is accessed.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Takes the SMMU `smmu` (whose features are `features`) for Moat: the SMMU disabled
/// (transactions aborted meanwhile, `SMMU_GBPA.ABORT`), a stream table of abort STEs covering
/// stream IDs up to `max_stream_id`, the queues, the configuration and TLBs invalidated, the
/// event and global error interrupts on, then `SMMUEN`. Returns the interrupts to enable.
///
/// # Errors
///
/// When memory for the structures cannot be had.
pub fn take(
    smmu: SmmuV3,
    features: &SmmuFeatures,
    max_stream_id: u32,
    phys: &mut PhysAllocator,
) -> Result<[Option<u32>; 2], crate::mm::OutOfMemory> {
    let layout = Layout::new(features, max_stream_id);
    let alloc = |phys: &mut PhysAllocator, bytes: u64| phys.alloc(bytes, bytes.max(64));
    let strtab = alloc(phys, layout.stream_table_bytes())?;
    let cmdq = alloc(phys, layout.cmdq_bytes())?;
    let eventq = alloc(phys, layout.eventq_bytes())?;
    let mut s = Smmu {
        base: smmu.regs.base as usize,
        layout,
        strtab,
        cmd_prod: QueueIndex::from_register(layout.cmdq_log2, 0),
        cmdq,
        eventq,
        event_cons: QueueIndex::from_register(layout.eventq_log2, 0),
        overflow_acked: false,
        eventq_intid: smmu.eventq,
        gerror_intid: smmu.gerror,
    };
    // 6.3.14: with SMMUEN = 0 transactions follow SMMU_GBPA; abort them while Moat sets up.
    let gbpa = regs::GBPA_ABORT.insert(0, 1) | regs::GBPA_UPDATE.insert(0, 1);
    s.write32(regs::GBPA, gbpa as u32);
    s.poll(regs::GBPA, "SMMU_GBPA update", |v| {
        !regs::GBPA_UPDATE.is_set(u64::from(v))
    });
    s.set_cr0(0);
    s.set_irq_ctrl(0);
    for stream in 0..layout.stream_count() {
        s.write_ste(stream, &Ste::abort());
    }
    // SAFETY: the queues were just allocated for the SMMU alone: zeroed, nothing stale in them.
    unsafe {
        core::ptr::write_bytes(cmdq as *mut u8, 0, layout.cmdq_bytes() as usize);
        core::ptr::write_bytes(eventq as *mut u8, 0, layout.eventq_bytes() as usize);
    }
    barrier();
    s.write32(regs::CR1, regs::cr1());
    s.write32(regs::CR2, regs::CR2_RECINVSID.insert(0, 1) as u32);
    s.write64(regs::STRTAB_BASE, layout.strtab_base(strtab));
    s.write32(regs::STRTAB_BASE_CFG, layout.strtab_base_cfg());
    s.write64(regs::CMDQ_BASE, layout.cmdq_base(cmdq));
    s.write32(regs::CMDQ_PROD, 0);
    s.write32(regs::CMDQ_CONS, 0);
    s.write64(regs::EVENTQ_BASE, layout.eventq_base(eventq));
    s.write32(regs::EVENTQ_PROD, 0);
    s.write32(regs::EVENTQ_CONS, 0);
    // Errors left by earlier software: reported and acknowledged before Moat's own.
    s.serve_gerror();
    let cmdqen = regs::CR0_CMDQEN.insert(0, 1) as u32;
    s.set_cr0(cmdqen);
    s.issue(&[Command::cfgi_all(), Command::tlbi_nsnh_all()]);
    let eventqen = cmdqen | regs::CR0_EVENTQEN.insert(0, 1) as u32;
    s.set_cr0(eventqen);
    let irqs = regs::IRQ_CTRL_GERROR_IRQEN.insert(0, 1) | regs::IRQ_CTRL_EVENTQ_IRQEN.insert(0, 1);
    s.set_irq_ctrl(irqs as u32);
    s.set_cr0(eventqen | regs::CR0_SMMUEN.insert(0, 1) as u32);
    log!(
        "SMMUv3: enabled: {} STEs at {:#x} (all abort), command queue {} entries, event queue {} entries",
        layout.stream_count(),
        strtab,
        1u32 << layout.cmdq_log2,
        1u32 << layout.eventq_log2
    );
    let intids = [smmu.eventq, smmu.gerror];
    *SMMU.lock() = Some(s);
    Ok(intids)
}

/// Gives stream `stream` the entry `ste` and makes the SMMU forget what it cached of it (and
/// of the VMID `vmid`'s translations, if any).
///
/// # Panics
///
/// When no SMMU was taken or `stream` is beyond the table: the caller checked both (a Moat
/// bug).
pub fn set_ste(stream: u32, ste: &Ste, vmid: Option<u16>) {
    let mut guard = SMMU.lock();
    let s = guard.as_mut().expect("an SMMU was taken");
    assert!(
        u64::from(stream) < s.layout.stream_count(),
        "stream {stream:#x} beyond the stream table"
    );
    s.write_ste(u64::from(stream), ste);
    match vmid {
        Some(vmid) => s.issue(&[Command::cfgi_ste(stream), Command::tlbi_s12_vmall(vmid)]),
        None => s.issue(&[Command::cfgi_ste(stream)]),
    }
}

/// Makes the SMMU forget its cached translations of VMID `vmid` (after a stage-2 unmap;
/// `CMD_TLBI_S12_VMALL`); nothing without an SMMU.
pub fn invalidate_vm(vmid: u16) {
    if let Some(s) = SMMU.lock().as_mut() {
        s.issue(&[Command::tlbi_s12_vmall(vmid)]);
    }
}

/// Serves `intid` if it is one of the SMMU's: the event queue drained and reported, or the
/// global errors reported and acknowledged. Returns whether it was.
pub fn serve(intid: u32) -> bool {
    let mut guard = SMMU.lock();
    let Some(s) = guard.as_mut() else {
        return false;
    };
    if s.eventq_intid == Some(intid) {
        s.drain_events();
        true
    } else if s.gerror_intid == Some(intid) {
        s.serve_gerror();
        true
    } else {
        false
    }
}
