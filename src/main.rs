//! The `asbru` command: see `asbru --help`.

/// jemalloc instead of glibc's malloc: thread caches without glibc's consolidation passes, for
/// the request path's short-lived buffers and header maps. Measured at saturation against glibc
/// and mimalloc (benches/README.md): as fast as mimalloc, with 14 MiB less resident memory.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    asbru::cli::main()
}
