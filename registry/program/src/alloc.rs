//! The C allocator's settings for a long-running server (glibc on Linux; elsewhere nothing changes).
//!
//! glibc moves its mmap threshold up to the size of the largest mmapped block freed so far (up to 32 MiB). The
//! trust service's key derivation allocates and frees one 19 MiB Argon2 block at startup, so afterwards every
//! buffer below that size (request bodies, upload batches, pages of rows) came from the arenas, whose free pages
//! go back to the system only from the top of each heap. A busy server's resident size then crept up (0.75 MiB a
//! minute on each replica in a 30-minute soak, with 4.7 MiB of live heap at its end). A fixed threshold turns
//! that adjustment off: large buffers are mapped and unmapped as wholes. Fewer arenas (glibc makes up to eight
//! per core, one per thread that contends) keep blocking-pool threads from each holding freed pages of their own.

/// Blocks at least this large are mapped on their own and returned when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 256 * 1024;
/// Arenas at most.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: i32 = 4;

/// Applies the settings; call before anything allocates much (first thing in `main`).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets the allocator's parameters; it is called once, before the runtime's
        // threads exist, with parameters and values glibc documents.
        #[allow(unsafe_code)]
        let done = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 && libc::mallopt(libc::M_ARENA_MAX, ARENAS) == 1
        };
        if !done {
            eprintln!("wharf: the allocator's settings could not be applied; continuing with its defaults");
        }
    }
}
