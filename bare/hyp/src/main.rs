//! Moat's EL2 binary: boot, the world switch, and the hardware side of every trap.
//!
//! The binary captures trap state and carries out effects; the decisions (syndromes, stage-2
//! layout, device models, PSCI, configuration) come from the logic crates, which are tested on
//! the host. This crate holds all of Moat's assembly and almost all of its `unsafe`.
//!
//! Boot sequence ([`moat_main`]): read the device tree the loader passed, take the console,
//! carve physical memory, turn on Moat's own EL2 translation, report the machine, then build
//! the VM described by the bundle the host tool passed as the initrd, and run it until it ends.
#![no_std]
#![no_main]

extern crate alloc;

mod aborts;
mod boot;
mod cadence_uart;
mod console;
mod cpacr;
mod cpu;
mod exits;
mod fastpath;
mod gic;
mod guest;
mod idregs;
mod irqs;
mod isolation;
mod lock;
mod machine;
mod mem;
mod mm;
mod mmio;
mod net;
mod outcome;
mod pci;
mod platform;
mod power;
mod ram;
mod s2hw;
mod smccc;
mod smmu;
mod smp;
mod stacks;
mod switch;
mod sysregs;
mod uart;
mod vcpu;
mod vm;
mod vmpci;

use alloc::vec::Vec;
use console::log;
use mm::PhysAllocator;
use platform::{Gic, PhysRange, Platform, SelfTest};
use power::EndStatus;

/// The Rust entry point, called by `boot.rs` with the device tree's address.
extern "C" fn moat_main(dtb: u64) -> ! {
    // SAFETY: `dtb` is the loader's `x0`; the tree stays untouched: its range is reserved
    // below before any memory is handed out.
    let platform = match unsafe { platform::from_device_tree(dtb) } {
        Ok(platform) => platform,
        // No device tree means no console to say so on: power off.
        Err(_) => power::end(EndStatus::ConfigError),
    };
    power::set_conduit(platform.psci);
    if let Some(uart) = platform.console {
        // SAFETY: the device tree names this UART as the machine's console; Moat is the only
        // software driving it, and it is identity-mapped as device memory once translation is
        // on (it is passed in `devices` below).
        unsafe { console::init(uart.kind, uart.regs.base as usize) };
    }
    log!(
        "Moat {} starting at EL{}",
        env!("CARGO_PKG_VERSION"),
        cpu::current_el()
    );
    // Where the loader put Moat (it relocated itself there, `boot.rs`).
    log!("image: {}", mm::image_range());
    if cpu::current_el() != 2 {
        log!("error: Moat must be entered at EL2 (a hypervisor needs virtualization=on)");
        power::end(EndStatus::ConfigError);
    }
    let mut phys = PhysAllocator::new(&platform, mm::image_range());
    if let Err(e) = mm::init_heap(&mut phys) {
        panic!("heap: {e}");
    }
    mm::enable_el2_translation(&platform, &device_ranges(&platform));
    if platform.self_test == Some(SelfTest::El2StackOverflow) {
        overflow_the_stack();
    }
    let limit = report(&platform, &phys);
    let pci = pci::report(platform.pci, platform.smmu);
    let status = run_vm(&platform, &mut phys, limit, &pci);
    power::end(status)
}

/// The self-test `moat.self-test=el2-stack-overflow`: a Moat bug that overflows the boot CPU's
/// stack, whose report and power-off follow (`stacks.rs`).
fn overflow_the_stack() -> ! {
    /// Recurses with a frame the optimiser cannot remove, until the stack overflows.
    fn deeper(depth: u64) -> u64 {
        let frame = core::hint::black_box([depth; 32]);
        // Never true (the stack is a few thousand frames deep): it only gives the recursion
        // an end the compiler can see.
        if core::hint::black_box(depth) == u64::MAX {
            return 0;
        }
        core::hint::black_box(deeper(depth + 1)) + frame[31]
    }
    log!("self-test: El2StackOverflow");
    let depth = deeper(0);
    panic!("the stack did not overflow (depth {depth})")
}

/// Builds the VMs of the bundle the loader passed as the initrd, their PCI functions checked
/// against what `pci` found, and runs them.
fn run_vm(
    platform: &Platform,
    phys: &mut PhysAllocator,
    ipa_limit: u32,
    pci: &pci::Found,
) -> EndStatus {
    let Some(initrd) = platform.initrd else {
        log!("error: no VM bundle (the host tool passes it to Moat as the initrd)");
        return EndStatus::ConfigError;
    };
    // SAFETY: the loader put the initrd in RAM at this range and it is reserved at boot, so
    // nothing writes it while the slice lives; Moat's translation maps all RAM.
    let blob: &'static [u8] =
        unsafe { core::slice::from_raw_parts(initrd.base as *const u8, initrd.size as usize) };
    let bundle = match moat_config::Bundle::parse(blob) {
        Ok(bundle) => bundle,
        Err(e) => {
            log!("error: VM bundle at {initrd}: {e}");
            return EndStatus::ConfigError;
        }
    };
    if let Err(e) = pci.check(&bundle.system()) {
        log!("error: {e}");
        return EndStatus::ConfigError;
    }
    let smmu_intids = pci.take_smmu(phys);
    let mut functions = match pci.prepare(&bundle.system()) {
        Ok(functions) => functions.into_iter(),
        Err(e) => {
            log!("error: {e}");
            return EndStatus::ConfigError;
        }
    };
    let cpus = &platform.cpus[..platform.cpu_count];
    // The GIC first: the VMs' GIC models take the priority bits of its virtual CPU interface.
    let irq = take_interrupts(platform);
    // The SMMU's event queue and global error interrupts (edge: IHI 0070, 3.18) come to Moat.
    for intid in smmu_intids.into_iter().flatten() {
        if !gic::enable_spi(intid, true) {
            log!("SMMUv3: interrupt {intid} not taken: events and global errors go unreported");
        }
    }
    let machine = vm::MachineShape {
        ipa_limit,
        cpus,
        gic: platform.gic,
        smmu: pci.smmu(),
    };
    let mut vms = Vec::new();
    for (id, source) in bundle.into_vms().into_iter().enumerate() {
        let name = source.config().name.clone();
        let own = functions.next().unwrap_or_default();
        match vm::Vm::create(id, source, phys, &machine, own) {
            Ok(vm) => vms.push(vm),
            Err(e) => {
                log!("error: VM '{name}' refused: {e}");
                return EndStatus::ConfigError;
            }
        }
    }
    if let Some(SelfTest::StopVm(index)) = platform.self_test {
        match vms.get_mut(usize::from(index)) {
            Some(vm) => {
                log!("self-test: VM '{}' stops at its next exit", vm.config.name);
                vm.stop_at_next_exit = true;
            }
            None => log!("self-test: stop-vm:{index} names no VM; nothing is stopped"),
        }
    }
    vms.iter().for_each(vm::Vm::report);
    vms.iter().for_each(vm::Vm::check_confinement);
    let marked = isolation::place(phys);
    log!(
        "isolation: canaries in a page of Moat's own data at {:#x} and in {marked} free pages",
        isolation::own_page()
    );
    smp::run(vms, cpus, irq)
}

/// The machine's GIC (a GICv3, or a GICv2 with its virtualization extension), driven by
/// Moat: physical interrupts reach EL2 and become the guest's virtual ones. Without one (no
/// GIC in the device tree) the guest runs without interrupts. Returns the boot CPU's interface.
fn take_interrupts(platform: &Platform) -> Option<gic::CpuInterface> {
    let machine_gic = platform.gic?;
    let console = platform.console.and_then(|uart| uart.intid);
    // SAFETY: the device tree names these as the GIC's registers; Moat is the only software
    // driving them, and `device_ranges` identity-mapped them as device memory.
    match unsafe { gic::init(machine_gic, platform.cpu_count, console) } {
        Ok(irq) => Some(irq),
        Err(why) => {
            log!("the GIC could not be initialised ({why}): the guest gets no interrupts");
            None
        }
    }
}

/// Device ranges Moat maps for itself: its console, the GIC's frames, the PCIe host bridge's
/// ECAM region and the SMMU's registers.
fn device_ranges(platform: &Platform) -> [PhysRange; 6] {
    let uart = platform.console.map(|u| u.regs).unwrap_or_default();
    let [a, b, c] = gic::ranges(platform.gic);
    let [ecam, smmu] = pci::device_ranges(platform.pci, platform.smmu);
    [uart, a, b, c, ecam, smmu]
}

/// Reports the machine; returns the IPA limit `L`.
fn report(platform: &Platform, phys: &PhysAllocator) -> u32 {
    let id = cpu::identify();
    log!(
        "CPU: {} (MIDR_EL1 {:#010x}), PARange {} bits",
        id.name,
        id.midr,
        id.pa_bits
    );
    let limit = match moat_stage2::ipa_limit_bits(&[id.parange]) {
        Ok(limit) => limit,
        Err(e) => panic!("the CPU's PARange gives no IPA limit: {e}"),
    };
    log!("IPA limit L = {limit} bits (4K stage-2 granule, no VTCR_EL2.DS)");
    log!(
        "VMIDs: {} (ID_AA64MMFR1_EL1.VMIDBits, VTCR_EL2.VS)",
        match cpu::vmid_bits() {
            moat_stage2::VmidBits::Eight => "8 bits",
            moat_stage2::VmidBits::Sixteen => "16 bits",
        }
    );
    for ram in platform.memory() {
        log!("memory: {ram} ({} MiB)", ram.size >> 20);
    }
    log!("free for VMs: {} MiB", phys.free_bytes() >> 20);
    if let Some(uart) = platform.console {
        log!("console: {} at {:#x}", uart.kind, uart.regs.base);
    }
    match platform.gic {
        Some(Gic::V3(v3)) => log!(
            "GICv3: distributor {}, redistributors {}",
            v3.dist,
            v3.redist
        ),
        Some(Gic::V2(v2)) => log!(
            "GICv2: distributor {}, CPU interface {}, virtual interface control {}, virtual CPU interface {}",
            v2.dist,
            v2.cpu_interface(),
            v2.hyp.unwrap_or_default(),
            v2.vcpu_interface().unwrap_or_default()
        ),
        None => log!("GIC: not found in the device tree"),
    }
    limit
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::emergency_write(format_args!("moat: BUG: panic: {info}"));
    power::end(EndStatus::Panic)
}
