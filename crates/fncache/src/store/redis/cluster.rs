//! Sending planned requests to a Redis Cluster, blocking and async.
//!
//! redis-rs routes what carries keys (every script: `EVALSHA` goes to the node that serves
//! its first key, `SCRIPT LOAD` after a `NOSCRIPT` to every node, `MOVED`/`ASK` are followed),
//! so a script request is sent as on a single server. What has no key, the `SCAN` of a sweep,
//! the plan addresses explicitly: first to every primary, then to one node at a time.

use redis::Value;
use redis::cluster::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};

use super::plan::{Node, Request};

/// Every primary, each reply kept apart (a map from node address to reply).
fn all_primaries() -> RoutingInfo {
    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None))
}

fn on_node(node: &Node) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: node.host.clone(),
        port: node.port,
    })
}

/// Sends one request over a blocking cluster connection.
pub(super) fn send_blocking(
    con: &mut ClusterConnection,
    request: &Request,
) -> redis::RedisResult<Value> {
    match request {
        Request::Script(invocation) => invocation.invoke(con),
        Request::Cmd(cmd) => cmd.query(con),
        // The blocking cluster connection refuses `Pipeline::query`, but sends a pipeline of
        // one slot (all ours are) to the node of its first key, each reply kept apart.
        Request::Pipe(pipe) => redis::ConnectionLike::req_packed_commands(
            con,
            &pipe.get_packed_pipeline(),
            0,
            pipe.len(),
        )
        .map(Value::Array),
        Request::AllPrimaries(cmd) => con.route_command(cmd, all_primaries()),
        Request::OnNode(cmd, node) => con.route_command(cmd, on_node(node)),
    }
}

/// Sends one request over an async cluster connection.
pub(super) async fn send_async(
    con: &mut redis::cluster_async::ClusterConnection,
    request: &Request,
) -> redis::RedisResult<Value> {
    match request {
        Request::Script(invocation) => invocation.invoke_async(con).await,
        Request::Cmd(cmd) => cmd.query_async(con).await,
        Request::Pipe(pipe) => pipe.query_async(con).await,
        Request::AllPrimaries(cmd) => con.route_command(cmd.clone(), all_primaries()).await,
        Request::OnNode(cmd, node) => con.route_command(cmd.clone(), on_node(node)).await,
    }
}

/// The error for a cluster-only request on a single server: a planning bug, never expected.
pub(super) fn not_a_cluster() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "fncache planned a cluster request for a single server",
    ))
}
