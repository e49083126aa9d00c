//! The PSCI/SMCCC dispatcher over sequences of calls by the VM's running vCPUs, with their
//! physical CPUs taking up committed starts in between. Whenever `answer_without_vm` answers,
//! `serve` gives the same registers, resumes the caller and changes no power state; when it
//! does not answer, the registers are untouched. An AArch32 caller's results are 32-bit. Every
//! `CPU_ON` that returns `SUCCESS` commits exactly one start of an off vCPU, the vCPU named,
//! and its physical CPU takes it up exactly once.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use moat_vcpu::power::{MAX_VCPUS, Power, PowerStates, SUCCESS};
use moat_vcpu::smccc::{After, Call, answer_without_vm, serve};

/// The function identifiers the dispatcher knows (PSCI 1.1, SMCCC 1.1), 32- and 64-bit forms,
/// and neighbours of them.
const KNOWN: [u32; 16] = [
    0x8400_0000, // PSCI_VERSION
    0x8400_0001, // CPU_SUSPEND (32)
    0xC400_0001, // CPU_SUSPEND (64)
    0x8400_0002, // CPU_OFF
    0x8400_0003, // CPU_ON (32)
    0xC400_0003, // CPU_ON (64)
    0x8400_0004, // AFFINITY_INFO (32)
    0xC400_0004, // AFFINITY_INFO (64)
    0x8400_0006, // MIGRATE_INFO_TYPE
    0x8400_0008, // SYSTEM_OFF
    0x8400_0009, // SYSTEM_RESET
    0x8400_000A, // PSCI_FEATURES
    0x8000_0000, // SMCCC_VERSION
    0x8000_0001, // SMCCC_ARCH_FEATURES
    0x8000_8000, // SMCCC_ARCH_WORKAROUND_1
    0x8400_0005, // MIGRATE
];

fn function(u: &mut Unstructured<'_>) -> Result<u64> {
    let id = if u.ratio(7, 8)? {
        let known = u64::from(*u.choose(&KNOWN)?);
        // Sometimes junk in X0's upper half, which SMCCC says is ignored.
        if u.ratio(1, 8)? {
            known | (u.arbitrary::<u64>()? << 32)
        } else {
            known
        }
    } else {
        u.arbitrary()?
    };
    Ok(id)
}

fn target(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(if u.ratio(7, 8)? {
        u.int_in_range(0..=MAX_VCPUS as u64)?
    } else {
        u.arbitrary()?
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let vcpus = u.int_in_range(1..=MAX_VCPUS)?;
    let mut power = PowerStates::power_on(vcpus);
    // Starts committed (CPU_ON successes, and the boot vCPU's) not yet taken up, per vCPU.
    let mut committed = [0u32; MAX_VCPUS];
    committed[0] = 1;
    while !u.is_empty() {
        let vcpu = u.int_in_range(0..=vcpus - 1)?;
        if u.ratio(1, 4)? || power.state(vcpu) != Power::On {
            // vCPU `vcpu`'s physical CPU looks for a start.
            let start = power.take_start(vcpu);
            assert_eq!(
                start.is_some(),
                committed[vcpu] == 1,
                "take_start of vCPU {vcpu}"
            );
            if start.is_some() {
                committed[vcpu] -= 1;
                assert_eq!(power.state(vcpu), Power::On);
            }
            continue;
        }
        let call = Call {
            args: [function(u)?, target(u)?, u.arbitrary()?, u.arbitrary()?],
            imm16: if u.ratio(7, 8)? { 0 } else { u.arbitrary()? },
            aarch32: u.arbitrary()?,
        };
        let before = power.clone();
        let mut x = call.args;
        let answered = answer_without_vm(&mut x, call.imm16, call.aarch32);
        let served = serve(call, vcpu, &mut power);
        if answered {
            assert_eq!(
                served.results,
                Some(x),
                "answer_without_vm differs from serve: {call:?}"
            );
            assert_eq!(served.after, After::Resume, "{call:?}");
            assert_eq!(
                power, before,
                "a call answered without the VM changed power states"
            );
        } else {
            assert_eq!(
                x, call.args,
                "answer_without_vm touched the registers of {call:?}"
            );
        }
        if let (true, Some(results)) = (call.aarch32, served.results) {
            assert!(
                results.iter().all(|&r| r <= u64::from(u32::MAX)),
                "{results:x?}"
            );
        }
        let started: Vec<usize> = (0..vcpus)
            .filter(|&v| {
                before.state(v) == Power::Off && matches!(power.state(v), Power::Pending(_))
            })
            .collect();
        match served.after {
            After::Start(v) => {
                assert_eq!(
                    served.results.map(|r| r[0]),
                    Some(SUCCESS as u64),
                    "{call:?}"
                );
                assert_eq!(started, [v], "CPU_ON's start of vCPU {v}");
                // SMC32 calls (bit 30 of the function identifier clear) take W1.
                let smc64 = call.args[0] & (1 << 30) != 0;
                let target = if smc64 {
                    call.args[1]
                } else {
                    call.args[1] & 0xFFFF_FFFF
                };
                assert_eq!(power.vcpu_of(target), Some(v));
                committed[v] += 1;
                assert_eq!(committed[v], 1, "vCPU {v} committed to start twice");
            }
            After::Off => assert_eq!(power.state(vcpu), Power::Off, "CPU_OFF of vCPU {vcpu}"),
            _ => assert!(started.is_empty(), "a start without After::Start: {call:?}"),
        }
        if matches!(served.after, After::SystemOff | After::SystemReset) {
            break;
        }
    }
    Ok(())
}
