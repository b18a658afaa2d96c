//! The `asbru` command: see `asbru --help`.

/// mimalloc instead of glibc's malloc: per-thread free lists without consolidation passes, which
/// the request path's short-lived buffers and header maps use all the time (benches/README.md
/// has the figures).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    asbru::cli::main()
}
