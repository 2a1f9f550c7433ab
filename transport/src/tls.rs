//! rsync over TLS, without a shell.
//!
//! The daemon protocol authenticates but never encrypts, so a pull that
//! must not travel in clear goes through a TLS terminator in front of the
//! remote `rsync --daemon` (stunnel on the DB host or node, port 874 by
//! default). rsync itself cannot speak TLS; it can run a program instead
//! of opening a socket and speak the daemon protocol over that program's
//! stdin/stdout (`-e PROG` with an `rsync://` URL: "daemon over a remote
//! shell"). That program is our connector, `ubackup-tls-connect`
//! ([`crate::connect`]): rsync execs it with an argument vector (it splits
//! the `-e` string itself, no shell is involved), it dials the TLS port,
//! checks the certificate chain against the configured CA and the host
//! name or IP, presents the node's client certificate when configured, and
//! copies bytes both ways.
//!
//! The connector reports why a connection failed on stderr, behind a
//! marker rsync passes through to us ([`AUTH_MARK`], [`CONNECT_MARK`]), so
//! [`classify`] can tell a certificate problem (never retried: the same
//! certificate fails the same way) from a refused port (retried).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::retry::AttemptError;

/// The connector's binary name; it is installed beside the server and the
/// client.
pub const CONNECTOR: &str = "ubackup-tls-connect";

/// The port stunnel listens on in front of rsync (rsync's docs suggest 874).
pub const DEFAULT_TLS_PORT: u16 = 874;

/// Prefix of the connector's stderr line when the peer's certificate, or
/// ours, was refused.
pub const AUTH_MARK: &str = "ubackup-tls-connect: tls-auth:";
/// Prefix of the connector's stderr line when the TLS port could not be
/// reached or the handshake timed out.
pub const CONNECT_MARK: &str = "ubackup-tls-connect: tls-connect:";

/// How to reach one daemon over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The TLS terminator's port on the daemon's host.
    pub port: u16,
    /// PEM file of the CA the peer's certificate must chain to.
    pub ca: PathBuf,
    /// Our client certificate and key (PEM), for peers that require one.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The connector binary.
    pub connector: PathBuf,
}

impl TlsOptions {
    /// The value of rsync's `-e`: the connector and its options. rsync
    /// splits it on spaces (honouring quotes), so a path with a space or a
    /// quote is refused by [`check_path`] when the config is read.
    pub fn rsh(&self, connect_timeout: Duration) -> OsString {
        let mut s = OsString::from(&self.connector);
        s.push(format!(
            " --port {} --timeout {} --ca ",
            self.port,
            connect_timeout.as_secs().max(1)
        ));
        s.push(&self.ca);
        if let Some((cert, key)) = &self.client {
            s.push(" --cert ");
            s.push(cert);
            s.push(" --key ");
            s.push(key);
        }
        s
    }
}

/// The connector that sits beside the running binary (the packages install
/// every ubackup binary into one directory), else the one on `PATH`.
pub fn default_connector() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(CONNECTOR)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(CONNECTOR))
}

/// Why `path` cannot go into rsync's `-e` string, if it cannot: rsync
/// splits that string on whitespace and treats quotes and backslashes
/// specially.
pub fn check_path(path: &Path) -> Result<(), String> {
    let s = path
        .to_str()
        .ok_or_else(|| "the path is not valid UTF-8".to_string())?;
    if s.is_empty() {
        return Err("the path is empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\'))
    {
        return Err(format!(
            "the path contains {c:?}; rsync splits its -e option on spaces and quotes, so use a path without them"
        ));
    }
    Ok(())
}

/// The connector's verdict, read from rsync's stderr: rsync only says the
/// connection closed (exit 12 or 5), the line before says why.
pub fn classify(stderr: &str) -> Option<AttemptError> {
    for line in stderr.lines().rev() {
        if let Some(rest) = line.split_once(AUTH_MARK).map(|(_, r)| r) {
            return Some(AttemptError::TlsAuth(rest.trim().to_string()));
        }
        if let Some(rest) = line.split_once(CONNECT_MARK).map(|(_, r)| r) {
            return Some(AttemptError::TlsConnect(rest.trim().to_string()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Retry;

    #[test]
    fn rsh_carries_the_options_without_a_shell() {
        let t = TlsOptions {
            port: 874,
            ca: "/etc/ubackup/ca.pem".into(),
            client: Some(("/etc/ubackup/n.crt".into(), "/etc/ubackup/n.key".into())),
            connector: "/usr/bin/ubackup-tls-connect".into(),
        };
        assert_eq!(
            t.rsh(Duration::from_secs(10)),
            "/usr/bin/ubackup-tls-connect --port 874 --timeout 10 --ca /etc/ubackup/ca.pem --cert /etc/ubackup/n.crt --key /etc/ubackup/n.key"
        );
    }

    #[test]
    fn paths_rsync_would_split_are_refused() {
        assert!(check_path(Path::new("/etc/ubackup/ca.pem")).is_ok());
        for bad in ["/etc/my ca.pem", "/etc/it's.pem", "/a\\b", ""] {
            assert!(check_path(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_markers_decide_the_class() {
        let auth = format!(
            "x\n{AUTH_MARK} 127.0.0.2:874: certificate expired\nrsync error: error in rsync protocol data stream (code 12)"
        );
        let e = classify(&auth).unwrap();
        assert_eq!(
            e,
            AttemptError::TlsAuth("127.0.0.2:874: certificate expired".into())
        );
        assert_eq!(e.retry(), Retry::Never);
        let conn = format!("{CONNECT_MARK} 127.0.0.2:874: connection refused\n");
        assert_eq!(classify(&conn).unwrap().retry(), Retry::Transient);
        assert_eq!(classify("rsync: connection unexpectedly closed"), None);
    }
}
