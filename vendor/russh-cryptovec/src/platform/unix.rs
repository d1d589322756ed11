use std::ffi::c_void;
use std::ptr::NonNull;

use nix::errno::Errno;

use super::MemoryLockError;

/// PORTCULLIS PATCH: see `mlock`.
const PAGE_LOCKING_DISABLED: bool = true;

/// Unlock memory on drop for Unix-based systems.
///
/// PORTCULLIS PATCH: a no-op, like `mlock` below (see PORTCULLIS-PATCH.md).
pub fn munlock(ptr: *const u8, len: usize) -> Result<(), MemoryLockError> {
    if PAGE_LOCKING_DISABLED {
        return Ok(());
    }
    if len == 0 {
        return Ok(());
    }
    let Some(ptr) = NonNull::new(ptr as *mut c_void) else {
        return Err(MemoryLockError::new("munlock: null pointer".into()));
    };
    unsafe {
        Errno::clear();
        nix::sys::mman::munlock(ptr, len).map_err(|e| {
            MemoryLockError::new(format!("munlock: {} (0x{:x})", e.desc(), e as i32))
        })?;
    }
    Ok(())
}

/// PORTCULLIS PATCH: a no-op. Locking each heap buffer's pages split the
/// heap's mapping at every buffer (about 4 mappings per SSH connection, so
/// a process hit the kernel's 65,530 mappings at ~16,000 connections) and
/// cost two system calls per allocation, resize and free; it was also
/// unsound as protection (page-granular and not counted: freeing one
/// buffer unlocked the page of its live neighbours). portcullis keeps its
/// memory out of swap for the whole process instead (`MemorySwapMax=0` in
/// its systemd unit). Buffers are still zeroed when freed.
pub fn mlock(ptr: *const u8, len: usize) -> Result<(), MemoryLockError> {
    if PAGE_LOCKING_DISABLED {
        return Ok(());
    }
    if len == 0 {
        return Ok(());
    }
    let Some(ptr) = NonNull::new(ptr as *mut c_void) else {
        return Err(MemoryLockError::new("mlock: null pointer".into()));
    };
    unsafe {
        Errno::clear();
        nix::sys::mman::mlock(ptr, len)
            .map_err(|e| MemoryLockError::new(format!("mlock: {} (0x{:x})", e.desc(), e as i32)))?;
    }
    Ok(())
}
