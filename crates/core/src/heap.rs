//! glibc's allocator, tuned for the two ways kdstore uses memory. Training allocates and frees the
//! same large activation buffers every step: by default glibc maps each buffer above its mmap
//! threshold (at most 32 MiB, raised as buffers are freed) on its own and unmaps it when freed, and
//! returns the top of its heap once 128 KiB is free there, so every step faults its buffers in
//! again ([`keep_large_buffers`]). Query chunks are dropped piecewise: glibc keeps their buffers in
//! its arenas, resident until reused, and a selection typed chunk by chunk would still peak at the
//! whole query's frame plus its views ([`release_free_memory`]).

/// Buffers up to this size come from glibc's heap instead of a mapping of their own...
const MMAP_THRESHOLD: usize = 256 << 20;
/// ...and the heap keeps up to this much free memory at its top before returning it.
const TRIM_THRESHOLD: usize = 512 << 20;

/// Makes glibc keep large freed buffers for reuse ([`MMAP_THRESHOLD`], [`TRIM_THRESHOLD`]); returns
/// whether it took both settings (false where the allocator is not glibc's).
pub fn keep_large_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's parameters; it takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Returns the allocator's free pages to the system (a no-op where the allocator is not glibc's).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_large_buffer_settings() {
        // glibc refuses an mmap threshold above its limit by returning 0; the settings must hold.
        assert!(super::keep_large_buffers());
    }
}
