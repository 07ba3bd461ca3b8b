//! Hosts for tests that need more than one machine: network namespaces made with
//! iproute2, joined by a bridge in a namespace of its own, so that nothing of it is
//! visible from (or reaches) the machine's own network. Addresses are in 198.18.0.0/15,
//! the range set aside for testing network equipment in isolated labs (RFC 2544).
//! Everything is removed on drop. Needs root.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;

/// Fail with a clear message when the test cannot make namespaces.
pub fn require_root(test: &str) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "{test} needs root (network namespaces, mounts): run the tests as root, as CI does, \
         or leave it out with `cargo test -- --skip {test}`"
    );
}

/// Run a command to completion; panic with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e} (scripts/test-tools.sh installs it)")
        });
    assert!(
        out.status.success(),
        "{program} {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A LAN of hosts: one namespace each, with `eth0` on a shared bridge.
pub struct Lan {
    switch: String,
    hosts: BTreeMap<String, (String, Ipv4Addr, String)>,
}

impl Lan {
    /// Make a namespace per name in `hosts`, the n-th with address 198.18.14.(n+1)/24.
    /// Namespace names carry `tag` and the process id, so concurrent runs never meet.
    pub fn new(tag: &str, hosts: &[&str]) -> Lan {
        let prefix = format!("gist-{tag}-{}", std::process::id());
        let switch = format!("{prefix}-sw");
        let mut lan = Lan {
            switch: switch.clone(),
            hosts: BTreeMap::new(),
        };
        run("ip", &["netns", "add", &switch]);
        run(
            "ip",
            &["-n", &switch, "link", "add", "br0", "type", "bridge"],
        );
        run("ip", &["-n", &switch, "link", "set", "br0", "up"]);
        for (n, host) in hosts.iter().enumerate() {
            let ns = format!("{prefix}-{host}");
            let port = format!("p{n}");
            let addr = Ipv4Addr::new(198, 18, 14, n as u8 + 1);
            run("ip", &["netns", "add", &ns]);
            lan.hosts
                .insert(host.to_string(), (ns.clone(), addr, port.clone()));
            run(
                "ip",
                &[
                    "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                    "netns", &switch,
                ],
            );
            run(
                "ip",
                &["-n", &switch, "link", "set", &port, "master", "br0"],
            );
            run("ip", &["-n", &switch, "link", "set", &port, "up"]);
            run(
                "ip",
                &[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    "eth0",
                ],
            );
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        lan
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> &str {
        &self.hosts[host].0
    }

    /// The address of `host`.
    pub fn addr(&self, host: &str) -> Ipv4Addr {
        self.hosts[host].1
    }

    /// A command that runs `program` on `host` (`ip netns exec`).
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", self.ns(host)]).arg(program);
        command
    }

    /// The same as a tokio command.
    pub fn tokio_command(
        &self,
        host: &str,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> tokio::process::Command {
        tokio::process::Command::from(self.command(host, program))
    }

    /// Unplug `host` from the bridge (or plug it back in): its packets go nowhere, as
    /// when a machine drops off the network; nothing tells its peers.
    pub fn set_link(&self, host: &str, up: bool) {
        let port = &self.hosts[host].2;
        let state = if up { "up" } else { "down" };
        run("ip", &["-n", &self.switch, "link", "set", port, state]);
    }

    /// Give `host` its own /etc/hosts: `ip netns exec` bind-mounts
    /// /etc/netns/NAMESPACE/hosts over /etc/hosts for what it runs, so the system
    /// resolver (getaddrinfo) answers from it there and nowhere else.
    pub fn set_hosts_file(&self, host: &str, lines: &str) {
        let dir = self.etc_dir(host);
        std::fs::create_dir_all(&dir).unwrap();
        let base = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        std::fs::write(dir.join("hosts"), format!("{base}\n{lines}\n")).unwrap();
    }

    fn etc_dir(&self, host: &str) -> PathBuf {
        PathBuf::from("/etc/netns").join(self.ns(host))
    }

    /// Move the calling thread into `host`'s network namespace: sockets it (and threads it
    /// spawns afterwards, such as a tokio runtime's workers) opens from then on are there.
    pub fn enter(&self, host: &str) {
        let path = format!("/run/netns/{}", self.ns(host));
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: a valid namespace file descriptor, for this thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns into {path}: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (host, (ns, _, _)) in &self.hosts {
            let _ = std::fs::remove_dir_all(self.etc_dir(host));
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.switch])
            .status();
    }
}
