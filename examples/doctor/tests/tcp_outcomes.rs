//! Step 3's three failures told apart — refused, timed out, unreachable — and the ⚠ for a host
//! name with one dead address, in a network namespace made for each test.
//!
//! Why a namespace: a timeout and "no route" need a network that drops packets or has no route,
//! and tests may only send traffic to loopback or to namespaces they created. Inside the
//! namespace: `lo` up; a veth whose peer stays down, with 10.77.0.1/24 and a static neighbour
//! entry for 10.77.0.2 (so a SYN to .2 leaves and vanishes: a timeout); no route to 10.88.0.0/16
//! (unreachable at once). Needs root (CI runs as root); elsewhere each test says so and passes
//! without checking anything.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mosquitto_harness::ExampleProcess;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// A network namespace, deleted (with its hosts file) on drop.
struct Netns {
    name: String,
    etc_dir: PathBuf,
}

impl Netns {
    /// `None` (with a note on stderr) when not root or `ip netns` is unavailable.
    fn create() -> Option<Netns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: network namespaces need root (CI runs as root)");
            return None;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "doctor-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let netns = Netns {
            etc_dir: PathBuf::from("/etc/netns").join(&name),
            name,
        };
        let n = netns.name.as_str();
        let commands: [&[&str]; 6] = [
            &["netns", "add", n],
            &["-n", n, "link", "set", "lo", "up"],
            &[
                "-n", n, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
            ],
            &["-n", n, "addr", "add", "10.77.0.1/24", "dev", "v0"],
            &["-n", n, "link", "set", "v0", "up"],
            &[
                "-n",
                n,
                "neigh",
                "add",
                "10.77.0.2",
                "lladdr",
                "02:00:00:00:00:02",
                "dev",
                "v0",
            ],
        ];
        for args in commands {
            let status = Command::new("ip").args(args).status();
            if !matches!(status, Ok(status) if status.success()) {
                eprintln!("SKIPPED: `ip {}` failed ({status:?})", args.join(" "));
                return None;
            }
        }
        Some(netns)
    }

    /// `/etc/hosts` as seen by processes in the namespace (`ip netns exec` bind-mounts it).
    fn write_hosts(&self, text: &str) {
        fs::create_dir_all(&self.etc_dir).expect("create /etc/netns/<name>");
        fs::write(self.etc_dir.join("hosts"), text).expect("write hosts");
    }

    /// Runs doctor inside the namespace with these credentials; exit code and stdout.
    fn doctor(&self, creds: &serde_json::Value, extra: &[&str]) -> (i32, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let creds = mosquitto_harness::write_creds_value(dir.path(), creds);
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(mosquitto_harness::example_bin("doctor"))
            .arg("--creds")
            .arg(&creds)
            .args(extra)
            .env("NO_COLOR", "1")
            .env_remove("MQTT_CREDS")
            .env_remove("MQTT_CA_FILE");
        let mut process = ExampleProcess::spawn_command(command).expect("spawn ip netns exec");
        let status = process
            .wait_exit(WAIT)
            .unwrap_or_else(|| panic!("doctor did not exit:\n{}", process.transcript()));
        assert!(
            !process.transcript().contains("panicked"),
            "{}",
            process.transcript()
        );
        (status.code().unwrap_or(-1), process.stdout())
    }

    /// A TCP listener on 127.0.0.1 inside the namespace, from a thread that joined it.
    fn listen_on_loopback(&self) -> (u16, std::thread::JoinHandle<()>) {
        let path = PathBuf::from("/var/run/netns").join(&self.name);
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let file = fs::File::open(&path).expect("open netns");
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this thread only, with a valid namespace file descriptor.
            let joined = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(joined, 0, "setns failed");
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            port_tx
                .send(listener.local_addr().expect("addr").port())
                .expect("send port");
            // Accept one connection (doctor's TCP step), then close it: no TLS here.
            let _ = listener.accept();
        });
        (port_rx.recv().expect("port"), thread)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = fs::remove_dir_all(&self.etc_dir);
        // Only if empty: another user of `ip netns` may keep files there.
        let _ = fs::remove_dir("/etc/netns");
    }
}

fn creds(host: &str, port: u16) -> serde_json::Value {
    json!({
        "host": host,
        "port": port,
        "clientId": "doctor-tcp",
        "username": "user",
        "password": "password",
        "topic": "airfinder/test-org/events/#",
        "protocol": "mqtts",
        "isEnabled": 1,
    })
}

/// The line of step `n` plus its indented lines.
fn step(stdout: &str, n: u8) -> String {
    let tag = format!(" {n:>2}. ");
    let mut lines = stdout
        .lines()
        .skip_while(|line| !line.contains(&tag) || line.starts_with(' '));
    let mut text = lines
        .next()
        .unwrap_or_else(|| panic!("no step {n}:\n{stdout}"))
        .to_owned();
    for line in lines.take_while(|line| line.starts_with(' ')) {
        text.push('\n');
        text.push_str(line);
    }
    text
}

#[test]
fn no_route_is_told_apart_as_unreachable() {
    let Some(netns) = Netns::create() else { return };
    let (code, stdout) = netns.doctor(&creds("10.88.0.1", 8883), &["--timeout", "5"]);
    assert_eq!(code, 8, "{stdout}");
    let tcp = step(&stdout, 3);
    assert!(tcp.starts_with('✗'), "{stdout}");
    assert!(tcp.contains("10.88.0.1:8883 unreachable"), "{stdout}");
    assert!(tcp.contains("has no route to"), "{stdout}");
}

#[test]
fn dropped_packets_are_told_apart_as_timed_out() {
    let Some(netns) = Netns::create() else { return };
    let (code, stdout) = netns.doctor(&creds("10.77.0.2", 8883), &["--timeout", "2"]);
    assert_eq!(code, 8, "{stdout}");
    let tcp = step(&stdout, 3);
    assert!(tcp.starts_with('✗'), "{stdout}");
    assert!(tcp.contains("10.77.0.2:8883 timed out"), "{stdout}");
    assert!(tcp.contains("no answer from"), "{stdout}");
    assert!(tcp.contains("firewall"), "{stdout}");
}

#[test]
fn a_host_name_with_one_dead_address_is_a_warning() {
    let Some(netns) = Netns::create() else { return };
    let (port, listener) = netns.listen_on_loopback();
    netns.write_hosts("10.77.0.2 broker.doctor.test\n127.0.0.1 broker.doctor.test\n");
    let (_, stdout) = netns.doctor(&creds("broker.doctor.test", port), &["--timeout", "2"]);
    let _ = listener.join();
    expect_dns_lists_both(&stdout);
    let tcp = step(&stdout, 3);
    assert!(tcp.starts_with('⚠'), "{stdout}");
    assert!(
        tcp.contains(&format!("127.0.0.1:{port} connected")),
        "{stdout}"
    );
    assert!(
        tcp.contains(&format!("10.77.0.2:{port} timed out")),
        "{stdout}"
    );
    assert!(tcp.contains("do not accept connections"), "{stdout}");
}

fn expect_dns_lists_both(stdout: &str) {
    let dns = step(stdout, 2);
    assert!(dns.starts_with('✓'), "{stdout}");
    assert!(
        dns.contains("10.77.0.2") && dns.contains("127.0.0.1"),
        "{stdout}"
    );
    assert!(dns.contains("(2 IPv4, 0 IPv6)"), "{stdout}");
}
