//! Handing memory freed by a large, piecewise drop back to the system. glibc keeps the buffers of
//! a dropped query chunk (columns of tens of thousands of rows, below its raised mmap threshold) in
//! its arenas, where they count as resident until reused: a selection typed chunk by chunk would
//! still peak at the whole query's frame plus its views.

/// Returns the allocator's free pages to the system (a no-op where the allocator is not glibc's).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
