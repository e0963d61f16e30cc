//! A network namespace joined to the host by a veth pair (iproute2), for a
//! process whose link to NATS or Redis a test cuts and restores. The host
//! end holds three addresses: `host`, for Postgres and the namespace's
//! clients, `nats_host`, the only way to NATS, and `redis_host`, the only
//! way to Redis, which `cut_nats` and `cut_redis` blackhole inside the
//! namespace (packets vanish: a partition, not a refused connection).

use std::process::Command;

pub struct Namespace {
    name: String,
    /// The host's end, as the namespace sees it.
    pub host: String,
    /// The host's second address, used only to reach NATS.
    pub nats_host: String,
    /// The host's third address, used only to reach Redis.
    pub redis_host: String,
    /// The namespace's own address, as the host sees it.
    pub inside: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("run ip (iproute2)");
    assert!(status.success(), "ip {} failed", args.join(" "));
}

impl Namespace {
    /// Creates the namespace and its link; needs root (CAP_NET_ADMIN).
    pub fn create() -> Self {
        // Unique per namespace of this process (tests run in threads) and
        // per test process, so concurrent runs do not collide.
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let k = (std::process::id() * 7 + made) % 250 + 1;
        let name = format!("chat-{k}");
        let (outside, inside_link) = (format!("vh{k}"), format!("vn{k}"));
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ns = Self {
            host: format!("10.213.{k}.1"),
            inside: format!("10.213.{k}.2"),
            nats_host: format!("10.214.{k}.1"),
            redis_host: format!("10.215.{k}.1"),
            name,
        };
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "link",
            "add",
            &outside,
            "type",
            "veth",
            "peer",
            "name",
            &inside_link,
        ]);
        ip(&["link", "set", &inside_link, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{}/24", ns.host), "dev", &outside]);
        ip(&[
            "addr",
            "add",
            &format!("{}/32", ns.nats_host),
            "dev",
            &outside,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/32", ns.redis_host),
            "dev",
            &outside,
        ]);
        ip(&["link", "set", &outside, "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", ns.inside),
            "dev",
            &inside_link,
        ]);
        ns.exec(&["ip", "link", "set", &inside_link, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.heal_nats();
        ns.heal_redis();
        ns
    }

    /// Runs a command inside the namespace and waits for it.
    fn exec(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// A command that will run inside the namespace.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Packets from the namespace to the host are dropped from now on: a
    /// process inside is cut off from everything (TCP needs both ways).
    pub fn cut_all(&self) {
        let host = format!("{}/32", self.host);
        self.exec(&["ip", "route", "replace", "blackhole", &host]);
    }

    /// Undoes `cut_all`.
    pub fn heal_all(&self) {
        let host = format!("{}/32", self.host);
        self.exec(&["ip", "route", "del", "blackhole", &host]);
    }

    /// Packets from the namespace to NATS are dropped from now on.
    pub fn cut_nats(&self) {
        self.blackhole(&self.nats_host);
    }

    /// NATS is reachable again.
    pub fn heal_nats(&self) {
        self.route(&self.nats_host);
    }

    /// Packets from the namespace to Redis are dropped from now on.
    pub fn cut_redis(&self) {
        self.blackhole(&self.redis_host);
    }

    /// Redis is reachable again.
    pub fn heal_redis(&self) {
        self.route(&self.redis_host);
    }

    fn blackhole(&self, address: &str) {
        let address = format!("{address}/32");
        self.exec(&["ip", "route", "replace", "blackhole", &address]);
    }

    fn route(&self, address: &str) {
        let address = format!("{address}/32");
        self.exec(&["ip", "route", "replace", &address, "via", &self.host]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth, and with it
        // the host's end.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
