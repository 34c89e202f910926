//! glibc's malloc, limited to [`MALLOC_ARENAS`] arenas unless the operator chose otherwise.
//!
//! Why: glibc gives threads arenas of their own (up to eight per core) and keeps what is freed
//! in each for that arena's next allocations, so memory freed on one worker is not reused by
//! another and stays resident. With many long-lived connections served from every worker, that
//! held-back memory was the largest part of an idle WebSocket's cost: 8.5–9.0 KiB per socket at
//! 10,000 with glibc's default (and with 4 arenas), 4.9–5.1 KiB with 2, 4.3 KiB with 1, for no
//! change in token latency or CPU per delta beyond noise (BENCHMARKS.md, "Run streams: the
//! allocator's arenas"). Two rather than one: a little more room for the workers to allocate
//! at once, at the measured cost of under 1 KiB per socket.
//!
//! The operator's choice wins: with `MALLOC_ARENA_MAX` (or `glibc.malloc.arena_max` in
//! `GLIBC_TUNABLES`) set, which glibc reads itself at start, nothing is changed here. Other
//! C libraries (musl) and systems keep their allocator's behaviour.

/// Arenas glibc's malloc may use when the operator set no number.
pub const MALLOC_ARENAS: i32 = 2;

/// Limits glibc's arenas to [`MALLOC_ARENAS`] unless `MALLOC_ARENA_MAX` or
/// `GLIBC_TUNABLES=…glibc.malloc.arena_max=…` is set. Call it first in `main`, before any
/// thread starts (a thread that allocated already keeps its arena). Whether it changed
/// anything.
pub fn limit_malloc_arenas() -> bool {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if operator_chose(std::env::var_os("MALLOC_ARENA_MAX").is_some(), &tunables) {
        return false;
    }
    set_arena_max(MALLOC_ARENAS)
}

/// Whether the operator set the number of arenas: `MALLOC_ARENA_MAX` set, or
/// `glibc.malloc.arena_max` among the colon-separated `GLIBC_TUNABLES`.
fn operator_chose(arena_max_set: bool, tunables: &str) -> bool {
    arena_max_set
        || tunables
            .split(':')
            .any(|tunable| tunable.trim().starts_with("glibc.malloc.arena_max="))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: i32) -> bool {
    // SAFETY: `mallopt` only sets one of malloc's parameters (under malloc's own lock); it
    // takes no pointer and is sound to call at any time. glibc returns 1 on success.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::operator_chose;

    #[test]
    fn the_operators_arena_max_wins_whether_set_directly_or_as_a_tunable() {
        assert!(operator_chose(true, ""));
        assert!(operator_chose(
            false,
            "glibc.malloc.trim_threshold=1:glibc.malloc.arena_max=8"
        ));
        assert!(!operator_chose(false, ""));
        assert!(!operator_chose(false, "glibc.malloc.trim_threshold=131072"));
    }
}
