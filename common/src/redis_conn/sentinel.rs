//! Finding the master through Redis Sentinel: each sentinel in turn is
//! asked `SENTINEL get-master-addr-by-name`, and the server it names must
//! answer `ROLE` with `master` before anyone writes to it. A sentinel's
//! answer can lag a failover (it still names the old master for a moment,
//! or a demoted one that came back as a replica); the `ROLE` check keeps a
//! component from writing to a replica on such an answer.
//!
//! One pass over the sentinels, no waiting: the callers' loops already back
//! off between attempts (`crate::backoff`), and the next error asks again.

use std::time::Duration;

use redis::{ErrorKind, IntoConnectionInfo, RedisError, RedisResult};

/// How long one sentinel or one candidate master may take to answer:
/// short, because the next sentinel is tried after it.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The sentinels of one monitored master, and how to log in to the master.
#[derive(Clone, Debug)]
pub struct SentinelSet {
    /// `host:port` of each sentinel, in config order (asked in this order).
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels monitor (`sentinel monitor NAME …`).
    pub master_name: String,
    /// `requirepass` of the sentinels themselves, if they have one.
    pub sentinel_password: Option<String>,
    /// AUTH and database for the master (`redis_password`), not the sentinels.
    pub data: redis::RedisConnectionInfo,
}

impl SentinelSet {
    pub fn with_db(&self, db: i64) -> SentinelSet {
        let mut s = self.clone();
        s.data = s.data.set_db(db);
        s
    }

    /// The current master, confirmed by `ROLE`. The error lists what each
    /// sentinel said, so a wrong password, an unknown master name and an
    /// unreachable sentinel read differently.
    pub async fn master(&self) -> RedisResult<redis::ConnectionInfo> {
        let mut said = Vec::new();
        let mut kind = ErrorKind::Io;
        for (host, port) in &self.sentinels {
            match self.ask(host, *port).await {
                Ok(Some((mhost, mport))) => {
                    let info = self.data_info(&mhost, mport)?;
                    match confirm_master(&info).await {
                        Ok(()) => return Ok(info),
                        Err(e) => said.push(format!(
                            "sentinel {host}:{port} names {mhost}:{mport}, which {e}"
                        )),
                    }
                }
                Ok(None) => {
                    kind = ErrorKind::MasterNameNotFoundBySentinel;
                    said.push(format!(
                        "sentinel {host}:{port} monitors no master named `{}`",
                        self.master_name
                    ));
                }
                Err(e) => {
                    if e.kind() == ErrorKind::AuthenticationFailed || is_auth_error(&e) {
                        kind = ErrorKind::AuthenticationFailed;
                    }
                    said.push(format!("sentinel {host}:{port}: {e}"));
                }
            }
        }
        Err(RedisError::from((
            kind,
            "no sentinel named a reachable master",
            format!("master `{}`: {}", self.master_name, said.join("; ")),
        )))
    }

    /// What one sentinel says: `None` when it monitors no such master.
    pub async fn ask(&self, host: &str, port: u16) -> RedisResult<Option<(String, u16)>> {
        let mut info = (host, port).into_connection_info()?;
        if let Some(pw) = &self.sentinel_password {
            let s = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(s);
        }
        let mut conn = connect(info).await?;
        let addr: Option<(String, String)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master_name)
            .query_async(&mut conn)
            .await?;
        match addr {
            None => Ok(None),
            Some((h, p)) => match p.parse::<u16>() {
                Ok(p) => Ok(Some((h, p))),
                Err(_) => Err(RedisError::from((
                    ErrorKind::UnexpectedReturnType,
                    "sentinel answered a port that is not a number",
                    p,
                ))),
            },
        }
    }

    fn data_info(&self, host: &str, port: u16) -> RedisResult<redis::ConnectionInfo> {
        Ok((host, port)
            .into_connection_info()?
            .set_redis_settings(self.data.clone()))
    }
}

/// Ok when the server at `info` says it is a master.
async fn confirm_master(info: &redis::ConnectionInfo) -> RedisResult<()> {
    let mut conn = connect(info.clone()).await?;
    let role: redis::Value = redis::cmd("ROLE").query_async(&mut conn).await?;
    let first = match role {
        redis::Value::Array(v) => v.into_iter().next(),
        _ => None,
    };
    let name: Option<String> = first.and_then(|v| redis::from_redis_value(v).ok());
    match name.as_deref() {
        Some("master") => Ok(()),
        other => Err(RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
            "is not a master",
            format!("ROLE says {}", other.unwrap_or("nothing readable")),
        ))),
    }
}

async fn connect(info: redis::ConnectionInfo) -> RedisResult<redis::aio::MultiplexedConnection> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(ASK_TIMEOUT))
        .set_response_timeout(Some(ASK_TIMEOUT));
    redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
}

/// A refused AUTH as the server words it (some come back as plain `ERR`).
fn is_auth_error(e: &RedisError) -> bool {
    let t = e.to_string();
    t.contains("WRONGPASS") || t.contains("NOAUTH") || t.contains("invalid password")
}

/// True for the errors after which the master may have moved: the
/// connection failed, or the server says it is a replica (`READONLY`) or a
/// replica cut off from its master (`MASTERDOWN`).
pub fn master_may_have_moved(e: &RedisError) -> bool {
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
    {
        return true;
    }
    command_refused_by_replica(e)
}

/// `READONLY` or `MASTERDOWN`: the server refused the command without
/// running it, so sending it again to the new master is safe.
pub fn command_refused_by_replica(e: &RedisError) -> bool {
    matches!(e.code(), Some("READONLY") | Some("MASTERDOWN"))
        || matches!(
            e.kind(),
            ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
                | ErrorKind::Server(redis::ServerErrorKind::MasterDown)
        )
}

impl std::fmt::Display for SentinelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self
            .sentinels
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect();
        write!(
            f,
            "master `{}` of sentinels {} db {}",
            self.master_name,
            list.join(","),
            self.data.db()
        )
    }
}
