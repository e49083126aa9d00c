//! The wire between linked VMs: each VM's inbox of frames its peers transmitted, waiting for
//! the VM's own CPU to put them into its receive queues.
//!
//! A sender, holding only its own VM's lock, copies a frame into the receiver's inbox (its own
//! lock, a leaf: nothing else is locked while it is held) and kicks the CPU of the receiver's
//! vCPU 0; that CPU, holding only its own VM's lock, empties the inbox at its next exit. So no
//! CPU ever holds two VMs' locks, and frames are copied through Moat, never by mapping one
//! VM's memory into another's. An inbox holds at most [`INBOX_FRAMES`]; a frame that finds it
//! full is dropped, as a switch drops what a port cannot take.

use crate::lock::Lock;
use crate::platform::MAX_CPUS;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The most frames waiting for one VM.
pub const INBOX_FRAMES: usize = 64;

/// A frame for a VM's network window.
pub struct Delivery {
    /// The receiving window's index in the receiver's bus.
    pub window: usize,
    /// The Ethernet frame.
    pub frame: Vec<u8>,
}

/// Each VM's inbox, by VM index (a machine runs at most one VM per CPU).
static INBOXES: [Lock<VecDeque<Delivery>>; MAX_CPUS] =
    [const { Lock::new(VecDeque::new()) }; MAX_CPUS];

/// Queues `frame` for window `window` of VM `vm`; returns whether it fit.
pub fn post(vm: usize, window: usize, frame: Vec<u8>) -> bool {
    let Some(inbox) = INBOXES.get(vm) else {
        return false;
    };
    let mut inbox = inbox.lock();
    if inbox.len() >= INBOX_FRAMES {
        return false;
    }
    inbox.push_back(Delivery { window, frame });
    true
}

/// Takes every frame waiting for VM `vm`, oldest first.
pub fn take(vm: usize) -> VecDeque<Delivery> {
    INBOXES
        .get(vm)
        .map(|inbox| core::mem::take(&mut *inbox.lock()))
        .unwrap_or_default()
}
