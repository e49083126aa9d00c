//! Links the guest with moat-guest-rt's linker script, and generates the sweep's instruction
//! table: for every system-instruction encoding (`op0` 1..3, `op1`, `CRn`, `CRm`, `op2`) and both
//! directions (`L` = 1: `MRS`/`SYSL`; `L` = 0: `MSR`/`SYS`), the instruction with `Rt` = X0
//! followed by `RET` — 8 bytes per entry, 98,304 entries, indexed by `sweep::index`.
//!
//! Encoding (Arm ARM C5.2, "System instructions"): `1101 0101 00 L op0[1:0] op1 CRn CRm op2 Rt`.
use std::fmt::Write as _;

fn main() {
    println!("cargo:rustc-link-arg-bins=-Tmoat-guest.ld");
    println!("cargo:rerun-if-changed=build.rs");
    let mut asm = String::with_capacity(98_304 * 40);
    asm.push_str(
        ".section .text.sweep_table, \"ax\"\n.balign 4096\n.global sweep_table\nsweep_table:\n",
    );
    for op0 in 1u32..=3 {
        for op1 in 0u32..8 {
            for crn in 0u32..16 {
                for crm in 0u32..16 {
                    for op2 in 0u32..8 {
                        for l in [1u32, 0] {
                            let insn = 0xD500_0000
                                | (l << 21)
                                | (op0 << 19)
                                | (op1 << 16)
                                | (crn << 12)
                                | (crm << 8)
                                | (op2 << 5);
                            let _ = writeln!(asm, ".inst {insn:#010x}\nret");
                        }
                    }
                }
            }
        }
    }
    // Two instructions after the table (entries 98,304 and 98,305): `FMOV D0, XZR` (FP/SIMD:
    // with `CPACR_EL1.FPEN` = 0 an FP access trap, EC 0x07) and `RDVL X0, #1` (SVE).
    asm.push_str(".inst 0x9e6703e0\nret\n.inst 0x04bf5020\nret\n");
    asm.push_str(".global sweep_table_end\nsweep_table_end:\n");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(format!("{out}/sweep_table.s"), asm).expect("writing the sweep table");
}
