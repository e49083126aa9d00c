//! The pure parts: argument checks, the KVM mirror, and the key lines of the explanation.

use super::args::{Request, parse_hex};
use super::kvm::{Kvm, kvm_61, kvm_registers};
use super::render::fields;
use super::*;
use moat_vcpu::abort::GuestAbort;

fn args(esr: &str, options: &[(&str, &str)]) -> ExplainArgs {
    let mut a = ExplainArgs {
        esr: esr.to_owned(),
        cpu: String::from("max"),
        ..ExplainArgs::default()
    };
    for &(flag, value) in options {
        if flag == "cpu" {
            a.cpu = value.to_owned();
            continue;
        }
        let value = Some(value.to_owned());
        match flag {
            "far" => a.far = value,
            "hpfar" => a.hpfar = value,
            "elr" => a.elr = value,
            "ipa-bits" => a.ipa_bits = value,
            "parange" => a.parange = value,
            "guest" => a.guest = value,
            "from" => a.from = value,
            "mmu" => a.mmu = value,
            other => panic!("no option --{other}"),
        }
    }
    a
}

fn request(esr: &str, options: &[(&str, &str)]) -> Request {
    Request::from_args(&args(esr, options)).expect("a valid request")
}

fn error(esr: &str, options: &[(&str, &str)]) -> String {
    let e = Request::from_args(&args(esr, options)).expect_err("a usage error");
    assert_eq!(e.exit_code(), 2, "{e}");
    let text = e.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    text
}

fn text(esr: &str, options: &[(&str, &str)]) -> String {
    explain(&request(esr, options))
}

/// The value after `label` on the first line that starts with it (after indentation).
fn value<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix(label)
                .filter(|r| r.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no line {label} in\n{text}"))
        .trim()
}

const LOAD_2_40: &str = "0x93800005";
const FAR_2_40: (&str, &str) = ("far", "0x10000000010");
const HPFAR_2_40: (&str, &str) = ("hpfar", "0x100000000");

#[test]
fn hex_values_take_an_optional_0x_and_underscores() {
    assert_eq!(parse_hex("esr", "0x9380_0005").ok(), Some(0x9380_0005));
    assert_eq!(parse_hex("esr", "93800005").ok(), Some(0x9380_0005));
    assert!(error("0x93G", &[]).starts_with("--esr 0x93G: not a 64-bit hexadecimal"));
    assert!(error("0x1_0000_0000_0000_0000", &[]).contains("not a 64-bit"));
}

#[test]
fn ipa_bits_are_32_to_the_cpu_limit() {
    assert_eq!(request(LOAD_2_40, &[("ipa-bits", "48")]).vm.ipa_bits, 48);
    let e = error(LOAD_2_40, &[("ipa-bits", "50")]);
    assert_eq!(
        e,
        "--ipa-bits 50: S must be 32..=48 (the IPA limit L of -cpu max)"
    );
    assert!(error(LOAD_2_40, &[("ipa-bits", "44"), ("cpu", "cortex-a53")]).contains("32..=40"));
    assert!(error(LOAD_2_40, &[("ipa-bits", "31")]).starts_with("--ipa-bits 31"));
}

#[test]
fn parange_is_an_encoding_between_s_and_l() {
    assert!(error(LOAD_2_40, &[("parange", "41")]).starts_with("--parange 41: not max, tight"));
    assert!(error(LOAD_2_40, &[("parange", "36")]).contains("P must cover S = 40"));
    assert!(error(LOAD_2_40, &[("parange", "52")]).contains("never above the IPA limit L = 48"));
    assert_eq!(request(LOAD_2_40, &[("parange", "44")]).pa_bits, 44);
}

#[test]
fn parange_max_is_the_cpu_ipa_limit_and_tight_the_smallest_cover_of_s() {
    let cases = [
        ("max", 48),
        ("cortex-a72", 44),
        ("cortex-a53", 40),
        ("neoverse-n1", 48),
    ];
    for (cpu, limit) in cases {
        let r = request(LOAD_2_40, &[("cpu", cpu)]);
        assert_eq!((r.limit, r.pa_bits), (limit, limit), "{cpu}");
    }
    let tight = request(LOAD_2_40, &[("ipa-bits", "41"), ("parange", "tight")]);
    assert_eq!(tight.pa_bits, 42);
}

#[test]
fn syndromes_with_res0_or_unallocated_values_are_refused() {
    assert!(error("0x5a010000", &[]).contains("ISS bits 0x10000 are RES0"));
    assert!(error("0x100000093800005", &[]).contains("bits [63:56] are RES0"));
    assert!(error("0xfc000000", &[]).contains("EC 0x3f is not an allocated"));
    assert!(error("0x9200003f", &[]).contains("fault status code 0x3f"));
    assert!(error("0x92010046", &[]).contains("ISV=0 but SAS, SRT or AR"));
    assert!(error("0x90000046", &[]).contains("IL=0"));
}

#[test]
fn guest_state_options_give_the_arm_arm_spsr_values() {
    let spsr =
        |guest: &str, from: &str| request(LOAD_2_40, &[("guest", guest), ("from", from)]).spsr;
    assert_eq!(spsr("a64", "el0"), 0x0);
    assert_eq!(spsr("a64", "el0-a32"), 0x10);
    assert_eq!(spsr("a64", "el1t"), 0x3C4);
    assert_eq!(spsr("a64", "el1h"), 0x3C5);
    assert_eq!(spsr("a32", "el0"), 0x10);
    assert_eq!(spsr("a32-lpae", "el1"), 0x1D3);
    assert!(error(LOAD_2_40, &[("guest", "a32"), ("from", "el1t")]).contains("no SP_EL0"));
    assert!(error(LOAD_2_40, &[("guest", "x86")]).starts_with("--guest x86"));
    assert!(error(LOAD_2_40, &[("mmu", "maybe")]).starts_with("--mmu maybe"));
    assert!(error(LOAD_2_40, &[("cpu", "cortex-a15")]).starts_with("--cpu cortex-a15"));
}

#[test]
fn hpfar_defaults_to_the_far_page_only_with_the_mmu_off() {
    let r = request(LOAD_2_40, &[FAR_2_40]);
    assert_eq!(r.hpfar, 0x1_0000_0000);
    assert!(error(LOAD_2_40, &[FAR_2_40, ("mmu", "on")]).starts_with("--hpfar is needed"));
    assert!(
        error("0x92000087", &[FAR_2_40]).starts_with("--hpfar is needed"),
        "S1PTW"
    );
    assert!(error(LOAD_2_40, &[("hpfar", "0x100000001")]).contains("RES0"));
}

#[test]
fn aarch32_guests_have_32_bit_vas_and_40_bit_ipas() {
    let a32 = [("guest", "a32-lpae")];
    assert!(error(LOAD_2_40, &[a32[0], ("far", "0x100000000")]).contains("32 bits"));
    assert!(error(LOAD_2_40, &[a32[0], HPFAR_2_40]).contains("at most 40 bits"));
}

#[test]
fn fields_split_a_display_into_arm_named_fields() {
    let f =
        fields("EC=0x24 (data abort from a lower EL) IL=1 SAS=0b10 (word) DFSC=0x07 (x, level 3)");
    let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["EC", "IL", "SAS", "DFSC"]);
    assert_eq!(f[0].1, "0x24 (data abort from a lower EL)");
    assert_eq!(f[3].1, "0x07 (x, level 3)");
}

#[test]
fn load_from_2_pow_40_with_s_40_is_an_external_abort_at_the_va() {
    let t = text(LOAD_2_40, &[FAR_2_40, HPFAR_2_40]);
    assert_eq!(value(&t, "DFSC"), "0x05 (translation fault, level 1)");
    assert_eq!(value(&t, "access"), "4-byte load into W0 (ISV = 1)");
    assert!(value(&t, "IPA is").starts_with("in [2^S, 2^P)"));
    assert_eq!(
        value(&t, "decision"),
        "inject a synchronous external abort (data abort)"
    );
    assert_eq!(value(&t, "ESR_EL1"), "0x96000010");
    assert!(value(&t, "FAR_EL1").starts_with("0x10000000010"));
    assert!(value(&t, "vector").starts_with("VBAR_EL1 + 0x200"));
}

#[test]
fn store_beyond_2_pow_p_with_the_mmu_off_is_an_address_size_fault_at_level_0() {
    let t = text("0x92000046", &[("far", "0x1000000000008"), ("from", "el0")]);
    assert!(value(&t, "IPA is").starts_with("at or above 2^P = 2^48"));
    assert_eq!(
        value(&t, "decision"),
        "inject an Address Size Fault, level 0 (data abort)"
    );
    assert!(value(&t, "rule").starts_with("AArch64.TranslateAddressS1Off()"));
    assert_eq!(value(&t, "ESR_EL1"), "0x92000040", "EC 0x24 from EL0, WnR");
    assert!(value(&t, "vector").starts_with("VBAR_EL1 + 0x400"));
}

#[test]
fn tight_parange_moves_the_address_size_fault_down_to_2_pow_p() {
    let t = text(
        "0x92000046",
        &[("far", "0x10000000000"), ("parange", "tight")],
    );
    assert_eq!(
        value(&t, "decision"),
        "inject an Address Size Fault, level 0 (data abort)"
    );
    let t = text("0x92000046", &[("far", "0x10000000000")]);
    assert_eq!(
        value(&t, "decision"),
        "inject a synchronous external abort (data abort)"
    );
}

#[test]
fn walk_fault_on_a_hole_lists_each_level_instead_of_guessing_one() {
    let t = text(
        "0x92000087",
        &[("far", "0x400000"), ("hpfar", "0x10000"), ("mmu", "on")],
    );
    assert!(value(&t, "IPA is").contains("a hole"));
    assert!(value(&t, "decision").starts_with("depends on the guest's stage-1 tables"));
    assert!(value(&t, "level 0").contains("ESR_EL1 = 0x96000014"));
    assert!(value(&t, "level 3").contains("ESR_EL1 = 0x96000017"));
}

#[test]
fn mmu_on_address_size_fault_names_the_rule_and_leaf_levels() {
    let opts = [
        ("far", "0x400000"),
        ("hpfar", "0x1000000000"),
        ("mmu", "on"),
        ("parange", "tight"),
    ];
    let t = text("0x92000046", &opts);
    assert!(value(&t, "rule").contains("stage-1 descriptor that holds the address"));
    assert!(value(&t, "level 1").contains("DFSC=0x01"));
    assert!(
        !t.contains("level 0 "),
        "no leaf at level 0 without FEAT_LPA2"
    );
}

#[test]
fn short_descriptor_guest_gets_an_external_abort_for_the_address_size_case() {
    let opts = [
        ("guest", "a32"),
        ("far", "0x1000"),
        ("hpfar", "0x40000000"),
        ("mmu", "on"),
    ];
    let t = text(
        "0x92000046",
        &[
            opts[0],
            opts[1],
            opts[2],
            opts[3],
            ("ipa-bits", "36"),
            ("parange", "tight"),
        ],
    );
    assert!(value(&t, "IPA is").starts_with("at or above 2^P = 2^36"));
    assert!(value(&t, "any level").starts_with("inject DFSR = 0x808"));
    assert!(value(&t, "DFSR").starts_with("0x808"));
    assert!(value(&t, "LR_abt").contains("+ 8"));
    assert!(value(&t, "vector").starts_with("VBAR + 0x10"));
}

#[test]
fn device_access_without_a_syndrome_is_emulated_by_decoding() {
    let t = text("0x92000046", &[("far", "0x9000000")]);
    assert!(
        value(&t, "decision").starts_with("emulate the access to pl011 at offset 0x0, by decoding")
    );
    assert!(value(&t, "outcome").starts_with("KVM_RUN fails with ENOSYS"));
    assert!(t.lines().any(
        |l| l.trim_start().starts_with("differs") && l.contains("Moat decodes the instruction")
    ));
}

#[test]
fn kvm_differences_are_marked_with_their_rule() {
    let t = text(
        "0x92000046",
        &[("far", "0xffff000000401008"), HPFAR_2_40, ("mmu", "on")],
    );
    assert_eq!(
        value(&t, "outcome"),
        "kvm_inject_dabt(): synchronous external abort"
    );
    assert!(t.contains("ESR_EL1[63:32] = 0xffffffff; Moat 0x0: RES0"));
    assert!(t.contains("WnR = 0; Moat 1"));
    assert!(t.contains("FAR_EL1 = 0x10000000008, the IPA; Moat 0xffff000000401008"));
    assert!(t.contains("PARange: KVM shows 52 but faults from 2^L = 2^48"));
}

fn abort(esr: u64, far: u64, hpfar: u64) -> GuestAbort {
    GuestAbort::from_trap(esr, far, hpfar, 0x3c5).expect("an abort")
}

#[test]
fn kvm_injects_a_size_fault_from_2_pow_l_and_an_external_abort_from_2_pow_s() {
    let at = |hpfar| kvm_61(&abort(0x9200_0046, 0x8, hpfar), false, false, 40, 48);
    assert_eq!(
        at((1 << 48) >> 8),
        Kvm::Inject {
            size: true,
            far: 1 << 48 | 8
        }
    );
    assert_eq!(
        at((1 << 40) >> 8),
        Kvm::Inject {
            size: false,
            far: 1 << 40 | 8
        }
    );
    assert_eq!(
        at(0x4000_0000 >> 8),
        Kvm::NoSyndrome,
        "a hole below 2^S, ISV = 0"
    );
}

#[test]
fn kvm_handles_faults_inside_the_ipa_space_by_memslot() {
    let hole = 0x1000_0000 >> 8;
    let walk = abort(0x9200_0087, 0xDEAD_0000, hole);
    assert_eq!(
        kvm_61(&walk, false, false, 40, 48),
        Kvm::Inject {
            size: false,
            far: 0xDEAD_0000
        }
    );
    let fetch = abort(0x8200_0006, 0xBEEF_0000, hole);
    assert_eq!(
        kvm_61(&fetch, false, false, 40, 48),
        Kvm::Inject {
            size: false,
            far: 0xBEEF_0000
        }
    );
    let cmo = abort(0x9200_0146, 0x1000_0000, hole);
    assert_eq!(kvm_61(&cmo, false, false, 40, 48), Kvm::Skip);
    let load = abort(0x9380_0006, 0x1000_0000, hole);
    assert_eq!(kvm_61(&load, true, false, 40, 48), Kvm::MmioExit);
    assert_eq!(kvm_61(&load, true, true, 40, 48), Kvm::Map);
    let sea = abort(0x9200_0010, 0, 0);
    assert_eq!(kvm_61(&sea, false, false, 40, 48), Kvm::VirtualSError);
    let stage2_asf = abort(0x9200_0000, 0, 0);
    assert_eq!(kvm_61(&stage2_asf, false, false, 40, 48), Kvm::Unsupported);
}

#[test]
fn kvm_injected_syndrome_has_the_upper_half_set_and_no_wnr() {
    let r = request("0x92000046", &[("far", "0x10000000008"), ("from", "el0")]);
    let a = abort(0x9200_0046, 0x100_0000_0008, 0x1_0000_0000);
    let regs = kvm_registers(&r, &a, false, 0x100_0000_0008);
    assert_eq!(
        regs,
        [
            ("ESR_EL1", 0xFFFF_FFFF_9200_0010),
            ("FAR_EL1", 0x100_0000_0008)
        ]
    );
}

#[test]
fn kvm_aarch32_lpae_prefetch_size_fault_keeps_ifsr_and_clobbers_dfsr() {
    let r = request("0x82000006", &[("guest", "a32-lpae"), ("far", "0x1000")]);
    let a = abort(0x8200_0006, 0x1000, 0x10);
    let regs = kvm_registers(&r, &a, true, 0x1000);
    assert_eq!(regs, [("IFSR", 0x210), ("IFAR", 0x1000), ("DFSR", 0)]);
    let short = request("0x92000046", &[("guest", "a32"), ("far", "0x1000")]);
    let d = abort(0x9200_0046, 0x1000, 0x10);
    assert_eq!(
        kvm_registers(&short, &d, true, 0x1000),
        [("DFSR", 0x008), ("DFAR", 0x1000)]
    );
}

#[test]
fn hvc_is_explained_as_an_smccc_call_and_sve_as_undefined() {
    let hvc = text("0x5a000000", &[]);
    assert!(value(&hvc, "EC").starts_with("0x16 (HVC from AArch64)"));
    assert!(value(&hvc, "decision").starts_with("an SMCCC call (imm16 = 0): PSCI 1.1"));
    let sve = text("0x66000000", &[]);
    assert!(value(&sve, "decision").starts_with("inject an undefined instruction"));
    assert_eq!(value(&sve, "ESR_EL1"), "0x2000000");
    let idreg = text("0x6230002f", &[]);
    assert!(value(&idreg, "decision").starts_with("MRS X1, S3_0_C0_C7_0: an ID register"));
}

#[test]
fn an_ec_0x25_syndrome_is_named_an_abort_of_el2_itself() {
    let t = text("0x96000010", &[]);
    assert!(value(&t, "note").starts_with("EC 0x21/0x25 in ESR_EL2 is an abort taken from EL2"));
}

#[test]
fn external_abort_from_the_bus_has_no_ipa_and_is_reflected_where_kvm_pends_an_serror() {
    let t = text("0x92000010", &[("far", "0x9000000")]);
    assert!(value(&t, "HPFAR_EL2").starts_with("not valid for synchronous external abort"));
    assert!(value(&t, "rule").starts_with("a real external abort from the bus"));
    assert_eq!(value(&t, "ESR_EL1"), "0x96000010");
    assert!(value(&t, "outcome").starts_with("kvm_inject_vabt()"));
}

#[test]
fn cache_maintenance_walk_beyond_p_gives_the_at_its_par_for_each_level() {
    let opts = [
        ("far", "0x400000"),
        ("hpfar", "0x10000000000"),
        ("mmu", "on"),
        ("ipa-bits", "36"),
        ("parange", "tight"),
    ];
    let t = text("0x920001C5", &opts);
    assert!(value(&t, "rule").starts_with("the walk met a table address at or above 2^P"));
    assert!(
        value(&t, "level 1").contains("ESR_EL1 = 0x96000141"),
        "CM and WnR kept"
    );
    assert!(t.contains("(an AT instead completes with PAR_EL1 = 0x803)"));
}
