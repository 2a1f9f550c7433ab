//! "Acknowledged means replicated" (`redis_min_replicas = N`): a write
//! that must not be lost (a client's push, a node's fenced ack with its
//! result, the indexer's ack) counts as done only after `WAIT N timeout`
//! said N replicas have it.
//!
//! How a write is confirmed: the writer takes a [`WriteMark`] before the
//! write, and after it calls [`RedisConn::confirm`], which sends one more
//! write (a probe key) and `WAIT` in one pipeline. `WAIT` counts the
//! replicas that have everything this connection wrote, and a replica
//! applies the master's stream in order, so a replica that has the probe
//! has every write the master made before it: the confirmation does not
//! depend on the write and the `WAIT` sharing a TCP connection (a
//! reconnect in between would make a bare `WAIT` count a fresh
//! connection's empty history). What it cannot cover is a failover between
//! the write and the probe: the new master may lack the write. The handle's
//! generation tells: then [`Unconfirmed::MasterChanged`], and the writer
//! checks on the new master (a fenced ack is redone, a push is resent under
//! its once-only marker).
//!
//! Not guaranteed even so: Redis 7.0 has `WAIT` but no `WAITAOF`, so a
//! confirmed write is in the replicas' memory, not necessarily on their
//! disks; a write `WAIT` did not confirm may still have been applied.

use redis::RedisResult;

use super::RedisConn;

/// Taken before a write; [`RedisConn::confirm`] checks the master did not
/// change since.
#[derive(Clone, Copy, Debug)]
pub struct WriteMark {
    generation: u64,
}

/// Why a write is not (yet) known to be on enough replicas.
#[derive(Debug)]
pub enum Unconfirmed {
    /// `WAIT` returned with fewer replicas than asked for.
    Short { got: u32, want: u32 },
    /// The handle followed a failover after the write: the write may be
    /// missing on the new master.
    MasterChanged,
    /// The probe or `WAIT` failed.
    Redis(redis::RedisError),
}

impl std::fmt::Display for Unconfirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unconfirmed::Short { got, want } => write!(
                f,
                "WAIT confirmed the write on {got} of the {want} replicas redis_min_replicas asks for"
            ),
            Unconfirmed::MasterChanged => f.write_str(
                "the Redis master changed (failover) before the write was confirmed on its replicas",
            ),
            Unconfirmed::Redis(e) => write!(f, "confirming the write on the replicas failed: {e}"),
        }
    }
}

impl Unconfirmed {
    /// As a Redis error, for callers whose existing retry treats any Redis
    /// error as "not known to be done" (the client's spool).
    pub fn into_redis_error(self) -> redis::RedisError {
        match self {
            Unconfirmed::Redis(e) => e,
            other => redis::RedisError::from((
                redis::ErrorKind::Io,
                "write not confirmed on the replicas",
                other.to_string(),
            )),
        }
    }
}

impl RedisConn {
    /// Taken before a write that [`confirm`](Self::confirm) will check.
    pub fn mark(&self) -> WriteMark {
        WriteMark {
            generation: self.generation(),
        }
    }

    /// Ok once `redis_min_replicas` replicas have every write the master
    /// made before now, on the same master as at `mark`; at once when
    /// `redis_min_replicas` is 0. `probe_key` is the key the probe write
    /// sets (`Keys::replication_probe`, so ACLs scoped to the prefix hold).
    pub async fn confirm(&self, mark: WriteMark, probe_key: &str) -> Result<(), Unconfirmed> {
        let d = self.durability();
        if d.min_replicas == 0 {
            return Ok(());
        }
        if self.generation() != mark.generation {
            return Err(Unconfirmed::MasterChanged);
        }
        let timeout_ms = d.wait_timeout.as_millis().max(1) as u64;
        let got: RedisResult<(u32,)> = redis::pipe()
            .cmd("SET")
            .arg(probe_key)
            .arg(crate::message::now_ms())
            .arg("PX")
            .arg(600_000)
            .ignore()
            .cmd("WAIT")
            .arg(d.min_replicas)
            .arg(timeout_ms)
            .query_async(&mut self.clone())
            .await;
        let (got,) = got.map_err(Unconfirmed::Redis)?;
        if self.generation() != mark.generation {
            return Err(Unconfirmed::MasterChanged);
        }
        if got < d.min_replicas {
            return Err(Unconfirmed::Short {
                got,
                want: d.min_replicas,
            });
        }
        Ok(())
    }
}
