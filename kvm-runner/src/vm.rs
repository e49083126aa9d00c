//! The VM under KVM (Linux `Documentation/virt/kvm/api.rst`, the arm64 sections, and
//! `devices/arm-vgic-v3.rst`): one memslot of guest RAM, the vCPUs with in-kernel PSCI 0.2, the
//! in-kernel vGICv3 on QEMU virt's addresses, and one thread per vCPU running `KVM_RUN`.
//!
//! KVM answers the guest's PSCI calls, the GIC distributor and redistributors and the timers
//! itself; only `KVM_EXIT_MMIO` for the PL011 (`moat_kvm_runner::mmio`) and the end of the guest
//! (`KVM_EXIT_SYSTEM_EVENT`) come to this process. Any other exit, or a `KVM_RUN` error (e.g.
//! ENOSYS for an MMIO access without a valid syndrome), ends the run with a message.
//!
//! With `--no-vgic` the VM has no in-kernel interrupt controller: KVM then keeps the timer's
//! and PMU's interrupt lines for a userspace one (`KVM_CAP_ARM_USER_IRQ`), which this runner
//! does not provide; the option exists to measure what the vGIC changes on KVM's exit path
//! (an HVC round trip costs KVM 6.1 417 more instructions in VHE and 440 in nVHE without it).

use kvm_bindings::{
    KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_TYPE_SPI, KVM_ARM_VCPU_PMU_V3, KVM_ARM_VCPU_PMU_V3_CTRL,
    KVM_ARM_VCPU_PMU_V3_INIT, KVM_ARM_VCPU_PMU_V3_IRQ, KVM_ARM_VCPU_POWER_OFF,
    KVM_ARM_VCPU_PSCI_0_2, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR,
    KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_REG_ARM_CORE, KVM_REG_ARM64,
    KVM_REG_SIZE_U64, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
    KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST, kvm_create_device, kvm_device_attr,
    kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3, kvm_regs, kvm_userspace_memory_region, kvm_vcpu_init,
};
use kvm_ioctls::{Cap, DeviceFd, Kvm, VcpuExit, VcpuFd, VmFd};
use moat_kvm_runner::args::Args;
use moat_kvm_runner::layout::devices::{GIC_NR_IRQS, GICD_BASE, GICR_BASE, PL011_INTID, PMU_INTID};
use moat_kvm_runner::layout::{Layout, RAM_BASE};
use moat_kvm_runner::mmio::{Bus, Effects, Unclaimed};
use std::io::Write;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

/// Why the VM could not be built: one line for stderr.
pub type SetupError = String;

/// How the guest's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// PSCI `SYSTEM_OFF` (`KVM_SYSTEM_EVENT_SHUTDOWN`).
    PowerOff,
    /// Anything else: what happened, for stderr.
    Unexpected(String),
}

/// Builds the VM, loads `image` and `dtb` as `layout` says, runs `smp` vCPUs until the guest
/// ends and returns how it ended.
///
/// # Errors
///
/// A [`SetupError`] when KVM refuses a step of building the VM.
pub fn run(layout: &Layout, args: &Args, image: &[u8], dtb: &[u8]) -> Result<End, SetupError> {
    let kvm = Kvm::new().map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
    let vm = Arc::new(create_vm(&kvm, args.ipa_bits)?);
    let ram = GuestRam::map(layout.ram_size)?;
    ram.load(layout.image_addr - RAM_BASE, image);
    ram.load(layout.dtb_addr - RAM_BASE, dtb);
    ram.register(&vm)?;
    let vcpus = (0..args.smp)
        .map(|id| create_vcpu(&vm, id, layout, args.pmu))
        .collect::<Result<Vec<_>, _>>()?;
    // The vGIC is initialised after every vCPU exists (arm-vgic-v3.rst, `KVM_DEV_ARM_VGIC_CTRL_INIT`),
    // and a vCPU's PMU after the vGIC (devices/vcpu.rst, `KVM_ARM_VCPU_PMU_V3_INIT`).
    let _gic = args.vgic.then(|| create_vgic(&vm)).transpose()?;
    if args.pmu {
        for vcpu in &vcpus {
            init_pmu(vcpu)?;
        }
    }
    let shared = Arc::new(Mutex::new(Console {
        uart_irq_routed: args.vgic,
        ..Console::default()
    }));
    let (ends, end) = channel();
    for (id, vcpu) in (0u32..).zip(vcpus) {
        let (vm, shared, ends) = (Arc::clone(&vm), Arc::clone(&shared), ends.clone());
        std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || run_vcpu(id, vcpu, &vm, &shared, &ends))
            .map_err(|e| format!("cannot start the thread of vCPU {id}: {e}"))?;
    }
    // The first vCPU to end the run decides how it ended; the others may sit in `KVM_RUN` (a
    // vCPU that is off) and end with the process.
    let ended = end
        .recv()
        .unwrap_or_else(|_| End::Unexpected("every vCPU thread ended without a result".into()));
    if let Ok(mut console) = shared.lock() {
        console.flush();
    }
    Ok(ended)
}

/// `KVM_CREATE_VM` with the IPA size as the VM type (`KVM_VM_TYPE_ARM_IPA_SIZE`), checked
/// against the host's limit (`KVM_CAP_ARM_VM_IPA_SIZE`); a host without the capability has
/// 40 bits only.
fn create_vm(kvm: &Kvm, ipa_bits: u32) -> Result<VmFd, SetupError> {
    let limit = if kvm.check_extension(Cap::ArmVmIPASize) {
        u32::try_from(kvm.get_host_ipa_limit()).unwrap_or(0)
    } else {
        40
    };
    if ipa_bits > limit {
        return Err(format!(
            "a {ipa_bits}-bit IPA space is above this host's KVM limit of {limit} bits"
        ));
    }
    let vm = if kvm.check_extension(Cap::ArmVmIPASize) {
        kvm.create_vm_with_ipa_size(ipa_bits)
    } else {
        kvm.create_vm()
    };
    vm.map_err(|e| format!("KVM_CREATE_VM ({ipa_bits}-bit IPA): {e}"))
}

/// The guest's RAM: an anonymous private mapping of this process, mapped for the life of the
/// process (the vCPU threads use it until the process exits, so it is never unmapped).
struct GuestRam {
    host: *mut u8,
    len: usize,
}

impl GuestRam {
    fn map(len: u64) -> Result<Self, SetupError> {
        let len = usize::try_from(len).map_err(|_| format!("{len} bytes of RAM"))?;
        // SAFETY: an anonymous mapping at an address the kernel picks touches no existing
        // memory; the result is checked against MAP_FAILED before it is used.
        let host = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if host == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            return Err(format!("cannot map {len} bytes of guest RAM: {e}"));
        }
        Ok(Self {
            host: host.cast(),
            len,
        })
    }

    /// Copies `bytes` to `offset` from the RAM's start. The layout was checked to fit.
    fn load(&self, offset: u64, bytes: &[u8]) {
        let offset = usize::try_from(offset).expect("the layout fits the address space");
        assert!(
            offset
                .checked_add(bytes.len())
                .is_some_and(|end| end <= self.len),
            "the layout was checked to fit the RAM"
        );
        // SAFETY: the destination lies inside the mapping (asserted above), which no vCPU runs
        // on yet, and cannot overlap `bytes`, which Rust owns elsewhere.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.host.add(offset), bytes.len());
        }
    }

    /// Makes the RAM memslot 0 at [`RAM_BASE`].
    fn register(&self, vm: &VmFd) -> Result<(), SetupError> {
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: RAM_BASE,
            memory_size: self.len as u64,
            userspace_addr: self.host as u64,
        };
        // SAFETY: the region is this process's mapping of `len` bytes, which stays mapped for
        // the life of the process and so outlives the VM.
        unsafe { vm.set_user_memory_region(region) }
            .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))
    }
}

/// `KVM_CREATE_VCPU` and `KVM_ARM_VCPU_INIT` with the host's preferred target and PSCI 0.2;
/// vCPUs after the first start powered off (PSCI `CPU_ON` starts them). vCPU 0 enters the image
/// with `x0` = the device tree's address; the reset state is EL1h with `DAIF` masked.
fn create_vcpu(vm: &VmFd, id: u32, layout: &Layout, pmu: bool) -> Result<VcpuFd, SetupError> {
    let vcpu = vm
        .create_vcpu(u64::from(id))
        .map_err(|e| format!("KVM_CREATE_VCPU {id}: {e}"))?;
    let mut init = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut init)
        .map_err(|e| format!("KVM_ARM_PREFERRED_TARGET: {e}"))?;
    init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    if id != 0 {
        init.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
    }
    if pmu {
        init.features[0] |= 1 << KVM_ARM_VCPU_PMU_V3;
    }
    vcpu.vcpu_init(&init)
        .map_err(|e| format!("KVM_ARM_VCPU_INIT {id}: {e}"))?;
    if id == 0 {
        let pc = std::mem::offset_of!(kvm_regs, regs.pc);
        let x0 = std::mem::offset_of!(kvm_regs, regs.regs);
        set_core_reg(&vcpu, pc, layout.image_addr)?;
        set_core_reg(&vcpu, x0, layout.dtb_addr)?;
    }
    Ok(vcpu)
}

/// `KVM_SET_ONE_REG` of the core register at byte `offset` in `struct kvm_regs` (its id is the
/// offset in 32-bit words, api.rst "ARM64 core registers").
fn set_core_reg(vcpu: &VcpuFd, offset: usize, value: u64) -> Result<(), SetupError> {
    let id = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | u64::from(KVM_REG_ARM_CORE) | (offset / 4) as u64;
    vcpu.set_one_reg(id, &value.to_le_bytes())
        .map(|_| ())
        .map_err(|e| format!("KVM_SET_ONE_REG {id:#x}: {e}"))
}

/// The vCPU's PMU: its overflow interrupt is PPI 7 (INTID 23, QEMU virt's `VIRTUAL_PMU_IRQ`),
/// then `KVM_ARM_VCPU_PMU_V3_INIT`.
fn init_pmu(vcpu: &VcpuFd) -> Result<(), SetupError> {
    let intid: u32 = PMU_INTID;
    let set = |attr: u32, addr: u64, what: &str| {
        let attr = kvm_device_attr {
            flags: 0,
            group: KVM_ARM_VCPU_PMU_V3_CTRL,
            attr: u64::from(attr),
            addr,
        };
        vcpu.set_device_attr(&attr)
            .map_err(|e| format!("vCPU PMU {what}: {e}"))
    };
    set(
        KVM_ARM_VCPU_PMU_V3_IRQ,
        &raw const intid as u64,
        "interrupt",
    )?;
    set(KVM_ARM_VCPU_PMU_V3_INIT, 0, "init")
}

/// The in-kernel vGICv3: distributor and redistributors where QEMU virt has them,
/// [`GIC_NR_IRQS`] interrupts, then `KVM_DEV_ARM_VGIC_CTRL_INIT`.
fn create_vgic(vm: &VmFd) -> Result<DeviceFd, SetupError> {
    let mut device = kvm_create_device {
        type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
        fd: 0,
        flags: 0,
    };
    let gic = vm
        .create_device(&mut device)
        .map_err(|e| format!("KVM_CREATE_DEVICE (vGICv3): {e}"))?;
    let set = |group: u32, attr: u32, addr: u64, what: &str| {
        let attr = kvm_device_attr {
            flags: 0,
            group,
            attr: u64::from(attr),
            addr,
        };
        gic.set_device_attr(&attr)
            .map_err(|e| format!("vGICv3 {what}: {e}"))
    };
    let (dist, redist, nr_irqs) = (GICD_BASE, GICR_BASE, GIC_NR_IRQS);
    let group_addr = KVM_DEV_ARM_VGIC_GRP_ADDR;
    set(
        group_addr,
        KVM_VGIC_V3_ADDR_TYPE_DIST,
        &raw const dist as u64,
        "distributor",
    )?;
    set(
        group_addr,
        KVM_VGIC_V3_ADDR_TYPE_REDIST,
        &raw const redist as u64,
        "redistributors",
    )?;
    set(
        KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
        0,
        &raw const nr_irqs as u64,
        "nr_irqs",
    )?;
    set(
        KVM_DEV_ARM_VGIC_GRP_CTRL,
        KVM_DEV_ARM_VGIC_CTRL_INIT,
        0,
        "init",
    )?;
    Ok(gic)
}

/// The PL011 and the console line it is writing, shared by the vCPU threads.
#[derive(Default)]
struct Console {
    bus: Bus,
    line: Vec<u8>,
    /// Whether the PL011's interrupt line reaches an interrupt controller (the vGIC).
    uart_irq_routed: bool,
}

impl Console {
    /// Writes what the guest printed so far to stdout (a whole line at a time while it runs, so
    /// that the host kernel's console work stays out of the guest's timed loops).
    fn flush(&mut self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&self.line);
        let _ = out.flush();
        self.line.clear();
    }
}

/// One vCPU's `KVM_RUN` loop, until it ends the run (sent on `ends`).
fn run_vcpu(id: u32, mut vcpu: VcpuFd, vm: &VmFd, console: &Mutex<Console>, ends: &Sender<End>) {
    let end = loop {
        match exit(id, &mut vcpu, vm, console) {
            Ok(None) => {}
            Ok(Some(end)) => break end,
            Err(message) => break End::Unexpected(format!("vCPU {id}: {message}")),
        }
    };
    let _ = ends.send(end);
}

/// One `KVM_RUN` and its exit: `Some` when the run has ended.
fn exit(
    id: u32,
    vcpu: &mut VcpuFd,
    vm: &VmFd,
    console: &Mutex<Console>,
) -> Result<Option<End>, String> {
    let exit = match vcpu.run() {
        Ok(exit) => exit,
        // A signal or a request to re-enter: run again.
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => return Ok(None),
        Err(e) => return Err(format!("KVM_RUN failed: {e}")),
    };
    match exit {
        VcpuExit::MmioRead(addr, data) => {
            mmio(vm, console, |bus| bus.read(addr, data)).map(|()| None)
        }
        VcpuExit::MmioWrite(addr, data) => {
            mmio(vm, console, |bus| bus.write(addr, data)).map(|()| None)
        }
        VcpuExit::SystemEvent(kind, data) => Ok(Some(system_event(id, kind, data))),
        other => Err(format!("unexpected exit {other:?}")),
    }
}

/// An MMIO exit answered by the bus (`access`); its console byte and interrupt level carried
/// out.
fn mmio(
    vm: &VmFd,
    console: &Mutex<Console>,
    access: impl FnOnce(&mut Bus) -> Result<Effects, Unclaimed>,
) -> Result<(), String> {
    let mut console = console.lock().map_err(|_| "the console lock is poisoned")?;
    let effects = access(&mut console.bus).map_err(|e| e.to_string())?;
    if let Some(byte) = effects.console_out {
        console.line.push(byte);
        if byte == b'\n' {
            console.flush();
        }
    }
    if let Some(level) = effects.uart_irq.filter(|_| console.uart_irq_routed) {
        let irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | PL011_INTID;
        vm.set_irq_line(irq, level)
            .map_err(|e| format!("KVM_IRQ_LINE (PL011, INTID {PL011_INTID}): {e}"))?;
    }
    Ok(())
}

/// `KVM_EXIT_SYSTEM_EVENT`: PSCI `SYSTEM_OFF` ends the run well; a reset or anything else does
/// not (the runner runs a guest once).
fn system_event(id: u32, kind: u32, data: &[u64]) -> End {
    match kind {
        KVM_SYSTEM_EVENT_SHUTDOWN => End::PowerOff,
        KVM_SYSTEM_EVENT_RESET => End::Unexpected(format!(
            "vCPU {id}: the guest asked for a reset (PSCI SYSTEM_RESET)"
        )),
        _ => End::Unexpected(format!("vCPU {id}: system event {kind} (data {data:x?})")),
    }
}
