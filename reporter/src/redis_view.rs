//! Where the cluster's Redis is, for `status`: the master commands go to
//! now, its replicas as the master reports them (`INFO replication`), and,
//! with Sentinel, what each configured sentinel names as master. A replica
//! missing or a sentinel that does not answer is what an operator must see
//! before the next failover needs it.

use serde::{Deserialize, Serialize};
use ubackup_common::{RedisConn, RedisTarget};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisView {
    /// `host:port` of the master (the fixed server without Sentinel).
    pub master: String,
    /// `ip:port (state, lag N s)` per replica the master reports.
    pub replicas: Vec<String>,
    /// Of those, the ones in state `online`.
    #[serde(default)]
    pub online_replicas: u32,
    /// `redis_min_replicas` of the reporter's config (0: not asked for).
    #[serde(default)]
    pub min_replicas: u32,
    /// Empty without Sentinel.
    pub sentinels: Vec<SentinelView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentinelView {
    pub addr: String,
    /// The master it names (`host:port`), or why it did not answer.
    pub answer: Result<String, String>,
}

/// Reads the view; an error only when the master itself does not answer.
pub async fn read(conn: &mut RedisConn, target: &RedisTarget) -> redis::RedisResult<RedisView> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(conn)
        .await?;
    let mut view = RedisView {
        master: conn.current_addr(),
        replicas: replicas(&info),
        online_replicas: online_replicas(&info),
        min_replicas: target.durability().min_replicas,
        sentinels: Vec::new(),
    };
    if let Some(set) = target.sentinels() {
        for (host, port) in &set.sentinels {
            let answer = match set.ask(host, *port).await {
                Ok(Some((h, p))) => Ok(format!("{h}:{p}")),
                Ok(None) => Err(format!("monitors no master named `{}`", set.master_name)),
                Err(e) => Err(e.to_string()),
            };
            view.sentinels.push(SentinelView {
                addr: format!("{host}:{port}"),
                answer,
            });
        }
    }
    Ok(view)
}

/// Replicas whose `state=online` in `INFO replication`.
fn online_replicas(info: &str) -> u32 {
    info.lines()
        .filter(|l| l.starts_with("slave") && l.contains(":ip="))
        .filter(|l| l.split(',').any(|f| f.trim() == "state=online"))
        .count() as u32
}

/// `slaveN:ip=…,port=…,state=…,offset=…,lag=…` lines of `INFO replication`.
fn replicas(info: &str) -> Vec<String> {
    info.lines()
        .filter(|l| l.starts_with("slave") && l.contains(":ip="))
        .filter_map(|l| {
            let (_, fields) = l.trim().split_once(':')?;
            let get = |k: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
                    .unwrap_or("?")
            };
            Some(format!(
                "{}:{} ({}, lag {} s)",
                get("ip"),
                get("port"),
                get("state"),
                get("lag")
            ))
        })
        .collect()
}

impl RedisView {
    /// Two lines for the status screen.
    pub fn text(&self) -> String {
        let replicas = if self.replicas.is_empty() {
            "none".to_string()
        } else {
            self.replicas.join(", ")
        };
        let mut s = format!("redis master {}, replicas: {replicas}", self.master);
        if self.min_replicas > 0 {
            s.push_str(&format!(
                " ({} online, redis_min_replicas {})",
                self.online_replicas, self.min_replicas
            ));
        }
        s.push('\n');
        if !self.sentinels.is_empty() {
            let each: Vec<String> = self
                .sentinels
                .iter()
                .map(|v| match &v.answer {
                    Ok(m) => format!("{} names {m}", v.addr),
                    Err(e) => format!("{} NOT ANSWERING ({e})", v.addr),
                })
                .collect();
            s.push_str(&format!("sentinels: {}\n", each.join("; ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_read_from_info_replication() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.11,port=6379,state=online,offset=42,lag=0\r\nslave1:ip=10.0.0.12,port=6380,state=wait_bgsave,offset=0,lag=3\r\nmaster_replid:abc\r\n";
        assert_eq!(
            replicas(info),
            vec![
                "10.0.0.11:6379 (online, lag 0 s)".to_string(),
                "10.0.0.12:6380 (wait_bgsave, lag 3 s)".to_string()
            ]
        );
        assert_eq!(online_replicas(info), 1);
        let mut v = RedisView {
            master: "10.0.0.10:6379".into(),
            replicas: Vec::new(),
            online_replicas: 0,
            min_replicas: 0,
            sentinels: vec![
                SentinelView {
                    addr: "10.0.0.10:26379".into(),
                    answer: Ok("10.0.0.10:6379".into()),
                },
                SentinelView {
                    addr: "10.0.0.20:26379".into(),
                    answer: Err("connection refused".into()),
                },
            ],
        };
        assert_eq!(
            v.text(),
            "redis master 10.0.0.10:6379, replicas: none\nsentinels: 10.0.0.10:26379 names 10.0.0.10:6379; 10.0.0.20:26379 NOT ANSWERING (connection refused)\n"
        );
        v.min_replicas = 1;
        assert!(v.text().starts_with(
            "redis master 10.0.0.10:6379, replicas: none (0 online, redis_min_replicas 1)\n"
        ));
    }
}
