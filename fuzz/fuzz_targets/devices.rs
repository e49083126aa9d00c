//! The PL011, GIC and virtio-net models under sequences of guest register accesses and
//! hypervisor inputs (virtio-net: see `virtio_net` below).
//!
//! PL011: read data fits the access size, writes read 0, an interrupt-level effect is reported
//! exactly when the level changed. GIC: the fuzz input drives the model the way EL2 does — guest
//! accesses to the distributor and redistributors, SPI and PPI line changes, SGIs, and per vCPU
//! the list-register protocol (`list_regs`' module documentation: sync the live list registers
//! a simulated CPU interface holds, fill, write what the fill says), with the guest changing
//! its list registers' states in between (acknowledge, complete, deactivate). After every
//! input the model's own invariants hold (`Gic::check_invariants`: per-vCPU summaries against
//! a full recomputation, list-register ownership), kicks name only vCPUs the VM has, and no
//! interrupt is valid in two vCPUs' simulated list registers. SPIs backed by physical ones are
//! mapped, raised and settled as EL2 does for a PCI function's INTx line. A `WFI` ends
//! (`wakes_from_wfi`, for an arbitrary state of the guest's virtual CPU interface) only when the
//! vCPU has a deliverable interrupt, and always when it has one and the interface is open (every
//! priority unmasked, both groups on, nothing active). Some inputs sync arbitrary
//! list-register values (a CPU interface that misbehaves): the model must stay consistent, but
//! the simulated registers then no longer mean anything and the last check is dropped.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use moat_devices::gic::list_regs::{
    IchVtr, ListRegister, LrFill, LrState, MAX_LIST_REGS, VirtualInterface,
};
use moat_devices::gic::{DISTRIBUTOR_SIZE, MAX_VCPUS, REDISTRIBUTOR_STRIDE, VcpuSet, VirtGic};
use moat_devices::pl011::Pl011;
use moat_devices::virtio_net::{GuestMemory, MAX_FRAME, OutsideRam, VirtioNet};
use moat_devices::{Access, MmioDevice};

/// QEMU's `ICH_VTR_EL2`: 4 list registers, 5 priority bits.
const QEMU_VTR: u64 = 0x90b8_0003;

fn access(u: &mut Unstructured<'_>, window: u64) -> Result<Access> {
    let offset = if u.ratio(7, 8)? {
        u.int_in_range(0..=window / 4 - 1)? * 4
    } else {
        u.arbitrary()?
    };
    let size = *u.choose(&[4u8, 4, 4, 8, 1, 2, 0, 3, 16])?;
    let write = if u.arbitrary()? {
        Some(u.arbitrary()?)
    } else {
        None
    };
    Ok(Access {
        offset,
        size,
        write,
    })
}

fn check_access(access: &Access, data: u64) {
    if access.write.is_some() {
        assert_eq!(data, 0, "a write returned data");
    }
    assert_eq!(data & !access.size_mask(), 0, "data wider than the access");
}

fn pl011(u: &mut Unstructured<'_>) -> Result<()> {
    let mut uart = Pl011::new();
    while !u.is_empty() {
        if u.ratio(1, 4)? {
            let _ = uart.push_rx(u.arbitrary()?);
            continue;
        }
        let a = access(u, 0x1000)?;
        let before = uart.interrupt_level();
        let (data, effects) = uart.access(a);
        check_access(&a, data);
        let after = uart.interrupt_level();
        let expected = (before != after).then_some(after);
        assert_eq!(
            effects.irq_level, expected,
            "interrupt-level effect of {a:?}"
        );
        if effects.console_out.is_some() {
            assert!(a.write.is_some(), "console output from a read");
        }
    }
    Ok(())
}

/// The simulated CPU interface of each vCPU: its list registers' contents.
struct Cpus {
    lrs: [[u64; MAX_LIST_REGS]; MAX_VCPUS],
    /// Arbitrary values were synced: the simulation no longer follows the hardware.
    garbage: bool,
}

fn check_kick(gic: &VirtGic, kick: VcpuSet) {
    assert!(
        kick.iter().all(|v| v < gic.vcpus()),
        "kick {kick:?} beyond the VM's vCPUs"
    );
}

/// No SPI is valid in two vCPUs' list registers (a private interrupt's INTID is per vCPU).
fn check_no_interrupt_twice(cpus: &Cpus, gic: &VirtGic, lr_count: usize) {
    let mut holder = [None; 1024];
    for vcpu in 0..gic.vcpus() {
        for &value in &cpus.lrs[vcpu][..lr_count] {
            let lr = ListRegister::decode(value);
            if lr.state == LrState::Invalid || lr.vintid < 32 {
                continue;
            }
            let slot = &mut holder[lr.vintid as usize % 1024];
            assert!(
                slot.is_none_or(|v| v == vcpu),
                "INTID {} in the list registers of vCPUs {slot:?} and {vcpu}",
                lr.vintid
            );
            *slot = Some(vcpu);
        }
    }
}

/// An exit of `vcpu` and its re-entry: sync, then fill, as EL2 does.
fn exit_and_enter(gic: &mut VirtGic, cpus: &mut Cpus, vcpu: usize, vtr: IchVtr) {
    let live = gic.live_list_registers(vcpu);
    assert!(live <= MAX_LIST_REGS, "{live} live list registers");
    let kick = gic.sync_from_list_registers(vcpu, &cpus.lrs[vcpu][..live]);
    check_kick(gic, kick);
    gic.check_invariants();
    if let LrFill::Write(writes) = gic.fill_list_registers(vcpu, vtr) {
        let n = writes.values().len();
        assert!(
            n <= vtr.list_regs.min(MAX_LIST_REGS),
            "{n} writes for {vtr:?}"
        );
        cpus.lrs[vcpu][..writes.values().len()].copy_from_slice(writes.values());
        check_kick(gic, writes.kick());
    }
}

fn gic(u: &mut Unstructured<'_>) -> Result<()> {
    let vcpus = u.int_in_range(1..=MAX_VCPUS)?;
    let mut gic = VirtGic::new(vcpus).expect("1..=MAX_VCPUS vCPUs");
    // Mostly QEMU's 4 list registers; sometimes any ICH_VTR_EL2 (1..=16 list registers).
    let vtr = IchVtr::decode(if u.ratio(3, 4)? {
        QEMU_VTR
    } else {
        u.arbitrary()?
    });
    // The simulated CPU interface has what `ICH_VTR_EL2` says, up to the architecture's 16.
    let lr_count = vtr.list_regs.min(MAX_LIST_REGS);
    let mut cpus = Cpus {
        lrs: [[0; MAX_LIST_REGS]; MAX_VCPUS],
        garbage: false,
    };
    let redistributors = REDISTRIBUTOR_STRIDE * (MAX_VCPUS as u64 + 1);
    while !u.is_empty() {
        let vcpu = u.int_in_range(0..=MAX_VCPUS)?;
        match u.int_in_range(0u8..=12)? {
            0 | 1 => {
                let a = access(u, DISTRIBUTOR_SIZE)?;
                let (data, effects) = gic.distributor_access(a);
                check_access(&a, data);
                check_kick(&gic, effects.kick);
            }
            2 | 3 => {
                let a = access(u, redistributors)?;
                let (data, effects) = gic.redistributor_access(a);
                check_access(&a, data);
                check_kick(&gic, effects.kick);
            }
            4 => {
                let intid = u.int_in_range(0..=140)?;
                let kick = gic.set_spi_level(intid, u.arbitrary()?);
                check_kick(&gic, kick);
            }
            5 => {
                let intid = u.int_in_range(0..=40)?;
                let kick = gic.set_ppi_level(vcpu, intid, u.arbitrary()?);
                check_kick(&gic, kick);
            }
            6 => {
                let kick = gic.send_sgi(vcpu, u.arbitrary()?);
                check_kick(&gic, kick);
            }
            7 if vcpu < vcpus => {
                // The guest changes a list register's state: acknowledge (pending → active),
                // EOI/deactivate (→ invalid or pending), or anything the state field allows.
                let i = u.int_in_range(0..=lr_count - 1)?;
                let mut lr = ListRegister::decode(cpus.lrs[vcpu][i]);
                lr.state = *u.choose(&[
                    LrState::Invalid,
                    LrState::Pending,
                    LrState::Active,
                    LrState::PendingActive,
                ])?;
                cpus.lrs[vcpu][i] = lr.encode();
            }
            8 if u.ratio(1, 8)? => {
                // A misbehaving CPU interface: arbitrary list-register values synced.
                let lrs: Vec<u64> = (0..u.int_in_range(0..=6)?)
                    .map(|_| u.arbitrary())
                    .collect::<Result<_>>()?;
                let kick = gic.sync_from_list_registers(vcpu, &lrs);
                check_kick(&gic, kick);
                cpus.garbage = true;
            }
            10 => {
                // A PCI function's INTx line: a physical SPI backing a guest SPI.
                let _ = gic.map_hw_spi(u.int_in_range(30..=45)?, u.int_in_range(30..=45)?);
                let kick = gic.raise_hw_spi(u.int_in_range(30..=45)?);
                check_kick(&gic, kick);
            }
            11 => {
                let (_, kick) = gic.settle_hw_spi(u.int_in_range(30..=45)?, u.arbitrary()?);
                check_kick(&gic, kick);
            }
            12 => wfi(u, &gic, vcpu, vtr)?,
            _ if vcpu < vcpus => exit_and_enter(&mut gic, &mut cpus, vcpu, vtr),
            _ => {
                let _ = gic.has_deliverable(vcpu);
            }
        }
        gic.check_invariants();
        if !cpus.garbage {
            check_no_interrupt_twice(&cpus, &gic, lr_count);
        }
    }
    Ok(())
}

/// The guest's `WFI` on `vcpu` against an arbitrary state of its virtual CPU interface
/// (`ICH_VMCR_EL2` and active priorities), or a fully open one.
fn wfi(u: &mut Unstructured<'_>, gic: &VirtGic, vcpu: usize, vtr: IchVtr) -> Result<()> {
    let open = u.arbitrary()?;
    let interface = if open {
        // VPMR 0xFF, VENG0 and VENG1 on, nothing active (running priority idle).
        let idle = VirtualInterface::running_priority(&[], vtr.preemption_bits);
        VirtualInterface::from_ich_vmcr(0xFF << 24 | 0b11, idle)
    } else {
        let aprs: Vec<u32> = (0..u.int_in_range(0..=4)?)
            .map(|_| u.arbitrary())
            .collect::<Result<_>>()?;
        let running = VirtualInterface::running_priority(&aprs, vtr.preemption_bits);
        VirtualInterface::from_ich_vmcr(u.arbitrary()?, running)
    };
    let wakes = gic.wakes_from_wfi(vcpu, &interface, vtr);
    let deliverable = gic.has_deliverable(vcpu);
    assert!(!wakes || deliverable, "WFI ended with nothing deliverable");
    // With fewer than 8 priority bits every priority the list register keeps is below the
    // open mask 0xFF.
    if open && deliverable && vtr.priority_bits < 8 {
        assert!(
            wakes,
            "WFI waits with a deliverable interrupt and an open interface"
        );
    }
    Ok(())
}

/// A small guest RAM at [`RAM_BASE`] for the virtio-net model, its bytes chosen by the input.
struct Ram(Vec<u8>);

const RAM_BASE: u64 = 0x4000_0000;

impl Ram {
    fn range(&self, ipa: u64, len: u64) -> Result<core::ops::Range<usize>, OutsideRam> {
        let start = ipa.checked_sub(RAM_BASE).ok_or(OutsideRam)?;
        let end = start.checked_add(len).ok_or(OutsideRam)?;
        if end > self.0.len() as u64 {
            return Err(OutsideRam);
        }
        Ok(start as usize..end as usize)
    }
}

impl GuestMemory for Ram {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> core::result::Result<(), OutsideRam> {
        let range = self.range(ipa, buf.len() as u64)?;
        buf.copy_from_slice(&self.0[range]);
        Ok(())
    }
    fn write(&mut self, ipa: u64, data: &[u8]) -> core::result::Result<(), OutsideRam> {
        let range = self.range(ipa, data.len() as u64)?;
        self.0[range].copy_from_slice(data);
        Ok(())
    }
    fn check(&self, ipa: u64, len: u64) -> core::result::Result<(), OutsideRam> {
        self.range(ipa, len).map(|_| ())
    }
}

/// The virtio-net model driven by arbitrary register accesses (biased to the transport's
/// registers and to ring addresses inside the RAM) and frame deliveries over RAM of arbitrary
/// bytes: no panic, read data fits the access, no transmitted frame is longer than
/// `MAX_FRAME`, the line's effects alternate, and a device needing reset moves nothing.
fn virtio_net(u: &mut Unstructured<'_>) -> Result<()> {
    let mut ram = Ram(u.bytes(0x2000)?.to_vec());
    ram.0.resize(0x2000, 0);
    let mut net = VirtioNet::new([2, 0, 0, 0, 0, 1]);
    let mut level = false;
    while !u.is_empty() {
        let before_reset = net.needs_reset();
        let (frames, irq) = if u.ratio(1, 6)? {
            let len = u.int_in_range(0..=1600)?;
            let (delivered, effects) = net.deliver(&vec![0x5A; len], &mut ram);
            assert!(
                !(delivered && before_reset),
                "delivered while needing reset"
            );
            (effects.frames, effects.irq_level)
        } else {
            let mut a = access(u, 0x200)?;
            if let Some(value) = a.write.as_mut()
                && u.ratio(1, 2)?
            {
                *value = RAM_BASE + u.int_in_range(0..=0x2000)?;
            }
            let (data, effects) = net.access(a, &mut ram);
            check_access(&a, data);
            (effects.frames, effects.irq_level)
        };
        assert!(frames.iter().all(|f| f.len() <= MAX_FRAME));
        assert!(
            frames.is_empty() || !before_reset,
            "frames sent while needing reset"
        );
        if let Some(now) = irq {
            assert_ne!(now, level, "a line effect without a change");
            level = now;
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = match u.int_in_range(0..=2u8).unwrap_or(0) {
        0 => pl011(&mut u),
        1 => gic(&mut u),
        _ => virtio_net(&mut u),
    };
});
