//! What a test cluster starts and the settings every process shares: the
//! secrets tests sign with and the limits kept out of a test's way.

pub const JWT_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The only browser origin the test gateways allow.
pub const ALLOWED_ORIGIN: &str = "https://chat.example";

/// Per-user and per-address limits high enough for any test that does
/// not test them.
pub(crate) const UNLIMITED: [(&str, &str); 6] = [
    ("CHAT_GATEWAY_LIMITS__SEND_RATE_PER_CONNECTION", "1000000"),
    ("CHAT_GATEWAY_LIMITS__SEND_BURST_PER_CONNECTION", "1000000"),
    ("CHAT_GATEWAY_LIMITS__SEND_RATE_PER_USER", "1000000"),
    ("CHAT_GATEWAY_LIMITS__SEND_BURST_PER_USER", "1000000"),
    ("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS_PER_USER", "100000"),
    ("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS_PER_IP", "100000"),
];

/// A token the test gateways accept for `user`, valid for an hour.
pub fn token(user: &str) -> String {
    chat_auth::mint_hs256(JWT_SECRET, user, 3600)
}

/// What to start.
#[derive(Clone)]
pub struct ClusterOptions {
    pub gateways: usize,
    pub workers: usize,
    /// Extra `CHAT_GATEWAY_*` variables.
    pub gateway_env: Vec<(String, String)>,
    /// Extra `CHAT_WORKER_*` variables.
    pub worker_env: Vec<(String, String)>,
    /// nats-server settings after `deploy/nats.conf`'s.
    pub nats_conf: String,
    /// Services listen on every interface, not only loopback, so that a
    /// gateway in a network namespace reaches them.
    pub all_interfaces: bool,
    /// NATS servers: 1, or 3 for a cluster whose streams have 3 replicas.
    pub nats_nodes: usize,
    /// In a NATS cluster, the last node runs in a network namespace of its
    /// own, so that a test can cut it off (`Cluster::nats_namespace`).
    pub nats_node_apart: bool,
    /// Gateways and workers use a Redis Cluster of three masters.
    pub redis_cluster: bool,
}

/// Which processes an environment variable is for.
pub enum Role {
    Gateways,
    Workers,
    Both,
}

impl ClusterOptions {
    pub fn new(gateways: usize, workers: usize) -> Self {
        Self {
            gateways,
            workers,
            gateway_env: Vec::new(),
            worker_env: Vec::new(),
            nats_conf: String::new(),
            all_interfaces: false,
            nats_nodes: 1,
            nats_node_apart: false,
            redis_cluster: false,
        }
    }

    /// Gateways and workers cache in a 3-master Redis Cluster.
    pub fn redis_cluster(mut self) -> Self {
        self.redis_cluster = true;
        self
    }

    /// A 3-node NATS cluster, every stream at 3 replicas.
    pub fn nats_cluster(self) -> Self {
        let mut options = self.gateway_env("CHAT_GATEWAY_STREAM__REPLICAS", "3").env(
            Role::Workers,
            "CHAT_WORKER_STREAM__REPLICAS",
            "3",
        );
        options.nats_nodes = 3;
        options
    }

    /// As `nats_cluster`, with its last node in a network namespace.
    pub fn nats_cluster_with_a_node_apart(self) -> Self {
        let mut options = self.nats_cluster().reachable_from_namespaces();
        options.nats_node_apart = true;
        options
    }

    pub fn reachable_from_namespaces(mut self) -> Self {
        self.all_interfaces = true;
        self
    }

    pub fn nats_conf(mut self, settings: &str) -> Self {
        self.nats_conf.push_str(settings);
        self.nats_conf.push('\n');
        self
    }

    pub fn gateway_env(self, key: &str, value: &str) -> Self {
        self.env(Role::Gateways, key, value)
    }

    pub fn env(mut self, role: Role, key: &str, value: &str) -> Self {
        let pair = (key.to_string(), value.to_string());
        match role {
            Role::Gateways => self.gateway_env.push(pair),
            Role::Workers => self.worker_env.push(pair),
            Role::Both => {
                self.gateway_env.push(pair.clone());
                self.worker_env.push(pair);
            }
        }
        self
    }
}
