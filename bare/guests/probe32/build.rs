//! Links the AArch32 probe with its own linker script (`probe32.ld`, in this package's folder).
//! Only for 32-bit ARM: a workspace-wide `cargo build` (AArch64 by default) builds an empty stub.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("arm") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/probe32.ld");
    }
    println!("cargo:rerun-if-changed=probe32.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
