//! A Redis Sentinel set-up for failover tests: a master, its replicas and
//! three sentinels, all on ephemeral 127.0.0.1 ports in one temp directory,
//! every process started here and stopped by its PID (on drop: sentinels
//! first, so they do not fail over while the servers go down).
//!
//! The sentinels run with a short `down-after-milliseconds` (1 s by
//! default) so a killed master is replaced within a few seconds. Each has
//! its own config file, because a sentinel rewrites its file as it learns
//! about replicas, other sentinels and failovers.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::wait_for;
use crate::{free_port, RedisServer};

/// How to start a [`SentinelSetup`].
#[derive(Debug, Clone)]
pub struct SentinelOpts {
    pub master_name: String,
    /// `requirepass` (and `masterauth`) of the master and replicas.
    pub password: Option<String>,
    /// `requirepass` of the sentinels (and `sentinel sentinel-pass`).
    pub sentinel_password: Option<String>,
    pub replicas: usize,
    pub sentinels: usize,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    /// `<p>_min_replicas` in every component's config (0: not set).
    pub min_replicas: u32,
}

impl Default for SentinelOpts {
    fn default() -> Self {
        SentinelOpts {
            master_name: "ubackup".into(),
            password: None,
            sentinel_password: None,
            replicas: 1,
            sentinels: 3,
            down_after_ms: 1000,
            failover_timeout_ms: 5000,
            min_replicas: 0,
        }
    }
}

/// One redis-sentinel process we started.
pub struct Sentinel {
    pub port: u16,
    pub conf: PathBuf,
    child: Option<Child>,
}

impl Sentinel {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// kill -9 this sentinel.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A running master + replicas + sentinels.
pub struct SentinelSetup {
    // (drop order: the sentinels, then the servers, then the directory)
    pub sentinels: Vec<Sentinel>,
    /// The servers started here: with [`SentinelSetup::start`] the first
    /// master and its replicas, with [`SentinelSetup::around`] the replicas
    /// only. Which one is master now is [`SentinelSetup::master_port`]'s
    /// answer.
    pub servers: Vec<RedisServer>,
    pub opts: SentinelOpts,
    pub dir: tempfile::TempDir,
    /// The port of the master the sentinels were started to monitor.
    first_master: u16,
}

/// The sentinels' addresses and passwords, to ask for the master from
/// another thread (Send, Clone).
#[derive(Debug, Clone)]
pub struct MasterLocator {
    pub sentinels: Vec<u16>,
    pub master_name: String,
    pub password: Option<String>,
    pub sentinel_password: Option<String>,
}

impl MasterLocator {
    /// The master's port as the first answering sentinel names it.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|port| {
            let mut c = sync_conn(&url(*port, self.sentinel_password.as_ref()))?;
            let a: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master_name)
                .query(&mut c)
                .ok()?;
            a.map(|(_, p)| p)
        })
    }

    /// `redis://[:pw@]127.0.0.1:<master>/`, if a sentinel answers.
    pub fn master_url(&self) -> Option<String> {
        Some(url(self.master_port()?, self.password.as_ref()))
    }
}

impl SentinelSetup {
    /// A new master, `opts.replicas` replicas and the sentinels.
    pub fn start(opts: SentinelOpts) -> Result<SentinelSetup> {
        let master = RedisServer::start_with(&refs(&auth_args(&opts)))?;
        let mut s = Self::around(&master, opts)?;
        s.servers.insert(0, master);
        Ok(s)
    }

    /// Replicas and sentinels for a master the caller started and keeps
    /// (`servers` then holds the replicas only). Such a master needs
    /// `--masterauth` as well as `--requirepass` to rejoin as a replica.
    pub fn around(master: &RedisServer, opts: SentinelOpts) -> Result<SentinelSetup> {
        let dir = tempfile::Builder::new()
            .prefix("ubackup-sentinel-")
            .tempdir()?;
        let mut servers = Vec::new();
        for _ in 0..opts.replicas {
            let mut args = auth_args(&opts);
            args.extend([
                "--replicaof".to_string(),
                "127.0.0.1".into(),
                master.port.to_string(),
            ]);
            servers.push(RedisServer::start_with(&refs(&args))?);
        }
        let mut s = SentinelSetup {
            sentinels: Vec::new(),
            servers,
            opts,
            dir,
            first_master: master.port,
        };
        for i in 0..s.servers.len() {
            let port = s.servers[i].port;
            wait_for(
                "the replica's link to its master",
                Duration::from_secs(20),
                || {
                    s.info(port, "replication")
                        .is_some_and(|t| t.contains("master_link_status:up"))
                },
            )?;
        }
        let ports: Vec<u16> = (0..s.opts.sentinels).map(|_| free_port()).collect();
        for i in 0..s.opts.sentinels {
            let sentinel = s.spawn_sentinel(i, &ports)?;
            s.sentinels.push(sentinel);
        }
        // a failover needs every sentinel to know the replicas and the
        // other sentinels
        let want = s.opts.sentinels - 1;
        for i in 0..s.sentinels.len() {
            let port = s.sentinels[i].port;
            wait_for(
                "each sentinel to know the replicas and the other sentinels",
                Duration::from_secs(30),
                || {
                    s.sentinel_count(port, "replicas") == Some(s.opts.replicas)
                        && s.sentinel_count(port, "sentinels") == Some(want)
                },
            )?;
        }
        Ok(s)
    }

    /// What another thread needs to find the master of now.
    pub fn locator(&self) -> MasterLocator {
        MasterLocator {
            sentinels: self.sentinels.iter().map(|s| s.port).collect(),
            master_name: self.opts.master_name.clone(),
            password: self.opts.password.clone(),
            sentinel_password: self.opts.sentinel_password.clone(),
        }
    }

    /// Sentinel `i` on `ports[i]`; `ports` are the ports of all of them.
    fn spawn_sentinel(&self, i: usize, ports: &[u16]) -> Result<Sentinel> {
        let o = &self.opts;
        let sdir = self.dir.path().join(format!("sentinel{i}"));
        std::fs::create_dir_all(&sdir)?;
        for attempt in 0..20 {
            let port = if attempt == 0 { ports[i] } else { free_port() };
            let mut text = format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {d}\nlogfile {d}/sentinel.log\n\
                 sentinel monitor {n} 127.0.0.1 {mp} 2\n\
                 sentinel down-after-milliseconds {n} {da}\n\
                 sentinel failover-timeout {n} {ft}\n\
                 sentinel parallel-syncs {n} 1\n",
                d = sdir.display(),
                n = o.master_name,
                mp = self.first_master,
                da = o.down_after_ms,
                ft = o.failover_timeout_ms,
            );
            // known from the start rather than learnt (replicas from the
            // master's INFO every 10 s, sentinels from hello messages), so
            // the set-up is ready in a second
            text.push_str(&format!("sentinel myid {}\n", sentinel_id(i)));
            for r in self.servers.iter().filter(|r| r.port != self.first_master) {
                text.push_str(&format!(
                    "sentinel known-replica {} 127.0.0.1 {}\n",
                    o.master_name, r.port
                ));
            }
            for (j, other) in ports.iter().enumerate().filter(|(j, _)| *j != i) {
                text.push_str(&format!(
                    "sentinel known-sentinel {} 127.0.0.1 {other} {}\n",
                    o.master_name,
                    sentinel_id(j)
                ));
            }
            if let Some(pw) = &o.password {
                text.push_str(&format!("sentinel auth-pass {} {pw}\n", o.master_name));
            }
            if let Some(pw) = &o.sentinel_password {
                text.push_str(&format!("requirepass {pw}\nsentinel sentinel-pass {pw}\n"));
            }
            let conf = sdir.join("sentinel.conf");
            std::fs::write(&conf, text)?;
            let mut cmd = Command::new("redis-sentinel");
            cmd.arg(&conf).stdout(Stdio::null()).stderr(Stdio::null());
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            let child = cmd
                .spawn()
                .context("spawn redis-sentinel (apt-get install redis-sentinel)")?;
            let pid = child.id();
            let mut s = Sentinel {
                port,
                conf: conf.clone(),
                child: Some(child),
            };
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                let exited = s
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited {
                    s.child = None;
                    break;
                }
                // ours, not another test's process that took the port
                if self
                    .sentinel_info(port)
                    .is_some_and(|t| t.contains(&format!("process_id:{pid}\r\n")))
                {
                    return Ok(s);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        bail!("could not start redis-sentinel {i} on any free port")
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,…` for `redis_sentinels`.
    pub fn sentinel_list(&self) -> String {
        let v: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        v.join(",")
    }

    /// The config keys of this set-up under `prefix` (`redis` or
    /// `message_redis`): `<p>_sentinels`, `<p>_master_name`, and the passwords.
    pub fn settings(&self, prefix: &str) -> Vec<(String, String)> {
        let mut v = vec![
            (format!("{prefix}_sentinels"), self.sentinel_list()),
            (
                format!("{prefix}_master_name"),
                self.opts.master_name.clone(),
            ),
        ];
        if let Some(pw) = &self.opts.sentinel_password {
            v.push((format!("{prefix}_sentinel_password"), pw.clone()));
        }
        if let Some(pw) = &self.opts.password {
            v.push((format!("{prefix}_password"), pw.clone()));
        }
        if self.opts.min_replicas > 0 {
            v.push((
                format!("{prefix}_min_replicas"),
                self.opts.min_replicas.to_string(),
            ));
        }
        v
    }

    fn info(&self, port: u16, section: &str) -> Option<String> {
        let mut c = sync_conn(&url(port, self.opts.password.as_ref()))?;
        redis::cmd("INFO").arg(section).query(&mut c).ok()
    }

    fn sentinel_info(&self, port: u16) -> Option<String> {
        let mut c = sync_conn(&url(port, self.opts.sentinel_password.as_ref()))?;
        redis::cmd("INFO").arg("server").query(&mut c).ok()
    }

    fn sentinel_count(&self, port: u16, what: &str) -> Option<usize> {
        let mut c = sync_conn(&url(port, self.opts.sentinel_password.as_ref()))?;
        let v: Vec<redis::Value> = redis::cmd("SENTINEL")
            .arg(what)
            .arg(&self.opts.master_name)
            .query(&mut c)
            .ok()?;
        Some(v.len())
    }

    /// The master's port as the first answering sentinel names it.
    pub fn master_port(&self) -> Option<u16> {
        self.locator().master_port()
    }

    /// True when the server on `port` answers `ROLE` with `master`.
    pub fn is_master(&self, port: u16) -> bool {
        self.info(port, "replication")
            .is_some_and(|t| t.contains("role:master"))
    }

    /// The index in `servers` of the server on `port`.
    pub fn server_on(&self, port: u16) -> Option<usize> {
        self.servers.iter().position(|s| s.port == port)
    }

    /// A synchronous connection to the master of now (authenticated).
    pub fn master_conn(&self) -> Option<redis::Connection> {
        let port = self.master_port()?;
        sync_conn(&url(port, self.opts.password.as_ref()))
    }

    /// A connection to any one server (for reads on a replica).
    pub fn conn_to(&self, port: u16) -> Option<redis::Connection> {
        sync_conn(&url(port, self.opts.password.as_ref()))
    }

    /// Leaves every process running and the directory in place.
    pub fn detach(mut self) {
        for s in &mut self.sentinels {
            s.child = None;
        }
        for r in std::mem::take(&mut self.servers) {
            r.detach();
        }
        let _ = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir")).keep();
    }

    /// kill -9 the current master; returns its index in `servers`.
    pub fn kill9_master(&mut self) -> Result<usize> {
        let port = self.master_port().context("no sentinel names a master")?;
        let i = self
            .server_on(port)
            .context("the master is not one of ours")?;
        self.servers[i].kill9();
        Ok(i)
    }

    /// Waits until the sentinels name a master other than `old_port`, and
    /// that server says it is a master; returns its port.
    pub fn wait_failover(&self, old_port: u16, deadline: Duration) -> Result<u16> {
        let mut new = 0;
        wait_for(
            "the sentinels to promote a replica",
            deadline,
            || match self.master_port() {
                Some(p) if p != old_port && self.is_master(p) => {
                    new = p;
                    true
                }
                _ => false,
            },
        )?;
        Ok(new)
    }
}

/// A fixed, distinct run id per sentinel (40 hex digits, as Redis wants).
fn sentinel_id(i: usize) -> String {
    format!("{:040x}", 0x5e471e1u64 * 1000 + i as u64)
}

fn auth_args(o: &SentinelOpts) -> Vec<String> {
    match &o.password {
        Some(pw) => vec![
            "--requirepass".into(),
            pw.clone(),
            "--masterauth".into(),
            pw.clone(),
        ],
        None => Vec::new(),
    }
}

fn url(port: u16, pw: Option<&String>) -> String {
    match pw {
        Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    }
}

fn sync_conn(url: &str) -> Option<redis::Connection> {
    redis::Client::open(url)
        .ok()?
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
