//! Links Moat with `link.ld` as a position-independent executable: address 0 in the link is
//! wherever the loader put the image, and the boot code applies the R_AARCH64_RELATIVE
//! relocations the linker leaves in `.rela.dyn` (see `src/boot.rs`).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    // A PIE without a program interpreter: Moat relocates itself. Relocations are kept as
    // plain RELA entries (no RELR packing), which the boot code's loop reads; nothing is
    // made read-only after relocation (no RELRO: Moat maps its image writable).
    for arg in [
        "-pie",
        "--no-dynamic-linker",
        "-z",
        "nopack-relative-relocs",
        "-z",
        "norelro",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=link.ld");
}
