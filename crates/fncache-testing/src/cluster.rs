//! A throwaway Redis Cluster: three primaries and three replicas on free loopback ports.

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use crate::{INSTALL_HINT, ServerKind, free_port, redis_cli_binary, start_process, temp_dir};

/// How long the cluster has to agree on its configuration (after creation or a failover).
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);
/// The node timeout of the test cluster: how long a silent node takes to be declared failed.
/// Failovers in tests are manual, so this only needs to be long enough to never fire by
/// accident on a loaded machine.
const NODE_TIMEOUT_MS: u64 = 5000;

/// One node of the cluster.
#[derive(Debug)]
struct ClusterNode {
    port: u16,
    /// `None` once killed.
    child: Option<Child>,
}

/// A six-node Redis Cluster (3 primaries, 3 replicas) of `redis-server --cluster-enabled yes`
/// processes joined with `redis-cli --cluster create`, every process killed on drop. Always
/// Redis, whatever `FNCACHE_TEST_SERVER` says: the cluster tests run against Redis only.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<ClusterNode>,
    dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts six nodes, joins them with `redis-cli --cluster create … --cluster-replicas 1`,
    /// and waits until every node reports `cluster_state:ok` with all 16384 slots assigned and
    /// every replica in sync with its primary.
    ///
    /// # Panics
    /// When `redis-server` or `redis-cli` is missing (with an install hint) or the cluster does
    /// not come together in time.
    pub fn spawn() -> RedisCluster {
        let dir = temp_dir();
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        while cluster.nodes.len() < 6 {
            let port = free_port();
            // The port may be taken before redis-server binds it: then try another.
            if let Some(node) = cluster.start_node(port) {
                cluster.nodes.push(node);
            }
        }
        let cli = redis_cli_binary();
        let output = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{cli}` ({e}). {INSTALL_HINT}"));
        if !output.status.success() {
            panic!(
                "`redis-cli --cluster create` failed ({}):\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        cluster.wait_until_settled();
        cluster
    }

    fn start_node(&self, port: u16) -> Option<ClusterNode> {
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &format!("nodes-{port}.conf"),
            "--cluster-node-timeout",
            &NODE_TIMEOUT_MS.to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut child = start_process(ServerKind::Redis, &args, self.dir.path(), port)
            .unwrap_or_else(|e| panic!("{e}"));
        let client = node_client(port);
        match crate::wait_ready(&client, port, &mut child) {
            Ok(()) => Some(ClusterNode {
                port,
                child: Some(child),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// Ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// `redis://` URLs of every running node: seeds for a cluster client.
    pub fn seed_urls(&self) -> Vec<String> {
        self.live_ports()
            .into_iter()
            .map(|port| format!("redis://127.0.0.1:{port}/"))
            .collect()
    }

    /// A plain (non-cluster) connection to the node on `port`.
    pub fn node_connection(&self, port: u16) -> redis::Connection {
        node_client(port)
            .get_connection()
            .unwrap_or_else(|e| panic!("cannot connect to cluster node {port}: {e}"))
    }

    /// A plain connection to some running node.
    pub fn any_connection(&self) -> redis::Connection {
        let port = self
            .live_ports()
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no cluster node is running"));
        self.node_connection(port)
    }

    /// A redis-rs cluster client over every running node.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::new(self.seed_urls())
            .unwrap_or_else(|e| panic!("bad cluster seeds: {e}"))
    }

    /// Primary port -> replica ports, as the running nodes see it (from `CLUSTER SLOTS`).
    pub fn topology(&self) -> BTreeMap<u16, Vec<u16>> {
        let mut out = BTreeMap::new();
        for range in self.slots() {
            out.entry(range.primary).or_insert(range.replicas);
        }
        out
    }

    /// Ports of the primaries.
    pub fn primaries(&self) -> Vec<u16> {
        self.topology().into_keys().collect()
    }

    /// A replica of `primary`.
    pub fn replica_of(&self, primary: u16) -> u16 {
        self.topology()
            .get(&primary)
            .and_then(|r| r.first().copied())
            .unwrap_or_else(|| panic!("{primary} is not a primary with a replica"))
    }

    /// The hash slot of `key` (asked of the cluster: `CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.any_connection())
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT failed: {e}"))
    }

    /// The port of the primary that serves `key`.
    pub fn primary_for_key(&self, key: &str) -> u16 {
        let slot = self.slot_of(key);
        self.slots()
            .into_iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .map(|r| r.primary)
            .unwrap_or_else(|| panic!("no primary serves slot {slot}"))
    }

    /// Keys matching `pattern` on every primary (`KEYS`, for tests only).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for port in self.primaries() {
            let mut found: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut self.node_connection(port))
                .unwrap_or_else(|e| panic!("KEYS on {port} failed: {e}"));
            keys.append(&mut found);
        }
        keys.sort();
        keys
    }

    /// Sends `cmd` to every running node (for example `SCRIPT FLUSH`).
    pub fn on_every_node(&self, cmd: &redis::Cmd) {
        for port in self.live_ports() {
            let _: redis::Value = cmd
                .query(&mut self.node_connection(port))
                .unwrap_or_else(|e| panic!("command on node {port} failed: {e}"));
        }
    }

    /// The cluster node ID of the node on `port`.
    pub fn node_id(&self, port: u16) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.node_connection(port))
            .unwrap_or_else(|e| panic!("CLUSTER MYID on {port} failed: {e}"))
    }

    /// Moves `slot` to the primary on `to` as `redis-cli --cluster reshard` does: the slot is
    /// marked importing on `to` and migrating on its owner, then its keys are `MIGRATE`d.
    /// With `finish`, the slot is then assigned to `to` on every primary and the call waits
    /// until every running node routes it there (clients holding the old map get `MOVED`);
    /// without, the slot stays mid-migration (clients get `ASK` for the keys already moved).
    pub fn migrate_slot(&self, slot: u16, to: u16, finish: bool) {
        let from = self
            .slots()
            .into_iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .map(|r| r.primary)
            .unwrap_or_else(|| panic!("no primary serves slot {slot}"));
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let setslot = |port: u16, args: &[&str]| {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(args)
                .query(&mut self.node_connection(port))
                .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {slot} {args:?} on {port}: {e}"));
        };
        setslot(to, &["IMPORTING", &from_id]);
        setslot(from, &["MIGRATING", &to_id]);
        let mut source = self.node_connection(from);
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut source)
                .unwrap_or_else(|e| panic!("CLUSTER GETKEYSINSLOT on {from}: {e}"));
            if keys.is_empty() {
                break;
            }
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut source)
                .unwrap_or_else(|e| panic!("MIGRATE from {from} to {to}: {e}"));
        }
        if !finish {
            return;
        }
        for primary in self.primaries() {
            setslot(primary, &["NODE", &to_id]);
        }
        let deadline = Instant::now() + SETTLE_DEADLINE;
        for port in self.live_ports() {
            loop {
                let owner = parse_slots(
                    redis::cmd("CLUSTER")
                        .arg("SLOTS")
                        .query(&mut self.node_connection(port))
                        .unwrap_or_default(),
                )
                .into_iter()
                .find(|r| r.start <= slot && slot <= r.end)
                .map(|r| r.primary);
                if owner == Some(to) {
                    break;
                }
                if Instant::now() > deadline {
                    panic!("node {port} still routes slot {slot} to {owner:?}, not {to}");
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills the node on `port`, as a crash would.
    pub fn kill(&mut self, port: u16) {
        for node in &mut self.nodes {
            if node.port == port
                && let Some(mut child) = node.child.take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Promotes `replica` with `CLUSTER FAILOVER TAKEOVER` (its primary may be dead: no vote
    /// or handshake is needed), then waits until it is a primary and every running node agrees
    /// on who serves every slot.
    pub fn promote(&self, replica: u16) {
        let _: () = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .arg("TAKEOVER")
            .query(&mut self.node_connection(replica))
            .unwrap_or_else(|e| panic!("CLUSTER FAILOVER TAKEOVER on {replica} failed: {e}"));
        let deadline = Instant::now() + SETTLE_DEADLINE;
        loop {
            let role: Vec<redis::Value> = redis::cmd("ROLE")
                .query(&mut self.node_connection(replica))
                .unwrap_or_default();
            if matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master") {
                break;
            }
            if Instant::now() > deadline {
                panic!("{replica} was not promoted within {SETTLE_DEADLINE:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.wait_until_settled();
    }

    /// Waits until every running node reports `cluster_state:ok`, all slots are served by
    /// running primaries in every node's view, and every replica is in sync.
    pub fn wait_until_settled(&self) {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        loop {
            let Err(last) = self.settled() else {
                return;
            };
            if Instant::now() > deadline {
                panic!("the cluster did not settle within {SETTLE_DEADLINE:?}: {last}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn settled(&self) -> Result<(), String> {
        let live = self.live_ports();
        for &port in &live {
            let mut con = node_client(port)
                .get_connection_with_timeout(Duration::from_secs(1))
                .map_err(|e| format!("{port}: {e}"))?;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut con)
                .map_err(|e| format!("{port}: {e}"))?;
            for want in ["cluster_state:ok", "cluster_slots_assigned:16384"] {
                if !info.lines().any(|l| l.trim() == want) {
                    return Err(format!("{port} lacks {want}"));
                }
            }
            let slots = parse_slots(
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query(&mut con)
                    .map_err(|e| format!("{port}: {e}"))?,
            );
            if let Some(dead) = slots.iter().find(|r| !live.contains(&r.primary)) {
                return Err(format!("{port} still routes slots to {}", dead.primary));
            }
            // Until a replica is lost for good, every primary has one.
            if live.len() == self.nodes.len()
                && let Some(alone) = slots.iter().find(|r| r.replicas.is_empty())
            {
                return Err(format!("{port} knows no replica of {}", alone.primary));
            }
            let replication: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut con)
                .map_err(|e| format!("{port}: {e}"))?;
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return Err(format!("replica {port} is not in sync"));
            }
        }
        Ok(())
    }

    fn slots(&self) -> Vec<SlotRange> {
        parse_slots(
            redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query(&mut self.any_connection())
                .unwrap_or_else(|e| panic!("CLUSTER SLOTS failed: {e}")),
        )
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn node_client(port: u16) -> redis::Client {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap_or_else(|e| panic!("bad node URL: {e}"))
}

/// One range of `CLUSTER SLOTS`.
#[derive(Debug)]
struct SlotRange {
    start: u16,
    end: u16,
    primary: u16,
    replicas: Vec<u16>,
}

fn parse_slots(reply: Vec<redis::Value>) -> Vec<SlotRange> {
    let port_of = |node: &redis::Value| -> Option<u16> {
        let redis::Value::Array(parts) = node else {
            return None;
        };
        match parts.get(1)? {
            redis::Value::Int(port) => u16::try_from(*port).ok(),
            _ => None,
        }
    };
    reply
        .iter()
        .filter_map(|range| {
            let redis::Value::Array(parts) = range else {
                return None;
            };
            let int = |v: &redis::Value| match v {
                redis::Value::Int(n) => u16::try_from(*n).ok(),
                _ => None,
            };
            Some(SlotRange {
                start: int(parts.first()?)?,
                end: int(parts.get(1)?)?,
                primary: port_of(parts.get(2)?)?,
                replicas: parts.iter().skip(3).filter_map(port_of).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_comes_up_serves_every_slot_and_survives_a_takeover() {
        let mut cluster = RedisCluster::spawn();
        let topology = cluster.topology();
        assert_eq!(topology.len(), 3, "{topology:?}");
        assert!(topology.values().all(|r| r.len() == 1), "{topology:?}");
        let mut con = cluster.client().get_connection().unwrap();
        let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
        let primary = cluster.primary_for_key("k");
        let replica = cluster.replica_of(primary);
        let _: u64 = redis::cmd("WAIT")
            .arg(1)
            .arg(2000)
            .query(&mut cluster.node_connection(primary))
            .unwrap();
        cluster.kill(primary);
        cluster.promote(replica);
        assert_eq!(cluster.primary_for_key("k"), replica);
        let v: String = redis::cmd("GET")
            .arg("k")
            .query(&mut cluster.node_connection(replica))
            .unwrap();
        assert_eq!(v, "v");
    }
}
