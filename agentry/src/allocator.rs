//! jemalloc as the allocator of every program built on this crate: `agentry` itself, and the
//! benches and tests that run the application in-process, so they measure what is deployed.
//!
//! Why not the system's (glibc's) malloc: on the hot paths (an HTTP request, an event read
//! from the log and handed to each follower, a projector's batch) most allocations are small
//! and short-lived and are freed on another worker thread than the one that made them. In a
//! `perf` profile of the conversations bench's process (the server and its 16 HTTP clients),
//! glibc's `malloc`/`free` (with its `malloc_consolidate` and `unlink_chunk` slow paths) took
//! 21% of the CPU. Measured in the same minutes (BENCHMARKS.md, "jemalloc instead of glibc's
//! malloc"; the benches' clients switched too): conversations created per second +17%, agent
//! runs per second at 16 at once +17%; an idle WebSocket 4.5 KiB against 5.4 KiB with glibc
//! limited to two arenas (as `agentry` then ran it), for about 7 MiB more at start.
//!
//! **tikv-jemallocator** builds jemalloc from its bundled source (a C compiler and `make`, both
//! on every machine that builds this); TiKV and many services run on it. jemalloc's defaults are
//! kept: four arenas per CPU it sees (the host's, not a container's quota), a cache per thread,
//! and freed pages handed back to the system about 10 s after they were freed, when the arena
//! is next used (no background thread: an idle process keeps them until it works again).
//! `_RJEM_MALLOC_CONF` (jemalloc's `MALLOC_CONF` under the prefix of this build, whose symbols
//! do not replace the C library's `malloc`) tunes it at start without a rebuild, e.g.
//! `narenas:2,background_thread:true`.

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
