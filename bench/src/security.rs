//! What the security features cost, in the same run and on the same files:
//! pulls over TLS (`rsync_tls`, our connector to a stunnel in front of the
//! database host's daemon) and encryption at rest (`encrypt_to`, age),
//! against plain ubackup, raw `rsync --fsync` (durable, as ubackup is), and
//! raw rsync through the TLS client rsync's own docs suggest
//! (`RSYNC_CONNECT_PROG` running `openssl s_client`, what `rsync-ssl
//! --type=openssl` does) to the same stunnel.
//!
//! Large files show the throughput cost (cipher and the extra copy through
//! the connector); small files, each from its own module, show the
//! per-connection cost (one TLS handshake per pull).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use ubackup_testkit::cluster::tls::{start_stunnel, Backend, Leaf, Pki, StunnelConf};
use ubackup_testkit::cluster::{localhost, Daemon};
use ubackup_transport::at_rest::{encrypt_file, Recipients};

use crate::data::{push_all, LargeSet, SmallSet};
use crate::procs::{Env, Server};
use crate::raw::{self, Sock};
use crate::stats::Samples;
use crate::workloads::{remove, Opts, LONG};

/// Small files in this workload (each from its own module).
pub const SMALL_N: usize = 200;

/// The CA, the stunnels, and the keys a node needs for each variant.
struct Kit {
    _pki: Pki,
    large_tls: Daemon,
    small_tls: Daemon,
    tls_keys: Vec<(String, String)>,
    recipient: String,
    /// `openssl s_client` as rsync's connect program, for the raw rows.
    connect_prog: String,
}

fn stunnel_for(
    dir: &Path,
    pki: &Pki,
    cert: &(std::path::PathBuf, std::path::PathBuf),
    port: u16,
) -> Result<Daemon> {
    std::fs::create_dir_all(dir)?;
    start_stunnel(
        dir,
        localhost(),
        &StunnelConf {
            cert: &cert.0,
            key: &cert.1,
            require_client_ca: Some(&pki.ca),
            backend: Backend::Connect(localhost(), port),
        },
    )
}

impl Kit {
    fn new(env: &Env, large: &LargeSet, small: &SmallSet) -> Result<Kit> {
        let pki = Pki::new("ubackup bench CA")?;
        let server = pki.issue(&Leaf {
            name: "dbhost",
            sans: &["127.0.0.1"],
            client: false,
            expired: false,
        })?;
        let client = pki.issue(&Leaf {
            name: "node",
            sans: &["ubackup-node"],
            client: true,
            expired: false,
        })?;
        let large_tls = stunnel_for(
            &env.work.join("sec-tls-l"),
            &pki,
            &server,
            large.daemon.port,
        )
        .context("stunnel4 (is it installed?)")?;
        let small_tls = stunnel_for(
            &env.work.join("sec-tls-s"),
            &pki,
            &server,
            small.daemon.port,
        )?;
        let ca = pki.ca.display().to_string();
        let tls_keys = vec![
            ("rsync_tls".to_string(), "yes".to_string()),
            ("rsync_tls_ca".into(), ca.clone()),
            ("rsync_tls_cert".into(), client.0.display().to_string()),
            ("rsync_tls_key".into(), client.1.display().to_string()),
        ];
        // rsync runs this through the shell and connects its stdin/stdout
        // to it; every path here is the bench's own
        let connect_prog = format!(
            "openssl s_client -quiet -verify_return_error -CAfile {ca} -cert {} -key {} -connect 127.0.0.1:PORT 2>/dev/null",
            client.0.display(),
            client.1.display()
        );
        let recipient = age::x25519::Identity::generate().to_public().to_string();
        Ok(Kit {
            _pki: pki,
            large_tls,
            small_tls,
            tls_keys,
            recipient,
            connect_prog,
        })
    }

    /// The node's extra keys for `variant` with the TLS port `port`.
    fn keys(&self, variant: &str, port: u16) -> Vec<(String, String)> {
        match variant {
            "tls" => {
                let mut k = self.tls_keys.clone();
                k.push(("rsync_tls_port".into(), port.to_string()));
                k
            }
            "age" => vec![("encrypt_to".into(), self.recipient.clone())],
            _ => Vec::new(),
        }
    }

    fn raw_env(&self, port: u16) -> Vec<(String, String)> {
        vec![(
            "RSYNC_CONNECT_PROG".into(),
            self.connect_prog.replace("PORT", &port.to_string()),
        )]
    }
}

/// Seconds from the push of `msgs` to their last result on a fresh node.
fn pull(env: &Env, workers: usize, keys: &[(String, String)], msgs: &[String]) -> Result<f64> {
    let extra: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let srv = Server::spawn(env, workers, &extra)?;
    let mut c = env.conn();
    let t = Instant::now();
    push_all(&mut c, &srv.lo, msgs)?;
    srv.wait_results(&mut c, msgs.len(), LONG)?;
    let el = t.elapsed().as_secs_f64();
    srv.check_all_ok(&mut c, msgs.len())?;
    srv.stop()?;
    Ok(el)
}

/// The workload: `large` (every file pulled at once, one worker each) and
/// `small` ([`SMALL_N`] files, 4 workers), each as plain, TLS and age, and
/// the raw counterparts.
pub fn security(
    env: &Env,
    large: &LargeSet,
    small: &SmallSet,
    o: &Opts,
    s: &mut Samples,
) -> Result<()> {
    let kit = Kit::new(env, large, small)?;
    let total: u64 = large.files.iter().map(|f| f.1).sum();
    let n = large.files.len();
    let lmsgs: Vec<String> = (0..n).map(|i| large.message(i, 4306 + i as i64)).collect();
    let lsrcs: Vec<String> = (0..n).map(|i| large.url(i)).collect();
    let smsgs: Vec<String> = (0..SMALL_N).map(|i| small.message_own_source(i)).collect();
    let ssrcs: Vec<String> = (0..SMALL_N).map(|i| small.url_own_source(i)).collect();
    let fsync = ["--fsync".to_string()];
    // warm the page cache and the daemons once, unrecorded
    let dest = env.fresh_dir("sec-warm");
    raw::parallel(&lsrcs, &dest, Sock::Default, n)?;
    remove(&dest);
    for run in 0..o.runs {
        eprintln!("  security costs, run {}/{}", run + 1, o.runs);
        for variant in ["plain", "tls", "age"] {
            let keys = kit.keys(variant, kit.large_tls.port);
            let el = pull(env, n, &keys, &lmsgs)?;
            s.add(&format!("sec.large.{variant}"), total as f64 / el / 1e6);
            let keys = kit.keys(variant, kit.small_tls.port);
            s.add(
                &format!("sec.small.{variant}"),
                pull(env, 4, &keys, &smsgs)?,
            );
        }
        let dest = env.fresh_dir("sec-raw");
        let el = raw::parallel_with(&lsrcs, &dest, Sock::Default, n, &fsync)?;
        s.add("sec.large.raw", total as f64 / el.as_secs_f64() / 1e6);
        remove(&dest);
        let dest = env.fresh_dir("sec-raw");
        let tls_env = kit.raw_env(kit.large_tls.port);
        let el = raw::parallel_env(&lsrcs, &dest, Sock::Default, n, &fsync, &tls_env)?;
        s.add("sec.large.raw_tls", total as f64 / el.as_secs_f64() / 1e6);
        remove(&dest);
        let dest = env.fresh_dir("sec-raw");
        let el = raw::parallel(&ssrcs, &dest, Sock::NoDelay, 4)?;
        s.add("sec.small.raw", el.as_secs_f64());
        remove(&dest);
        let dest = env.fresh_dir("sec-raw");
        let tls_env = kit.raw_env(kit.small_tls.port);
        let el = raw::parallel_env(&ssrcs, &dest, Sock::NoDelay, 4, &[], &tls_env)?;
        s.add("sec.small.raw_tls", el.as_secs_f64());
        remove(&dest);
        // age by itself: one file encrypted on one core, from the page cache
        let to = Recipients::parse(&kit.recipient).map_err(anyhow::Error::msg)?;
        let out = env.work.join("sec-age.out");
        let (name, bytes, _) = &large.files[0];
        let t = Instant::now();
        encrypt_file(&to, &large.root.join(name), &out)?;
        s.add(
            "sec.age.alone",
            *bytes as f64 / t.elapsed().as_secs_f64() / 1e6,
        );
        let _ = std::fs::remove_file(&out);
        s.add(
            "sec.age.cipher",
            age_cipher_mbps(&kit.recipient, 256 << 20)?,
        );
        for (key, alg) in [
            ("sec.openssl.chacha", "chacha20-poly1305"),
            ("sec.openssl.aesgcm", "aes-256-gcm"),
        ] {
            if let Some(v) = openssl_speed(alg) {
                s.add(key, v);
            }
        }
    }
    Ok(())
}

/// The age cipher alone: `bytes` from memory into a sink, one core (no
/// file, no hash, no fsync), MB/s.
fn age_cipher_mbps(recipient: &str, bytes: usize) -> Result<f64> {
    use std::io::Write as _;
    let r: age::x25519::Recipient = recipient.parse().map_err(anyhow::Error::msg)?;
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
        .map_err(|e| anyhow::anyhow!("age: {e}"))?;
    let chunk = vec![0x5au8; 64 * 1024];
    let t = Instant::now();
    let mut w = enc.wrap_output(std::io::sink())?;
    for _ in 0..bytes / chunk.len() {
        w.write_all(&chunk)?;
    }
    w.finish()?;
    Ok(bytes as f64 / t.elapsed().as_secs_f64() / 1e6)
}

/// `openssl speed -evp ALG` on 64 KiB blocks for one second, MB/s; None
/// when openssl is missing or its output is not understood.
fn openssl_speed(alg: &str) -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "1", "-bytes", "65536", "-evp", alg])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    // the last line: "ChaCha20-Poly1305  4248266.62k" (1000s of bytes/s)
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last()?;
    let k: f64 = last
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(k / 1000.0)
}
