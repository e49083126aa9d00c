//! Guest RAM beyond the image holds what is stored in it, at every access size.
//!
//! The test takes 4 MiB of free RAM (neither the image nor the device tree, see
//! `BootInfo::free_ram`), fills one MiB each with bytes, halfwords, words and doublewords whose
//! values depend on their address (so aliasing or a lost store shows up), and only then reads it
//! all back. A last pass stores doublewords and reads them back as bytes, which checks that
//! accesses of different sizes agree on the (little-endian) byte order. With the MMU off every
//! access is to Device memory, so each is naturally aligned.

use core::ptr;

use moat_guest_rt::{Region, TestResult, boot, println};

const MIB: usize = 1 << 20;

/// Naturally aligned loads and stores of one size, to an address in free RAM.
trait Cell: Copy + PartialEq + core::fmt::LowerHex {
    /// The value pattern stored at `addr`.
    fn pattern(addr: usize) -> Self;
}

macro_rules! cell {
    ($($ty:ty),*) => {$(
        impl Cell for $ty {
            fn pattern(addr: usize) -> Self {
                // Mix the address so neighbouring cells and 1 MiB aliases differ.
                let mixed = (addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
                mixed as $ty
            }
        }
    )*};
}
cell!(u8, u16, u32, u64);

/// Guest RAM beyond the image and the device tree holds bytes, halfwords, words and doublewords
/// stored to it, and they read back the same whatever the access size.
pub fn ram_load_store() -> TestResult {
    let region = boot::info()
        .free_ram(4 * MIB)
        .ok_or("no 4 MiB of free RAM after the image")?;
    println!("testing RAM {:#x}..{:#x}", region.base, region.end());
    let quarter = |n: usize| Region::new(region.base + n * MIB, MIB);
    fill::<u8>(quarter(0));
    fill::<u16>(quarter(1));
    fill::<u32>(quarter(2));
    fill::<u64>(quarter(3));
    verify::<u8>(quarter(0)).map_err(|_| "a byte read back wrong")?;
    verify::<u16>(quarter(1)).map_err(|_| "a halfword read back wrong")?;
    verify::<u32>(quarter(2)).map_err(|_| "a word read back wrong")?;
    verify::<u64>(quarter(3)).map_err(|_| "a doubleword read back wrong")?;
    bytes_of_doublewords(quarter(0)).map_err(|_| "doubleword bytes are not little-endian")
}

/// Stores `T::pattern` to every `T` in `region`.
fn fill<T: Cell>(region: Region) {
    for addr in (region.base..region.end()).step_by(size_of::<T>()) {
        // SAFETY: `region` is free RAM that no Rust object occupies (`free_ram` excludes the
        // image, which holds all of the guest's data and its stack, and the device tree), and
        // `addr` is a multiple of `size_of::<T>()` from a 1 MiB-aligned base, so the store is
        // to valid, aligned, unaliased memory.
        unsafe { ptr::write_volatile(addr as *mut T, T::pattern(addr)) };
    }
}

/// Checks every `T` in `region` against `T::pattern`, printing the first mismatch.
fn verify<T: Cell>(region: Region) -> Result<(), ()> {
    for addr in (region.base..region.end()).step_by(size_of::<T>()) {
        // SAFETY: As in `fill`: free, aligned RAM that nothing else references.
        let got = unsafe { ptr::read_volatile(addr as *const T) };
        if got != T::pattern(addr) {
            println!(
                "  at {addr:#x}: expected {:#x}, got {got:#x}",
                T::pattern(addr)
            );
            return Err(());
        }
    }
    Ok(())
}

/// Stores doublewords to `region` and reads each back byte by byte, least significant first.
fn bytes_of_doublewords(region: Region) -> Result<(), ()> {
    fill::<u64>(region);
    for addr in (region.base..region.end()).step_by(8) {
        let expected = u64::pattern(addr).to_le_bytes();
        for (offset, want) in expected.into_iter().enumerate() {
            // SAFETY: As in `fill`: a byte of free RAM that nothing else references.
            let got = unsafe { ptr::read_volatile((addr + offset) as *const u8) };
            if got != want {
                println!(
                    "  at {:#x}: expected {want:#x}, got {got:#x}",
                    addr + offset
                );
                return Err(());
            }
        }
    }
    Ok(())
}
