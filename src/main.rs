use clap::Parser;

use samverkan::cli::{self, Cli};
use samverkan::config::Settings;

/// mimalloc for Rust's allocations: with glibc malloc, allocating and freeing (and
/// glibc's consolidation of freed chunks) was a sixth of the CPU of a cached read;
/// measured, the guard's GET went from 22k to 26k requests/s. Peak RSS under a login
/// flood stays near 110 MB (benches/results.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// For what still uses glibc malloc (SQLite): keeps large allocations in their own
/// mappings. glibc otherwise raises its mmap
/// threshold after the first 19 MiB argon2id block is freed, and later blocks then stay
/// behind in per-thread arenas: measured, a login flood took the server from 60 MB to
/// over 1 GB resident; with the threshold fixed it stays under 70 MB.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called once before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Every open event stream is a socket: take the hard limit on open files, not the
/// (often 1,024) soft one, so a thousand streams fit.
fn raise_open_files() {
    #[cfg(target_os = "linux")]
    // SAFETY: getrlimit/setrlimit read and write a plain struct owned here.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[actix_web::main]
async fn main() {
    tune_allocator();
    raise_open_files();
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(2);
        }
    };
    samverkan::telemetry::init(settings.json_logs);
    let code = match cli::run(cli, settings).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
