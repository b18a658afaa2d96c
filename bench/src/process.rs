//! Reading a process's CPU time and peak memory from `/proc` (Linux), for CPU-per-request figures.

use std::time::Duration;

/// Linux reports `utime`/`stime` in clock ticks of `USER_HZ`, which is 100 on every mainstream
/// architecture (it is part of the kernel ABI).
const USER_HZ: u64 = 100;

/// User + system CPU time consumed by `pid` so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// utime + stime from a `/proc/<pid>/stat` line (fields 14 and 15, counted after the `comm`
/// field, which may itself contain spaces and parentheses).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state), so utime (14) is index 11 and stime (15) index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident set size (`VmHWM`) of `pid`, in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kib_field(&status, "VmHWM:").map(|kib| kib * 1024)
}

fn parse_kib_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Polls `GET /health` at `addr` until it answers 200; `false` after 10 s.
pub fn wait_ready(addr: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    for _ in 0..1000 {
        if let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100)) {
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(1)));
            let probe = b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
            let mut reply = [0u8; 12];
            if stream.write_all(probe).is_ok()
                && stream.read_exact(&mut reply).is_ok()
                && reply.starts_with(b"HTTP/1.1 200")
            {
                return true;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// `bin`, pinned to `cpu` with `taskset` when one is given.
pub fn pinned(bin: &std::path::Path, cpu: Option<usize>) -> std::process::Command {
    match cpu {
        Some(cpu) => {
            let mut command = std::process::Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(bin);
            command
        }
        None => std::process::Command::new(bin),
    }
}

/// CPU µs per completed request, to a tenth (0 when nothing completed).
pub fn cpu_us_per_request(spent: Duration, completed: u64) -> f64 {
    if completed == 0 {
        return 0.0;
    }
    (spent.as_secs_f64() * 1e6 / completed as f64 * 10.0).round() / 10.0
}

/// Bytes as MiB, to a tenth.
pub fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_status() {
        let stat = "4242 (asbru (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 150 25 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
        assert_eq!(parse_kib_field("Name:\tx\nVmHWM:\t   2048 kB\n", "VmHWM:"), Some(2048));
        let me = std::process::id();
        assert!(cpu_time(me).is_some());
        assert!(peak_rss(me).is_some_and(|b| b > 0));
    }
}
