//! `ubackup-tls-connect`: what rsync runs instead of opening a socket when
//! a pull goes over TLS (see [`crate::tls`]).
//!
//! rsync execs it as `CONNECTOR [our options] [-l USER] HOST rsync --server
//! --daemon .`; the trailing command is what a remote shell would run and
//! is ignored (the TLS terminator on HOST already runs the daemon). It
//! connects to `HOST:--port`, verifies the peer's chain against `--ca` and
//! its name against HOST (an IP address is checked against the
//! certificate's IP SANs), sends `--cert`/`--key` when given, then copies
//! stdin → TLS and TLS → stdout until both sides close.
//!
//! Every failure is one stderr line behind a marker ([`AUTH_MARK`] for
//! certificates, [`CONNECT_MARK`] for the network) that the rsync runner
//! turns into a result reason; the exit code is 5 for a certificate
//! problem and 10 for a connection problem, like rsync's own.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::tls::{AUTH_MARK, CONNECT_MARK};

/// The connector's options (parsed by its binary).
#[derive(Debug, Clone)]
pub struct ConnectArgs {
    pub host: String,
    pub port: u16,
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Connecting plus the handshake.
    pub timeout: Duration,
}

/// Why the connector stopped.
#[derive(Debug)]
pub enum ConnectError {
    /// A certificate was refused, or ours is unusable: exit 5.
    Auth(String),
    /// The port, the network or a timeout: exit 10.
    Connect(String),
    /// The transfer broke after the handshake: exit 12.
    Stream(String),
}

impl ConnectError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ConnectError::Auth(_) => 5,
            ConnectError::Connect(_) => 10,
            ConnectError::Stream(_) => 12,
        }
    }

    /// The one stderr line the rsync runner classifies.
    pub fn line(&self, args: &ConnectArgs) -> String {
        let peer = format!("{}:{}", args.host, args.port);
        match self {
            ConnectError::Auth(e) => format!("{AUTH_MARK} {peer}: {e}"),
            ConnectError::Connect(e) => format!("{CONNECT_MARK} {peer}: {e}"),
            ConnectError::Stream(e) => format!("ubackup-tls-connect: {peer}: {e}"),
        }
    }
}

/// The client configuration: our CA as the only root, the ring provider
/// (already in the tree; aws-lc-rs would need cmake), optional client auth.
pub fn client_config(args: &ConnectArgs) -> Result<rustls::ClientConfig, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    let cas = read_certs(&args.ca)?;
    for c in cas {
        roots
            .add(c)
            .map_err(|e| ConnectError::Auth(format!("CA file {}: {e}", args.ca.display())))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConnectError::Auth(format!("TLS set-up: {e}")))?
    .with_root_certificates(roots);
    match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| ConnectError::Auth(format!("client key {}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                ConnectError::Auth(format!("client certificate {}: {e}", cert.display()))
            })
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(ConnectError::Auth(
            "--cert and --key go together".to_string(),
        )),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ConnectError::Auth(format!("certificate file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConnectError::Auth(format!(
            "certificate file {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The name the peer's certificate must carry: an IP address (rsync passes
/// IPv6 without brackets, a URL may carry them) or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, ConnectError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_string())
        .map_err(|e| ConnectError::Auth(format!("{host:?} is not a host name: {e}")))
}

/// Connects and relays stdin/stdout until both directions are closed.
pub async fn run(args: &ConnectArgs) -> Result<(), ConnectError> {
    let config = Arc::new(client_config(args)?);
    let name = server_name(&args.host)?;
    let bare = args.host.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::time::timeout(args.timeout, TcpStream::connect((bare, args.port)))
        .await
        .map_err(|_| ConnectError::Connect(format!("no connection within {:?}", args.timeout)))?
        .map_err(|e| ConnectError::Connect(e.to_string()))?;
    // the daemon protocol exchanges small messages before any file data
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = tokio::time::timeout(args.timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| ConnectError::Connect(format!("no TLS handshake within {:?}", args.timeout)))?
        .map_err(io_error)?;
    relay(tls).await
}

/// Copies stdin → TLS and TLS → stdout. Done when the peer closes: rsync
/// keeps our stdin open until we exit (it waits for its "remote shell" to
/// end), so waiting for stdin's end as well would hang both of us. When
/// stdin ends first, the TLS side is shut down (close_notify) and the
/// peer's end is still awaited.
/// Bytes read from the peer and written to rsync in one go.
const RELAY_BUF: usize = 256 * 1024;

async fn relay(tls: tokio_rustls::client::TlsStream<TcpStream>) -> Result<(), ConnectError> {
    use tokio::io::AsyncWriteExt;
    blocking_stdio();
    let (from_peer, mut to_peer) = tokio::io::split(tls);
    let upstream = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let r = tokio::io::copy(&mut stdin, &mut to_peer).await;
        let _ = to_peer.shutdown().await;
        r
    });
    // the file's bytes come this way: tokio's stdout hands every write to
    // a blocking thread, so write in large pieces (tokio::io::copy's 8 KiB
    // made each TLS record of plaintext one thread hop); the BufWriter is
    // flushed whenever the peer has nothing more to read right now
    // (copy_buf), so the interactive protocol exchanges are not held back
    let mut from_peer = tokio::io::BufReader::with_capacity(RELAY_BUF, from_peer);
    let mut stdout = tokio::io::BufWriter::with_capacity(RELAY_BUF, tokio::io::stdout());
    let down = tokio::io::copy_buf(&mut from_peer, &mut stdout).await;
    let _ = stdout.flush().await;
    if let Err(e) = down {
        return Err(io_error(e));
    }
    // a write to the peer that failed (e.g. our certificate refused,
    // reported on the write side) counts too, when it already happened
    if upstream.is_finished() {
        if let Ok(Err(e)) = upstream.await {
            return Err(io_error(e));
        }
    }
    Ok(())
}

/// rsync may hand us non-blocking socket ends; tokio's stdin/stdout do
/// plain blocking reads and writes on their own threads, which would fail
/// with EAGAIN mid-transfer. Clear O_NONBLOCK on both.
fn blocking_stdio() {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    for fd in [stdin.as_fd(), stdout.as_fd()] {
        if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
            let flags = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
            let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
        }
    }
}

/// rustls reports through `io::Error`s: a refused certificate, either
/// ours (an alert from the peer, which with TLS 1.3 arrives on the first
/// read after the handshake) or theirs, is an auth failure.
fn io_error(e: std::io::Error) -> ConnectError {
    use rustls::AlertDescription as A;
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidCertificate(c) => {
                ConnectError::Auth(format!("the peer's certificate was refused: {}", cert_reason(c)))
            }
            rustls::Error::AlertReceived(
                a @ (A::CertificateRequired
                | A::BadCertificate
                | A::UnknownCA
                | A::CertificateExpired
                | A::CertificateRevoked
                | A::CertificateUnknown
                | A::AccessDenied
                | A::HandshakeFailure),
            ) => ConnectError::Auth(format!(
                "the peer refused our certificate (alert {a:?}); does it require a client certificate from another CA?"
            )),
            other => ConnectError::Stream(format!("TLS: {other}")),
        };
    }
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::TimedOut
        | std::io::ErrorKind::HostUnreachable
        | std::io::ErrorKind::NetworkUnreachable => ConnectError::Connect(e.to_string()),
        _ => ConnectError::Stream(e.to_string()),
    }
}

fn cert_reason(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer => "unknown issuer (not signed by the configured CA)".into(),
        C::Expired | C::ExpiredContext { .. } => "certificate expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "hostname mismatch (the certificate is not valid for this host name or IP)".into()
        }
        C::Revoked => "certificate revoked".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_rsync() {
        assert!(matches!(
            server_name("127.0.0.2").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("db1.example").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(server_name("bad name").is_err());
    }

    #[test]
    fn a_missing_ca_file_is_an_auth_error_naming_it() {
        let a = ConnectArgs {
            host: "127.0.0.1".into(),
            port: 874,
            ca: "/nonexistent/ca.pem".into(),
            cert: None,
            key: None,
            timeout: Duration::from_secs(1),
        };
        let e = client_config(&a).unwrap_err();
        assert_eq!(e.exit_code(), 5);
        assert!(e.line(&a).starts_with(AUTH_MARK), "{}", e.line(&a));
        assert!(e.line(&a).contains("/nonexistent/ca.pem"), "{}", e.line(&a));
    }
}
