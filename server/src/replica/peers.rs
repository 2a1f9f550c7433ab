//! The other nodes as replication sees them: from each registered worker's
//! state hash and heartbeat key, and where a copy should go.

use std::collections::HashMap;
use std::time::Duration;

use ubackup_common::keys::state;
use ubackup_common::message::now_ms;
use ubackup_common::Keys;
use ubackup_common::RedisConn;

/// A pull node (state hash `kind` = `node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    pub ip: String,
    pub zone: String,
    pub module: String,
    pub module_port: u16,
    /// The TLS port in front of the module (874 when not published).
    pub module_tls_port: u16,
    /// Its heartbeat key exists.
    pub alive: bool,
    /// Unix ms of its last heartbeat (0 when never seen).
    pub heartbeat_ms: i64,
    /// It takes replication tasks (it published a module).
    pub replicates: bool,
}

impl Peer {
    /// Whether the copies on this node still count: it is up, or has been
    /// down for less than `repair_after`.
    pub fn holds_copies(&self, repair_after: Duration) -> bool {
        self.alive || now_ms() - self.heartbeat_ms < repair_after.as_millis() as i64
    }
}

/// Every registered node, in node order.
pub async fn nodes(conn: &mut RedisConn, keys: &Keys) -> redis::RedisResult<Vec<Peer>> {
    let mut workers: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.workers())
        .query_async(conn)
        .await?;
    workers.sort();
    let mut p = redis::pipe();
    for w in &workers {
        p.hgetall(keys.state(w)).exists(keys.alive(w));
    }
    let answers: Vec<redis::Value> = p.query_async(conn).await?;
    let mut out = Vec::new();
    for (w, pair) in workers.iter().zip(answers.chunks(2)) {
        let h: HashMap<String, String> = redis::from_redis_value(pair[0].clone())?;
        let alive: bool = redis::from_redis_value(pair[1].clone())?;
        if h.get(state::KIND).map(String::as_str) != Some("node") {
            continue;
        }
        let get = |k: &str| h.get(k).cloned().unwrap_or_default();
        out.push(Peer {
            node: w.clone(),
            ip: get(state::IP),
            zone: h.get(state::ZONE).cloned().unwrap_or_else(|| w.clone()),
            module: get(state::MODULE),
            module_port: get(state::MODULE_PORT).parse().unwrap_or(873),
            module_tls_port: get(state::MODULE_TLS_PORT)
                .parse()
                .unwrap_or(ubackup_transport::tls::DEFAULT_TLS_PORT),
            alive,
            heartbeat_ms: get(state::HEARTBEAT_MS).parse().unwrap_or(0),
            replicates: h.contains_key(state::MODULE),
        });
    }
    Ok(out)
}

/// Where the next copy of backup `id` goes: a live replicating node that
/// holds no copy, in a zone that holds none when there is one; among
/// equals, the one rendezvous hashing of `id` ranks first, so every node
/// (and every retry) picks the same target for one backup while the
/// membership stays the same, and the backups spread evenly.
pub fn choose_target<'a>(
    id: &str,
    peers: &'a [Peer],
    holders: &[&str],
    held_zones: &[&str],
) -> Option<&'a Peer> {
    peers
        .iter()
        .filter(|p| p.alive && p.replicates && !holders.contains(&p.node.as_str()))
        .max_by_key(|p| {
            let other_zone = !held_zones.contains(&p.zone.as_str());
            let h = blake3::hash(format!("{id}\0{}", p.node).as_bytes());
            let rank = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
            (other_zone, rank)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(node: &str, zone: &str, alive: bool) -> Peer {
        Peer {
            node: node.into(),
            ip: "127.0.0.1".into(),
            zone: zone.into(),
            module: "ubackup".into(),
            module_port: 873,
            module_tls_port: 874,
            alive,
            heartbeat_ms: 0,
            replicates: true,
        }
    }

    #[test]
    fn another_zone_first_then_another_node_never_a_holder() {
        let peers = vec![
            peer("n1", "a", true),
            peer("n2", "a", true),
            peer("n3", "b", true),
        ];
        for i in 0..50 {
            let id = format!("id{i}");
            let t = choose_target(&id, &peers, &["n1"], &["a"]).unwrap();
            assert_eq!(t.node, "n3", "{id}");
        }
        // zone b down: another node of zone a
        let peers2 = vec![
            peer("n1", "a", true),
            peer("n2", "a", true),
            peer("n3", "b", false),
        ];
        assert_eq!(
            choose_target("x", &peers2, &["n1"], &["a"]).unwrap().node,
            "n2"
        );
        // nobody left
        assert!(choose_target("x", &peers2, &["n1", "n2"], &["a"]).is_none());
    }

    #[test]
    fn the_choice_is_stable_and_spreads() {
        let peers = vec![
            peer("n1", "a", true),
            peer("n2", "b", true),
            peer("n3", "c", true),
        ];
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..300 {
            let id = format!("id{i}");
            let a = choose_target(&id, &peers, &["n1"], &["a"])
                .unwrap()
                .node
                .clone();
            let b = choose_target(&id, &peers, &["n1"], &["a"])
                .unwrap()
                .node
                .clone();
            assert_eq!(a, b);
            *seen.entry(a).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen.values().all(|&n| n > 100), "{seen:?}");
    }
}
