//! A second "host" for the broker: a network namespace joined to ours by a veth pair.
//!
//! The kernel here has no `netem` and there is no iptables, so a silent link is made the way a
//! pulled cable makes one: the broker's end of the veth pair is set down. Packets then vanish —
//! no FIN, no RST — and only a keep-alive (or a watchdog) can tell. Every namespace and link is
//! owned by a guard whose `Drop` deletes it, so a failing or panicking run leaves nothing behind;
//! namespaces left by a run that was killed outright are deleted by the next run
//! ([`remove_stale`]).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// Every namespace this program makes starts with this, followed by the owning process id.
const PREFIX: &str = "llfaults-";

/// Whether namespaces can be made here: root, and the `ip` tool.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("they need root (ip netns add, veth pairs)".into());
    }
    match Command::new("ip").arg("-V").stdout(Stdio::null()).status() {
        Ok(status) if status.success() => Ok(()),
        _ => Err("they need the `ip` tool (Debian package iproute2)".into()),
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip")?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Deletes namespaces left by earlier runs whose process is gone (a run killed with SIGKILL
/// cannot run its guards). Deleting a namespace deletes its end of the veth pair, and with it
/// the peer in ours.
pub fn remove_stale() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("faults: deleting namespace {name} left by an earlier run");
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// On Ctrl-C or SIGTERM the guards cannot run (the process ends at once), so this handler
/// deletes this process's namespace and link by name and exits. The children (broker and
/// consumers) are in our process group and get the terminal's SIGINT too.
pub fn clean_up_on_signal() {
    let result = ctrlc::set_handler(|| {
        let pid = std::process::id();
        let _ = ip(&["netns", "del", &format!("{PREFIX}{pid}")]);
        let _ = ip(&["link", "del", &format!("lfh{pid}")]);
        eprintln!("faults: interrupted; namespace and link deleted");
        std::process::exit(130);
    });
    if let Err(err) = result {
        eprintln!("faults: cannot install the Ctrl-C handler ({err}); an interrupted run leaves its namespace for the next run to delete");
    }
}

/// The broker's host: a namespace with one end of a veth pair, addressed
/// `broker_addr`/24; the other end stays in our namespace as `host_addr`/24.
pub struct BrokerHost {
    name: String,
    host_link: String,
    broker_link: String,
    /// The broker's address, as the consumers see it.
    pub broker_addr: Ipv4Addr,
    /// Our end's address.
    pub host_addr: Ipv4Addr,
}

impl BrokerHost {
    /// Creates the namespace and the veth pair, addresses both ends and brings them up (the
    /// namespace's loopback too: the publisher talks to the broker over it).
    pub fn create() -> anyhow::Result<BrokerHost> {
        let pid = std::process::id();
        // A /24 of its own per process, so two runs never share addresses.
        let (b, c) = (200 + (pid / 250 % 50) as u8, (pid % 250) as u8);
        let host = BrokerHost {
            name: format!("{PREFIX}{pid}"),
            host_link: format!("lfh{pid}"),
            broker_link: format!("lfb{pid}"),
            broker_addr: Ipv4Addr::new(10, b, c, 1),
            host_addr: Ipv4Addr::new(10, b, c, 2),
        };
        // From here on `Drop` cleans up whatever part of the setup succeeded.
        ip(&["netns", "add", &host.name])?;
        ip(&[
            "link",
            "add",
            &host.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &host.broker_link,
        ])?;
        ip(&["link", "set", &host.broker_link, "netns", &host.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", host.host_addr),
            "dev",
            &host.host_link,
        ])?;
        ip(&["link", "set", &host.host_link, "up"])?;
        ip(&[
            "-n",
            &host.name,
            "addr",
            "add",
            &format!("{}/24", host.broker_addr),
            "dev",
            &host.broker_link,
        ])?;
        ip(&["-n", &host.name, "link", "set", &host.broker_link, "up"])?;
        ip(&["-n", &host.name, "link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the broker's end of the link down (`false`) or up (`true`). Down, packets vanish
    /// silently in both directions: our end keeps its address and route, but has no carrier.
    pub fn set_link(&self, up: bool) -> anyhow::Result<()> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.name, "link", "set", &self.broker_link, state])
    }
}

impl Drop for BrokerHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes the broker's end, and a veth pair dies with either end;
        // our end is deleted explicitly in case the namespace step failed half-way.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_link]);
    }
}

/// Runs `f` on a new thread that has joined namespace `netns` (or stays in ours when `None`).
/// Only that thread moves: a socket it opens lives in the broker's namespace, so the publisher
/// reaches the broker over the namespace's loopback and keeps publishing while the consumers'
/// link is down.
pub fn run_in<T: Send>(netns: Option<&str>, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if let Some(netns) = netns {
                    enter(netns)?;
                }
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("a thread in namespace {netns:?} panicked"))?
    })
}

fn enter(netns: &str) -> anyhow::Result<()> {
    let path = format!("/var/run/netns/{netns}");
    let file = File::open(&path).with_context(|| format!("opening {path}"))?;
    // SAFETY: setns with a valid namespace fd only changes this thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setns into the broker's namespace");
    }
    Ok(())
}
