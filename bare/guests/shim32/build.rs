//! Links the shim with its own linker script (`shim32.ld`, in this package's folder).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/shim32.ld");
    println!("cargo:rerun-if-changed=shim32.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
