//! Publishes the guests' linker script (`guest.ld`) as `moat-guest.ld` in this crate's OUT_DIR
//! and adds that folder to the link search path of every crate that depends on the runtime, so
//! a guest binary links with `-Tmoat-guest.ld` (its own build.rs says so).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("guest.ld", out.join("moat-guest.ld")).expect("copy guest.ld into OUT_DIR");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rerun-if-changed=guest.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
