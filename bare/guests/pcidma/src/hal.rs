//! The `virtio-drivers` HAL of a guest whose MMU is off: physical addresses are IPAs and are
//! used as they are; DMA memory is bumped out of a free RAM region, never given back (the
//! guest makes one device). One data buffer may be redirected: [`redirect`] makes `share`
//! give the device another IPA for it, which is how the isolation cases aim the device's DMA.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

static NEXT: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
/// The buffer address to replace, and what the device is given instead (0: none).
static REDIRECT_FROM: AtomicU64 = AtomicU64::new(0);
static REDIRECT_TO: AtomicU64 = AtomicU64::new(0);

/// DMA memory comes from `[base, base + size)`.
pub fn init(base: usize, size: usize) {
    NEXT.store(base, Ordering::Relaxed);
    END.store(base + size, Ordering::Relaxed);
}

/// The next buffer shared at `from` is given to the device as `to`.
pub fn redirect(from: u64, to: u64) {
    REDIRECT_FROM.store(from, Ordering::Relaxed);
    REDIRECT_TO.store(to, Ordering::Relaxed);
}

/// The HAL.
pub struct GuestHal;

// SAFETY: `dma_alloc` hands out zeroed, page-aligned memory no one else uses (a bump allocator
// over RAM the runtime says is free); with the MMU off, virtual = physical, so the addresses
// are what the device must be given (but for the one redirected buffer, on purpose).
unsafe impl Hal for GuestHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let size = pages * PAGE_SIZE;
        let at = NEXT.fetch_add(size, Ordering::Relaxed);
        assert!(
            at + size <= END.load(Ordering::Relaxed),
            "DMA memory exhausted"
        );
        // SAFETY: `[at, at + size)` is free RAM handed out once.
        unsafe { core::ptr::write_bytes(at as *mut u8, 0, size) };
        (
            at as PhysAddr,
            NonNull::new(at as *mut u8).expect("RAM is not at 0"),
        )
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("a BAR is not at 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let at = buffer.as_ptr() as *mut u8 as u64;
        if at != 0 && REDIRECT_FROM.load(Ordering::Relaxed) == at {
            REDIRECT_FROM.store(0, Ordering::Relaxed);
            return REDIRECT_TO.load(Ordering::Relaxed);
        }
        at
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
