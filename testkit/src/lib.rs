//! Test helpers: real `redis-server` and `rsync --daemon` processes on
//! ephemeral 127.0.0.1 ports, each in its own temp directory, stopped by the
//! PID we started (never by name, never a fixed port), plus deadline waits.
//!
//! Every helper here is used by the integration tests of several crates; a
//! test owns what it starts, and `Drop` kills exactly that process.
//!
//! Layout: this file has the single processes (`RedisServer`,
//! `RsyncDaemon`, `Proc`, the TLS helpers) and the waits; [`cluster`]
//! builds a whole cluster from them (the server's process tests, the e2e
//! test, the fault suite and `ubackup-quickstart` all start theirs there);
//! [`es`] is the Elasticsearch stand-in; [`fixtures`] the sample data
//! (a backup result, the original message's fields) several crates' tests
//! share.

pub mod cluster;
pub mod es;
pub mod fixtures;
#[cfg(feature = "props")]
pub mod props;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Waits until `cond` is true or `deadline` passes, polling every 20 ms.
/// Panics with `what` on timeout: a test waits on a condition, not a sleep.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {deadline:?} waiting for: {what}");
}

/// [`wait_until`], and on timeout the panic also shows `context()` (a
/// log, a state dump), so a failure explains itself.
pub fn wait_until_or(
    what: &str,
    deadline: Duration,
    mut cond: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "timed out after {deadline:?} waiting for: {what}\n{}",
        context()
    );
}

/// Async flavour of [`wait_until`].
pub async fn wait_until_async<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {deadline:?} waiting for: {what}");
}

/// A port that was free a moment ago. Callers retry if it is taken by the
/// time they bind (see `start_with_retry`).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A unique key prefix / queue-name suffix for one test.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn send_signal(pid: u32, sig: i32) {
    // SAFETY-free: libc::kill with a PID we spawned ourselves.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(100))
        .is_ok()
}

/// A redis-server that also listens with TLS: the plain port (in
/// `server`) is for the test's own assertions, `tls_port` for the binaries
/// under test. Its certificate (for `127.0.0.1` and `localhost`) is signed
/// by a CA made for this server alone, `ca_pem`; point rustls at it with
/// `SSL_CERT_FILE`.
pub struct TlsRedis {
    pub server: RedisServer,
    pub tls_port: u16,
    pub ca_pem: PathBuf,
    /// Holds the CA and the certificate files; keep it while the server runs.
    pub certs: tempfile::TempDir,
}

/// A CA made for one test, and a server certificate it signed for
/// `127.0.0.1` and `localhost`, as PEM files in `dir` (`ca.pem`,
/// `server.crt`, `server.key`) and as DER for an in-process TLS server.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> Result<TestCa> {
        let dir = tempfile::tempdir()?;
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "ubackup test CA");
        let ca_cert = ca.self_signed(&ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])?
                .signed_by(&key, &ca_cert, &ca_key)?;
        let ca_pem = dir.path().join("ca.pem");
        let (cert_pem, key_pem) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        std::fs::write(&ca_pem, ca_cert.pem())?;
        std::fs::write(&cert_pem, leaf.pem())?;
        std::fs::write(&key_pem, key.serialize_pem())?;
        Ok(TestCa {
            ca_pem,
            cert_pem,
            key_pem,
            cert_der: leaf.der().to_vec(),
            key_der: key.serialize_der(),
            dir,
        })
    }
}

impl TlsRedis {
    pub fn start() -> Result<TlsRedis> {
        let ca = TestCa::new()?;
        let (ca_pem, cert_pem, key_pem) =
            (ca.ca_pem.clone(), ca.cert_pem.clone(), ca.key_pem.clone());
        let certs = ca.dir;
        let mut last = None;
        for _ in 0..5 {
            let tls_port = free_port();
            let port = tls_port.to_string();
            let args = [
                "--tls-port",
                &port,
                "--tls-cert-file",
                path_str(&cert_pem)?,
                "--tls-key-file",
                path_str(&key_pem)?,
                "--tls-ca-cert-file",
                path_str(&ca_pem)?,
                "--tls-auth-clients",
                "no",
            ];
            match RedisServer::start_with(&args) {
                Ok(server) if port_open(tls_port) => {
                    return Ok(TlsRedis {
                        server,
                        tls_port,
                        ca_pem,
                        certs,
                    })
                }
                Ok(_) => last = Some(anyhow::anyhow!("TLS port {tls_port} not open")),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("could not start a TLS redis-server")))
    }

    /// `rediss://127.0.0.1:<tls_port>/<db>`.
    pub fn url(&self, db: i64) -> String {
        format!("rediss://127.0.0.1:{}/{db}", self.tls_port)
    }
}

/// An HTTPS front for a plain HTTP server on 127.0.0.1 (the Elasticsearch
/// stand-in): terminates TLS with a [`TestCa`] certificate and forwards the
/// bytes both ways. Stops (its runtime dropped) when dropped.
pub struct TlsProxy {
    pub port: u16,
    pub ca: TestCa,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        // not a blocking drop: tests drop this inside their own runtime
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl TlsProxy {
    pub fn start(upstream_port: u16) -> Result<TlsProxy> {
        use tokio_rustls::rustls;
        let ca = TestCa::new()?;
        let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(ca.cert_der.clone())],
            rustls::pki_types::PrivateKeyDer::Pkcs8(ca.key_der.clone().into()),
        )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        // bound here (not with block_on: callers may be inside a runtime)
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        rt.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // a failed handshake (a client that does not trust the
                    // CA) just ends this connection
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Ok(TlsProxy {
            port,
            ca,
            rt: Some(rt),
        })
    }

    /// `https://127.0.0.1:<port>/` (the certificate names 127.0.0.1).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", p.display()))
}

/// A redis-server started by a test.
pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
    conf: Option<PathBuf>,
}

/// How to start a [`RedisServer`].
#[derive(Debug, Clone, Default)]
pub struct RedisOpts {
    /// A redis.conf to start from (the shipped one); without it, the test
    /// defaults (AOF `everysec`, no RDB snapshots).
    pub conf: Option<PathBuf>,
    /// The data directory, created here (it must not exist yet); default:
    /// a temp directory of its own.
    pub dir: Option<PathBuf>,
    /// More `--key value` arguments (for example `--requirepass`).
    pub args: Vec<String>,
}

impl RedisServer {
    /// Starts redis-server on a free port with AOF `everysec` in its own dir.
    pub fn start() -> Result<RedisServer> {
        Self::start_with(&[])
    }

    /// Starts with extra `--key value` arguments (for example `--requirepass`).
    pub fn start_with(extra: &[&str]) -> Result<RedisServer> {
        Self::start_opts(&RedisOpts {
            args: extra.iter().map(|s| s.to_string()).collect(),
            ..RedisOpts::default()
        })
    }

    /// Starts as `opts` says, on a free 127.0.0.1 port (another one if the
    /// first was taken meanwhile).
    pub fn start_opts(opts: &RedisOpts) -> Result<RedisServer> {
        let dir = match &opts.dir {
            Some(d) => {
                let name = d
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("redis data dir has no UTF-8 name")?;
                tempfile::Builder::new()
                    .prefix(name)
                    .rand_bytes(0)
                    .tempdir_in(d.parent().unwrap_or(Path::new(".")))
                    .with_context(|| format!("create {}", d.display()))?
            }
            None => tempfile::tempdir()?,
        };
        let mut s = RedisServer {
            port: 0,
            dir,
            child: None,
            extra: opts.args.clone(),
            conf: opts.conf.clone(),
        };
        for _ in 0..20 {
            s.port = free_port();
            if s.spawn().is_ok() {
                return Ok(s);
            }
        }
        bail!("could not start redis-server on any free port")
    }

    fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new("redis-server");
        if let Some(conf) = &self.conf {
            cmd.arg(conf);
        }
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path());
        if self.conf.is_none() {
            cmd.args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ]);
        }
        cmd.args(["--daemonize", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // its own process group: a Ctrl-C meant for the test (or the
        // quickstart) does not shut it down under the cleanup
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let mut child = cmd
            .spawn()
            .context("spawn redis-server (is it installed?)")?;
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Some(st) = child.try_wait()? {
                bail!("redis-server exited early: {st}");
            }
            if port_open(self.port) {
                // an open port is not proof: between free_port() and the
                // bind another test's server can take it (then ours exits
                // with "address in use" a moment later). Ready means our
                // own process answers INFO on that port.
                if self.answers_as(child.id()) {
                    self.child = Some(child);
                    return Ok(());
                }
                if child.try_wait()?.is_some() {
                    bail!("redis-server exited early (port {} taken?)", self.port);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("redis-server did not answer on port {}", self.port)
    }

    /// True when the server on our port is the process `pid` (its `INFO
    /// server` says so), after AUTH when `--requirepass` is among the extras.
    fn answers_as(&self, pid: u32) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_millis(200),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut cmds = String::new();
        if let Some(i) = self.extra.iter().position(|a| a == "--requirepass") {
            if let Some(pw) = self.extra.get(i + 1) {
                cmds.push_str(&format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{pw}\r\n", pw.len()));
            }
        }
        cmds.push_str("*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n");
        if s.write_all(cmds.as_bytes()).is_err() {
            return false;
        }
        let want = format!("process_id:{pid}\r\n");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if text.contains(&want) {
                return true;
            }
            if text.contains("run_id:") || text.starts_with('-') {
                return false;
            }
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("redis url")
    }

    /// A synchronous connection for assertions.
    pub fn conn(&self) -> redis::Connection {
        self.client()
            .get_connection()
            .expect("connect to test redis")
    }

    /// kill -9: the AOF keeps what was fsynced.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port and the same AOF.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.spawn()
    }

    /// SIGTERM (a clean shutdown), SIGKILL after `grace`. False if it took
    /// the SIGKILL.
    pub fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        send_signal(c.id(), libc::SIGTERM);
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Leaves the server running and its directory in place.
    pub fn detach(mut self) {
        self.child = None;
        self.dir.disable_cleanup(true);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One module of a test rsync daemon.
pub struct RsyncModule {
    pub name: String,
    pub path: PathBuf,
    pub chroot: bool,
}

/// An `rsync --daemon` started by a test, with `socket options =
/// TCP_NODELAY` as deploy/rsyncd ships it.
pub struct RsyncDaemon {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RsyncDaemon {
    /// Starts a read-only daemon serving `modules` on a free port.
    pub fn start(modules: &[RsyncModule]) -> Result<RsyncDaemon> {
        Self::start_with(modules, "")
    }

    /// `extra_global` is added to the global part of rsyncd.conf.
    pub fn start_with(modules: &[RsyncModule], extra_global: &str) -> Result<RsyncDaemon> {
        let dir = tempfile::tempdir()?;
        let mut conf = format!(
            "pid file = {}/rsyncd.pid\nlog file = {}/rsyncd.log\nsocket options = TCP_NODELAY\n{extra_global}\n",
            dir.path().display(),
            dir.path().display()
        );
        for m in modules {
            conf.push_str(&format!(
                "[{}]\npath = {}\nread only = yes\nuse chroot = {}\nmunge symlinks = no\nuid = root\ngid = root\n",
                m.name,
                m.path.display(),
                if m.chroot { "yes" } else { "no" }
            ));
        }
        let conf_path = dir.path().join("rsyncd.conf");
        std::fs::write(&conf_path, conf)?;
        for _ in 0..20 {
            let port = free_port();
            let mut child = Command::new("rsync")
                .arg("--daemon")
                .arg("--no-detach")
                .arg(format!("--config={}", conf_path.display()))
                .arg(format!("--port={port}"))
                .arg("--address=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawn rsync --daemon (is rsync installed?)")?;
            let end = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < end {
                if child.try_wait()?.is_some() {
                    break;
                }
                if port_open(port) {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if up {
                return Ok(RsyncDaemon {
                    port,
                    dir,
                    child: Some(child),
                });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("could not start rsync --daemon on any free port")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGSTOP: the kernel still accepts connections, nothing answers.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, libc::SIGSTOP);
        }
    }

    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, libc::SIGCONT);
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            send_signal(c.id(), libc::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyncd.log")).unwrap_or_default()
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A child process a test started (a ubackup binary), killed by PID on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    /// Spawns `cmd` in its own process group, so that a kill reaches the
    /// rsync children it started too.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Proc> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let child = cmd.spawn().with_context(|| format!("spawn {name}"))?;
        Ok(Proc {
            name: name.into(),
            child: Some(child),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// True until [`Proc::wait_exit`] saw it exit (or it was killed).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Lets the process run on after this handle is gone.
    pub fn detach(mut self) {
        self.child = None;
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            send_signal(c.id(), sig);
        }
    }

    /// kill -9 the whole process group (the binary and its rsync children).
    pub fn kill9_group(&mut self) {
        if let Some(mut c) = self.child.take() {
            send_signal(c.id(), libc::SIGCONT);
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    /// kill -9 only the process itself (its rsync children survive, as
    /// after a real crash).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for exit up to `deadline`; returns the exit code (None = signal).
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<Option<i32>> {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Some(st.code());
                }
            } else {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9_group();
    }
}

/// Path of a workspace binary (`target/<profile>/<name>`), for tests of one
/// crate that need another crate's binary. `cargo test --workspace` builds
/// every binary before running any test.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let p = profile_dir.join(name);
    assert!(
        p.exists(),
        "{} not built; run `cargo build --workspace` (or `cargo test --workspace`) first",
        p.display()
    );
    p
}

/// Writes `len` deterministic pseudo-random bytes to `path`.
pub fn write_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.truncate(len);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(path, buf).unwrap();
}
