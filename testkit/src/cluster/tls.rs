//! TLS for the rsync pulls under test: a throwaway CA that signs server and
//! client certificates (valid, expired, for another name), and a real
//! `stunnel4` in front of an rsync daemon, as the DB hosts and nodes run it.
//!
//! The stunnel either starts `rsync --daemon` itself for each connection
//! (`exec`, the DB-host set-up: no plaintext listener at all) or forwards to
//! a daemon that listens on loopback (`connect`, a node's module).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use super::daemon::{start_listening, Daemon};

/// A CA made for one test, and the certificates it signed, as PEM files.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA's certificate: what `rsync_tls_ca` / stunnel's `CAfile` name.
    pub ca: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

/// A certificate to issue.
pub struct Leaf<'a> {
    /// File stem of `NAME.crt` / `NAME.key`.
    pub name: &'a str,
    /// Subject alternative names: IP addresses or DNS names.
    pub sans: &'a [&'a str],
    /// A client certificate (extended key usage clientAuth).
    pub client: bool,
    /// Valid only in 2020: expired now.
    pub expired: bool,
}

impl Pki {
    /// A new CA called `name`, its certificate at `dir/ca.pem`.
    pub fn new(name: &str) -> Result<Pki> {
        let dir = tempfile::tempdir()?;
        let ca_key = rcgen::KeyPair::generate()?;
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let ca_cert = p.self_signed(&ca_key)?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_cert.pem())?;
        Ok(Pki {
            dir,
            ca,
            ca_cert,
            ca_key,
        })
    }

    /// Issues `leaf`; returns its (certificate, key) files.
    pub fn issue(&self, leaf: &Leaf) -> Result<(PathBuf, PathBuf)> {
        let key = rcgen::KeyPair::generate()?;
        let sans: Vec<String> = leaf.sans.iter().map(|s| s.to_string()).collect();
        let mut p = rcgen::CertificateParams::new(sans)?;
        p.distinguished_name
            .push(rcgen::DnType::CommonName, leaf.name);
        if leaf.client {
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        }
        if leaf.expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 1, 2);
        }
        let cert = p.signed_by(&key, &self.ca_cert, &self.ca_key)?;
        let crt = self.dir.path().join(format!("{}.crt", leaf.name));
        let k = self.dir.path().join(format!("{}.key", leaf.name));
        std::fs::write(&crt, cert.pem())?;
        std::fs::write(&k, key.serialize_pem())?;
        Ok((crt, k))
    }
}

/// What the stunnel serves.
pub enum Backend<'a> {
    /// Starts `rsync --daemon --config=FILE` per connection (inetd style).
    Exec(&'a Path),
    /// Forwards to a daemon at this address and port.
    Connect(IpAddr, u16),
}

/// How the stunnel checks its clients.
pub struct StunnelConf<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    /// `Some(ca)`: only clients with a certificate from `ca` get in
    /// (`requireCert`, `verifyChain`).
    pub require_client_ca: Option<&'a Path>,
    pub backend: Backend<'a>,
}

/// `stunnel4` in the foreground on `addr` (a free port), its config and log
/// in `dir`. The returned daemon is owned by PID.
pub fn start_stunnel(dir: &Path, addr: IpAddr, conf: &StunnelConf) -> Result<Daemon> {
    start_stunnel_with(dir, addr, |port| render(dir, addr, port, conf))
}

/// `stunnel4` again on `addr:port` (the port of one that was killed), so
/// that clients configured with that port reach it; waits until it listens.
pub fn restart_stunnel(dir: &Path, addr: IpAddr, port: u16, conf: &StunnelConf) -> Result<Daemon> {
    let path = dir.join(format!("stunnel-{port}.conf"));
    std::fs::write(&path, render(dir, addr, port, conf))?;
    let mut c = Command::new(which_stunnel());
    c.arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let proc = crate::Proc::spawn("stunnel", c)?;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !super::port_open(addr, port) {
        if std::time::Instant::now() > end {
            anyhow::bail!("stunnel did not listen on {addr}:{port} again within 10 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(Daemon { proc, addr, port })
}

/// `stunnel4` from the config `text(port)` (e.g. a shipped file with its
/// paths and `accept` replaced), on `addr` and a free port. The config must
/// keep it in the foreground (`foreground = yes`).
pub fn start_stunnel_with(
    dir: &Path,
    addr: IpAddr,
    text: impl Fn(u16) -> String,
) -> Result<Daemon> {
    let stunnel = which_stunnel();
    let mut ds = start_listening("stunnel", &[addr], |_, port| {
        let path = dir.join(format!("stunnel-{port}.conf"));
        std::fs::write(&path, text(port)).expect("write the stunnel config");
        let mut c = Command::new(&stunnel);
        c.arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    })
    .context("stunnel4 (is the stunnel4 package installed?)")?;
    Ok(ds.remove(0))
}

fn which_stunnel() -> PathBuf {
    for p in ["/usr/bin/stunnel4", "/usr/bin/stunnel"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("stunnel4")
}

fn render(dir: &Path, addr: IpAddr, port: u16, c: &StunnelConf) -> String {
    let mut s = format!(
        "foreground = yes\npid =\noutput = {}/stunnel-{port}.log\ndebug = 5\n[rsync]\naccept = {addr}:{port}\ncert = {}\nkey = {}\nsslVersionMin = TLSv1.2\n",
        dir.display(),
        c.cert.display(),
        c.key.display()
    );
    if let Some(ca) = c.require_client_ca {
        s.push_str(&format!(
            "CAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
            ca.display()
        ));
    }
    match c.backend {
        Backend::Exec(conf) => s.push_str(&format!(
            "exec = /usr/bin/rsync\nexecArgs = rsync --daemon --config={}\n",
            conf.display()
        )),
        Backend::Connect(a, p) => s.push_str(&format!("connect = {a}:{p}\n")),
    }
    s
}
