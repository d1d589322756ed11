//! Issue 14 point 13: the admin API neither reads a whole recording into
//! memory to send it nor runs its health checks once per request.

mod common;
use common::api::*;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn wait_sealed(b: &Bastion) -> String {
    for _ in 0..100 {
        for e in std::fs::read_dir(b.data_dir().join("recordings"))
            .unwrap()
            .flatten()
        {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "chain")
                && std::fs::read_to_string(&p)
                    .unwrap_or_default()
                    .contains("\"type\":\"trailer\"")
            {
                return p.file_stem().unwrap().to_string_lossy().to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no sealed recording");
}

#[test]
fn a_recording_download_is_streamed_not_read_whole() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let out = run(b.ssh("alice+web01").arg("echo STREAMED"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let name = wait_sealed(&b);
    let api = Api::new(&b, port);
    let admin = token(&b, "dl", "admin", None);
    // The real file first, byte for byte.
    let cast = b.data_dir().join("recordings").join(format!("{name}.cast"));
    let real = std::fs::read_to_string(&cast).unwrap();
    let r = api.expect(
        200,
        "GET",
        &format!("/api/v1/recordings/{name}/cast"),
        &admin,
        None,
    );
    assert_eq!(r.body, real);
    // Then 256 MiB (sparse: nothing on disk, all of it in memory if read whole).
    const SIZE: u64 = 256 << 20;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cast)
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let before = peak_rss_kib(b.pid());
    let r = api.expect(
        200,
        "GET",
        &format!("/api/v1/recordings/{name}/cast"),
        &admin,
        None,
    );
    assert_eq!(r.body.len() as u64, SIZE);
    let grew = peak_rss_kib(b.pid()).saturating_sub(before);
    assert!(
        grew < 64 * 1024,
        "the bastion's peak memory grew by {grew} KiB for a 256 MiB download"
    );
}

/// Counts `.health-*` probe files created in `dir` over `secs` (inotify).
const PROBE_COUNTER: &str = r#"
import ctypes, os, select, struct, sys, time
libc = ctypes.CDLL("libc.so.6", use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
assert libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x100) >= 0
print("ready", flush=True)
end, n = time.time() + float(sys.argv[2]), 0
while time.time() < end:
    if select.select([fd], [], [], 0.1)[0]:
        data, i = os.read(fd, 65536), 0
        while i < len(data):
            _, _, _, ln = struct.unpack_from("iIII", data, i)
            n += data[i + 16:i + 16 + ln].startswith(b".health-")
            i += 16 + ln
print(n, flush=True)
"#;

#[test]
fn health_checks_run_at_most_once_a_second() {
    need("python3", "python3");
    let (mut b, port) = bastion_with_api("");
    b.start();
    wait_port(port, "admin API", &b.log_path());
    let api = Api::new(&b, port);
    let mut counter = Command::new("python3")
        .args(["-c", PROBE_COUNTER])
        .arg(b.data_dir().join("recordings"))
        .arg("2.5")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(counter.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let started = std::time::Instant::now();
    for _ in 0..40 {
        let r = api.call("GET", "/api/v1/health", None, None);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("\"status\":\"ok\""), "{}", r.body);
    }
    let took = started.elapsed();
    let probes: u64 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    counter.wait().unwrap();
    // One check per second that had requests (two when they straddle a second).
    let allowed = took.as_secs() + 2;
    assert!(
        probes <= allowed,
        "{probes} health checks for 40 requests in {took:?}"
    );
    assert!(probes >= 1, "the health check never ran");
}
