//! Links the guest with moat-guest-rt's linker script (its build script puts `moat-guest.ld` on
//! the link search path).
fn main() {
    println!("cargo:rustc-link-arg-bins=-Tmoat-guest.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
