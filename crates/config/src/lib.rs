//! The VM description shared by the host tool and Moat: its schema, validation against the
//! IPA-space rules of the spec (§1), and the bundle, the flattened device tree in which the host
//! tool hands a VM and its images to Moat.
//!
//! Without features the crate is `no_std` + `alloc` and is what Moat links: the schema
//! ([`VmConfig`], the [`SystemConfig`] of several VMs), [`VmConfig::validate`],
//! [`SystemConfig::validate`], [`guest_parange_bits`] and the bundle reader
//! ([`Bundle::parse`]). The `host` feature adds what only the host tool needs: TOML parsing,
//! guest image loading, initrd placement, guest device-tree generation and the bundle writer.
#![cfg_attr(not(any(test, feature = "host")), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod assign;
pub mod bundle;
#[cfg(feature = "host")]
pub mod guest_dtb;
mod hex;
#[cfg(feature = "host")]
pub mod initrd;
pub mod lifecycle;
#[cfg(feature = "host")]
pub mod loader;
pub mod parange;
pub mod schema;
pub mod size;
pub mod system;
#[cfg(feature = "host")]
pub mod system_file;
#[cfg(feature = "host")]
pub mod toml_file;
pub mod validate;

pub use bundle::{Bundle, BundleError, BundleImage, VmBundle};
#[cfg(feature = "host")]
pub use bundle::{BundleVm, BundleWriteError, default_dtb_ipa, write_bundle, write_system_bundle};
#[cfg(feature = "host")]
pub use guest_dtb::{GuestDtbError, generate_guest_dtb};
pub use hex::Hex;
#[cfg(feature = "host")]
pub use initrd::{InitrdError, add_initrd, place_initrd};
#[cfg(feature = "host")]
pub use loader::{
    GuestImage, ImageFormat, LoadError, Segment, load_guest_image, load_linux_kernel,
};
/// The guest-physical address type of the placements above (from `moat-arm`).
pub use moat_arm::addr::Ipa;
pub use parange::guest_parange_bits;
pub use schema::{
    DeviceKind, DeviceWindow, GuestArch, HolePolicy, OnPowerOff, OnReset, ParangeMode, RamRegion,
    VmConfig,
};
pub use size::{SizeError, parse_size};
pub use system::{MAX_MACHINE_CPUS, Machine, SystemConfig, SystemError};
#[cfg(feature = "host")]
pub use system_file::{GuestSource, SystemFile, VmImages};
#[cfg(feature = "host")]
pub use toml_file::TomlError;
pub use validate::{ConfigError, Region, RegionId};
