//! Pulling a chain back from the nodes, and the all-or-nothing landing.
//!
//! Every file comes from the node that stored it (`back_server_ip`), out of
//! the read-only module the node exports over server_root_path
//! (`node_rsync_module`, deploy/rsyncd/node-rsyncd.conf), one rsync per
//! node for all of its files. rsync is the node's own runner
//! (`ubackup_transport::rsync`: argument vector, own process group,
//! drained stderr, watchdog) and its exit codes are classified by
//! `ubackup_transport::retry`, so the two sides behave alike.
//!
//! Files land in a scratch directory next to `--dest` (same filesystem);
//! after every file is checked (a regular file, its size, its blake3
//! checksum when the catalog has one) the scratch directory is renamed to
//! `--dest` in one step. Any failure removes the scratch directory and
//! leaves `--dest` as it was.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ubackup_catalog::chain::basename;
use ubackup_catalog::CatalogRecord;
use ubackup_common::fsutil::blake3_file;
use ubackup_common::shutdown::Shutdown;
use ubackup_common::validate::check_relative;
use ubackup_transport::follow::{Follow, Followed, Mode};
use ubackup_transport::retry::{backoff, AttemptError, Retry};
use ubackup_transport::rsync::{self, RsyncOptions};
use ubackup_transport::source::{dest_dir, source_url, RsyncSource};
use ubackup_transport::TempArea;

use super::at::bytes;
use super::ToolError;
use crate::config::ClientConfig;

/// How to reach the nodes' export.
#[derive(Debug, Clone)]
pub struct NodeAccess {
    pub module: String,
    pub port: u16,
    pub contimeout: Duration,
    pub timeout: Duration,
    /// Attempts per node for transient failures (connection refused,
    /// timeouts); a missing file or an auth failure is not retried.
    pub attempts: u32,
    /// The module's `auth users` entry: user and password file.
    pub auth: Option<(String, PathBuf)>,
    /// `node_rsync_tls*`: which nodes are reached through TLS, and how.
    pub tls: Option<ubackup_transport::tls_config::TlsPolicy>,
    /// The age identity file that decrypts files stored encrypted
    /// (`--identity`, else `age_identity`).
    pub identity: Option<PathBuf>,
}

impl NodeAccess {
    pub fn from_config(cfg: &ClientConfig) -> Self {
        NodeAccess {
            module: cfg.global.node_rsync_module.clone(),
            port: cfg.global.node_rsync_port,
            contimeout: cfg.global.node_rsync_contimeout,
            timeout: cfg.global.node_rsync_timeout,
            attempts: 3,
            auth: cfg.global.node_rsync_auth.clone(),
            tls: cfg.global.node_rsync_tls.clone(),
            identity: cfg.global.age_identity.clone(),
        }
    }
}

/// One file of the chain, located.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub record: CatalogRecord,
    /// The copy this file is pulled from now: its node, address and URL.
    pub node: String,
    pub ip: IpAddr,
    /// `rsync://node:port/module/TYPE/A.B.C/D/name`.
    pub url: String,
    /// The other good copies, tried in this order when a pull from the
    /// current one (or its verification) fails.
    pub others: Vec<Located>,
    /// The name in `--dest`.
    pub local: String,
    /// What arrives from the node: the stored file's size and checksum
    /// (the ciphertext's when it was stored encrypted).
    pub size: u64,
    pub checksum: Option<String>,
    /// Stored encrypted: the plaintext's size and checksum, checked after
    /// decrypting.
    pub plain: Option<(u64, Option<String>)>,
}

/// A copy of a file in one node's module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub node: String,
    pub ip: IpAddr,
    pub url: String,
}

impl Wanted {
    /// Moves on to the next copy; `None` when there is none left.
    fn fail_over(&mut self) -> Option<()> {
        if self.others.is_empty() {
            return None;
        }
        let next = self.others.remove(0);
        self.node = next.node;
        self.ip = next.ip;
        self.url = next.url;
        Some(())
    }
}

/// Locates every record of `chain` in its node's module: the copy the
/// result names first, then the other good copies (`copies` > 1).
pub fn wanted(chain: &[CatalogRecord], access: &NodeAccess) -> Result<Vec<Wanted>, ToolError> {
    let mut out: Vec<Wanted> = Vec::with_capacity(chain.len());
    for r in chain {
        let res = &r.result;
        let label = res.label();
        let name = basename(res.filename.as_deref().unwrap_or(""));
        check_relative("file name", name)
            .map_err(|e| ToolError::NotFound(format!("{label}: {e}")))?;
        let ip: IpAddr = res.back_server_ip.trim().parse().map_err(|_| {
            ToolError::NotFound(format!(
                "{label}: the node address `{}` (back_server_ip) is not an IP address",
                res.back_server_ip
            ))
        })?;
        let host: IpAddr = res.game_server_ip.trim().parse().map_err(|_| {
            ToolError::NotFound(format!(
                "{label}: game_server_ip `{}` is not an IP address",
                res.game_server_ip
            ))
        })?;
        // TYPE/A.B.C/D: where the node put it under server_root_path,
        // which is what the module exports
        let rel = dest_dir(Path::new(""), &res.back_type, host);
        let file_path = PathBuf::from(res.file_path.as_deref().unwrap_or(""));
        if !file_path.ends_with(&rel) {
            return Err(ToolError::NotFound(format!(
                "{label}: the node stored it in {}, which does not end in the node layout {}; cannot name it inside module {}",
                file_path.display(),
                rel.display(),
                access.module
            )));
        }
        if out.iter().any(|w| w.local == name) {
            return Err(ToolError::NotFound(format!(
                "{label}: two files of the chain are both named {name}"
            )));
        }
        let remote = format!("{}/{name}", rel.display());
        let url_at = |ip: IpAddr| {
            let src = RsyncSource {
                ip,
                port: access.port,
                module: access.module.clone(),
            };
            source_url(&src, access.auth.as_ref().map(|(u, _)| u.as_str()), &remote)
        };
        // the copies that are good, the first copy first when it is
        let mut copies: Vec<Located> = r
            .good_copies()
            .into_iter()
            .filter_map(|c| {
                let ip: IpAddr = c.ip.trim().parse().ok()?;
                Some(Located {
                    node: c.node,
                    ip,
                    url: url_at(ip),
                })
            })
            .collect();
        if copies.is_empty() {
            copies.push(Located {
                node: r.node().to_string(),
                ip,
                url: url_at(ip),
            });
        }
        let first = copies.remove(0);
        out.push(Wanted {
            record: r.clone(),
            node: first.node,
            ip: first.ip,
            url: first.url,
            others: copies,
            local: name.to_string(),
            size: res.stored().0.max(0) as u64,
            checksum: res.stored().1.map(str::to_string),
            plain: res
                .encryption
                .is_some()
                .then(|| (res.size.max(0) as u64, res.checksum.clone())),
        });
    }
    Ok(out)
}

/// `--dest` must be new, or an empty directory: a restore never mixes
/// files into (or overwrites) existing data.
pub fn check_dest(dest: &Path) -> Result<(), ToolError> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ToolError::Config(format!("--dest {}: {e}", dest.display()))),
        Ok(m) if !m.is_dir() => Err(ToolError::Config(format!(
            "--dest {} exists and is not a directory; give a new directory",
            dest.display()
        ))),
        Ok(_) => match std::fs::read_dir(dest).map(|mut d| d.next().is_none()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ToolError::Config(format!(
                "--dest {} exists and is not empty; give a new or empty directory (restore never mixes files into existing data)",
                dest.display()
            ))),
            Err(e) => Err(ToolError::Config(format!("--dest {}: {e}", dest.display()))),
        },
    }
}

/// The scratch directory; removed on drop unless it was renamed away.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl NodeAccess {
    /// The rsync options of every pull from a node: its timeouts, the
    /// password file, TCP_NODELAY, TLS for the nodes `node_rsync_tls`
    /// names.
    fn rsync_options(&self, node: IpAddr) -> RsyncOptions {
        RsyncOptions {
            contimeout: self.contimeout,
            timeout: self.timeout,
            nodelay: true,
            password_file: self.auth.as_ref().map(|(_, pw)| pw.clone()),
            tls: self.tls.as_ref().and_then(|p| p.for_source(node)).cloned(),
        }
    }
}

/// The argument vector of one pull. As the node's: `-s`, no `-a`/`-r`
/// and `--no-links` (only regular files land), both timeouts,
/// `--partial-dir` so a retry resumes, TCP_NODELAY; no bandwidth limit.
pub fn restore_args(
    access: &NodeAccess,
    node: IpAddr,
    urls: &[String],
    into: &Path,
) -> Vec<OsString> {
    rsync::pull_args(&access.rsync_options(node), 0, None, urls, into)
}

/// Pulls `wanted` and renames the verified set to `dest`. Returns bytes.
pub async fn fetch(
    wanted: &[Wanted],
    dest: &Path,
    access: &NodeAccess,
    shutdown: Shutdown,
) -> Result<u64, ToolError> {
    let local = |e: std::io::Error, what: &str| {
        ToolError::Transfer(format!("{what}: {e}; --dest untouched"))
    };
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| ToolError::Config(format!("cannot create {}: {e}", parent.display())))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "restore".into());
    clean_stale(parent, &name);
    let scratch = Scratch(parent.join(format!("{}{}", scratch_prefix(&name), std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    let files = scratch.0.join("files");
    std::fs::create_dir_all(&files)
        .map_err(|e| local(e, &format!("cannot create {}", files.display())))?;
    let (tmp, _) = TempArea::prepare(&scratch.0.join("rsync"))
        .map_err(|e| local(e, "cannot prepare the scratch area"))?;

    let total: u64 = wanted.iter().map(|w| w.size).sum();
    let progress = Progress::start(&files, total);
    let mut wanted: Vec<Wanted> = wanted.to_vec();
    // files still to pull; a file whose pull or check fails moves on to
    // its next copy and comes round again
    let mut pending: Vec<usize> = (0..wanted.len()).collect();
    let mut problems: Vec<String> = Vec::new();
    while !pending.is_empty() {
        // one rsync per node, nodes in chain order
        let mut groups: Vec<(IpAddr, Vec<usize>)> = Vec::new();
        for &i in &pending {
            match groups.iter_mut().find(|(ip, _)| *ip == wanted[i].ip) {
                Some((_, g)) => g.push(i),
                None => groups.push((wanted[i].ip, vec![i])),
            }
        }
        let mut again = Vec::new();
        for (_, idx) in &groups {
            let group: Vec<&Wanted> = idx.iter().map(|&i| &wanted[i]).collect();
            // with another copy for every file, a node that does not
            // answer is not waited for through the retries
            let failover = group.iter().all(|w| !w.others.is_empty());
            let pulled = pull_group(&group, &files, access, &tmp, failover, shutdown.clone()).await;
            let failed: Vec<(usize, String)> = match pulled {
                Err(ToolError::Transfer(why)) => idx.iter().map(|&i| (i, why.clone())).collect(),
                Err(e) => {
                    progress.finish();
                    return Err(e);
                }
                Ok(followed) => {
                    progress.verifying();
                    let checked =
                        check_group(&group, &files, &followed, access.identity.as_deref()).await;
                    idx.iter()
                        .zip(checked)
                        .filter_map(|(&i, c)| c.err().map(|e| (i, e)))
                        .collect()
                }
            };
            for (i, why) in failed {
                let w = &mut wanted[i];
                let _ = std::fs::remove_file(files.join(&w.local));
                let from = w.node.clone();
                if w.fail_over().is_some() {
                    let line = format!(
                        "{}: the copy on node {from} failed ({why}); using the copy on node {}: {}",
                        w.local, w.node, w.url
                    );
                    tracing::warn!("{line}");
                    eprintln!("{line}");
                    again.push(i);
                } else {
                    problems.push(why);
                }
            }
        }
        if !problems.is_empty() {
            progress.finish();
            return Err(ToolError::Transfer(format!(
                "{}{}",
                problems.join("; "),
                if problems.iter().any(|p| p.ends_with("--dest untouched")) {
                    ""
                } else {
                    "; --dest untouched"
                }
            )));
        }
        pending = again;
    }
    progress.finish();
    for w in &wanted {
        if w.node != w.record.node() {
            println!("  {} restored from the copy on node {}", w.local, w.node);
        }
    }

    // nothing but the wanted files goes to --dest (the partial dir, or
    // what a daemon-side wildcard might have added)
    if let Ok(rd) = std::fs::read_dir(&files) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !wanted.iter().any(|w| w.local == n) {
                tracing::warn!("removing {n} from the restore: not part of the chain");
                let _ =
                    std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
    }
    if shutdown.is_triggered() {
        return Err(ToolError::Interrupted(
            "stopped before landing; --dest untouched".into(),
        ));
    }
    std::fs::rename(&files, dest).map_err(|e| {
        local(
            e,
            &format!("cannot rename {} to {}", files.display(), dest.display()),
        )
    })?;
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(total)
}

/// `.<dest name>.ubackup-restore.`: the scratch directory's name, before the pid.
fn scratch_prefix(dest_name: &str) -> String {
    format!(".{dest_name}.ubackup-restore.")
}

/// Scratch directories of restores into the same `--dest` that were killed
/// (kill -9, power loss): their rsync process groups are killed first (an
/// orphaned receiver may still be writing, shared/CRATES.md), then they go.
fn clean_stale(parent: &Path, dest_name: &str) {
    let prefix = scratch_prefix(dest_name);
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = n.strip_prefix(&prefix).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if pid as u32 == std::process::id() || alive {
            continue;
        }
        let _ = TempArea::prepare(&e.path().join("rsync"));
        match std::fs::remove_dir_all(e.path()) {
            Ok(()) => tracing::warn!(
                "removed {}, left by a restore that did not finish",
                e.path().display()
            ),
            Err(err) => tracing::warn!(
                "cannot remove {}, left by a restore that did not finish: {err}",
                e.path().display()
            ),
        }
    }
}

async fn pull_group(
    group: &[&Wanted],
    into: &Path,
    access: &NodeAccess,
    tmp: &TempArea,
    failover: bool,
    mut shutdown: Shutdown,
) -> Result<Vec<Followed>, ToolError> {
    let urls: Vec<String> = group.iter().map(|w| w.url.clone()).collect();
    let size: u64 = group.iter().map(|w| w.size).sum();
    let node = group[0].node.clone();
    let attempts = if failover { 1 } else { access.attempts };
    // as the node's: both rsync timeouts, plus the transfer at 1 MiB/s, plus slack
    let watchdog = rsync::watchdog(&access.rsync_options(group[0].ip), size, 0);
    for attempt in 1..=attempts {
        let args = restore_args(access, group[0].ip, &urls, into);
        tracing::debug!(?args, "rsync");
        let mut abort = shutdown.clone();
        // hashed while rsync writes, as the node does: the check after the
        // pull then reads nothing again
        let follower = Follow::start(into, size, Mode::Restore);
        let (run, aborted) = rsync::run(tmp, args, watchdog, &mut abort).await;
        let followed = follower.finish().await;
        if aborted {
            return Err(ToolError::Interrupted(format!(
                "pull from node {node} stopped; --dest untouched"
            )));
        }
        let Err(e) = run.result else {
            tracing::debug!(node = %node, files = group.len(), followed = followed.len(), "pulled {} in {:.1} s", bytes(size as i64), run.elapsed.as_secs_f64());
            return Ok(followed);
        };
        let what = format!(
            "pulling {} from node {node} ({}:{}, module {}) failed on attempt {attempt}/{}: {e}{}",
            urls.join(" "),
            group[0].ip,
            access.port,
            access.module,
            attempts,
            if run.stderr_tail.is_empty() {
                String::new()
            } else {
                format!("; rsync said: {}", run.stderr_tail)
            }
        );
        let again = matches!(e.retry(), Retry::Transient | Retry::AfterSpace) && attempt < attempts;
        if !again {
            let hint = match e {
                AttemptError::Exit(23 | 24) => "; the file is not on the node (pruned, or lost: run `ubackup-server verify` there)",
                AttemptError::Exit(5) => "; the node's module refused us (hosts allow / auth in its rsyncd.conf)",
                AttemptError::Exit(10 | 35) => "; is the node's rsync daemon running and node_rsync_port right?",
                AttemptError::TlsAuth(_) => "; check node_rsync_tls_ca (the CA of the nodes' certificates) and node_rsync_tls_cert/_key",
                AttemptError::TlsConnect(_) => "; is the node's TLS terminator (stunnel) running and node_rsync_tls_port right?",
                _ => "",
            };
            return Err(ToolError::Transfer(format!(
                "{what}{hint}; --dest untouched"
            )));
        }
        let wait = backoff(Duration::from_secs(1), attempt + 1);
        tracing::warn!("{what}; retrying in {wait:?}");
        if shutdown.sleep(wait).await {
            return Err(ToolError::Interrupted(
                "stopped while waiting to retry; --dest untouched".into(),
            ));
        }
    }
    unreachable!("the last attempt returns")
}

/// Checks each file of a group in `dir`, one answer per file; a file
/// `followed` while it arrived is not hashed again.
async fn check_group(
    group: &[&Wanted],
    dir: &Path,
    followed: &[Followed],
    identity: Option<&Path>,
) -> Vec<Result<(), String>> {
    let checks: Vec<_> = group
        .iter()
        .map(|w| {
            let w = (*w).clone();
            let p = dir.join(&w.local);
            let id = identity.map(Path::to_path_buf);
            let followed = followed.to_vec();
            tokio::task::spawn_blocking(move || {
                check_one(&w, &p, &followed)?;
                decrypt_one(&w, &p, id.as_deref())
            })
        })
        .collect();
    let mut out = Vec::new();
    for c in checks {
        out.push(match c.await {
            Ok(r) => r.map_err(|p| format!("verification failed: {p}")),
            Err(e) => Err(format!("verification failed: check failed: {e}")),
        });
    }
    out
}

fn check_one(w: &Wanted, p: &Path, followed: &[Followed]) -> Result<(), String> {
    let m = std::fs::symlink_metadata(p).map_err(|_| {
        format!("{} did not arrive from {} (the node has no regular file there: a symlink or directory is never restored)", w.local, w.url)
    })?;
    if !m.file_type().is_file() {
        return Err(format!("{} is not a regular file", w.local));
    }
    if m.len() != w.size {
        return Err(format!(
            "{}: {} bytes arrived, the catalog says {}",
            w.local,
            m.len(),
            w.size
        ));
    }
    if let Some(want) = &w.checksum {
        let got = match Followed::find(followed, &m) {
            Some(f) => {
                tracing::debug!(file = %w.local, "hashed while it arrived");
                f.checksum.clone()
            }
            None => blake3_file(p).map_err(|e| format!("{}: cannot hash: {e}", w.local))?,
        };
        if &got != want {
            return Err(format!(
                "{}: checksum {got}, the catalog says {want} (the copy on the node is corrupt)",
                w.local
            ));
        }
    }
    Ok(())
}

/// A file stored encrypted: decrypted next to itself (streamed), the
/// plaintext checked against the catalog's size and checksum, then renamed
/// over the ciphertext, all inside the scratch directory: `--dest` only
/// ever receives checked plaintext.
fn decrypt_one(w: &Wanted, p: &Path, identity: Option<&Path>) -> Result<(), String> {
    let Some((size, checksum)) = &w.plain else {
        return Ok(());
    };
    let id = identity
        .ok_or_else(|| format!("{} is stored encrypted and no identity was given", w.local))?;
    let ids = ubackup_transport::at_rest::Identities::load(id)?;
    let out = p.with_file_name(format!(".{}.plain", w.local));
    let decrypted = ubackup_transport::at_rest::decrypt_file(&ids, p, &out);
    let (n, sum) = decrypted.map_err(|e| {
        let _ = std::fs::remove_file(&out);
        format!("{}: {e}", w.local)
    })?;
    let bad = if n != *size {
        Some(format!(
            "{}: {n} bytes after decrypting, the catalog says {size}",
            w.local
        ))
    } else {
        match checksum {
            Some(want) if *want != sum => Some(format!(
                "{}: checksum {sum} after decrypting, the catalog says {want}",
                w.local
            )),
            _ => None,
        }
    };
    if let Some(bad) = bad {
        let _ = std::fs::remove_file(&out);
        return Err(bad);
    }
    std::fs::rename(&out, p).map_err(|e| format!("{}: {e}", w.local))
}

/// The progress bar: bytes in the scratch dir (rsync's temp files
/// included), polled; only when stderr is a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    poller: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(dir: &Path, total: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                poller: None,
            };
        }
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("restoring");
        let (b, d) = (bar.clone(), dir.to_path_buf());
        let poller = tokio::spawn(async move {
            loop {
                let d2 = d.clone();
                if let Ok(n) = tokio::task::spawn_blocking(move || dir_bytes(&d2)).await {
                    b.set_position(n);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Progress {
            bar: Some(bar),
            poller: Some(poller),
        }
    }

    fn verifying(&self) {
        if let Some(p) = &self.poller {
            p.abort();
        }
        if let Some(b) = &self.bar {
            b.set_position(b.length().unwrap_or(0));
            b.set_message("verifying");
        }
    }

    fn finish(self) {
        if let Some(p) = &self.poller {
            p.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

fn dir_bytes(d: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(d) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_node_layout_and_names_stay_one_argument() {
        let mut r = ubackup_catalog::CatalogRecord::new(
            serde_json::from_value(serde_json::json!({
                "interval": 3600, "server_id": 1, "game_id": 1, "op_id": 1, "game_server_ip": "10.1.2.3",
                "instance": 3306, "back_server_ip": "10.9.0.1", "file_path": "/backup/uuzubackup/mysql/10.1.2/3/",
                "filename": "sub/db 1.xb", "create_time": 1, "rsync_time": 2, "size": 5, "last_all_filename": "None",
                "last_all_time": 0, "succeed": 1, "log": "ok", "type": "mysql"
            }))
            .unwrap(),
            "g",
        );
        let access = NodeAccess {
            module: "ubackup".into(),
            port: 8873,
            contimeout: Duration::from_secs(3),
            timeout: Duration::from_secs(7),
            attempts: 1,
            auth: None,
            tls: None,
            identity: None,
        };
        let w = wanted(std::slice::from_ref(&r), &access).unwrap();
        assert_eq!(
            w[0].url,
            "rsync://10.9.0.1:8873/ubackup/mysql/10.1.2/3/db 1.xb"
        );
        assert_eq!(w[0].local, "db 1.xb");
        let args = restore_args(&access, w[0].ip, &[w[0].url.clone()], Path::new("/s/files"));
        let args: Vec<String> = args.into_iter().map(|a| a.into_string().unwrap()).collect();
        assert!(args.contains(&"--no-links".into()) && args.contains(&"--timeout=7".into()));
        assert_eq!(
            &args[args.len() - 3..],
            [
                "--",
                "rsync://10.9.0.1:8873/ubackup/mysql/10.1.2/3/db 1.xb",
                "/s/files/"
            ]
        );
        // with auth users: the user in the URL, the password from its file
        let authed = NodeAccess {
            auth: Some(("restorer".into(), PathBuf::from("/etc/ubackup/node.secret"))),
            ..access.clone()
        };
        let w2 = wanted(std::slice::from_ref(&r), &authed).unwrap();
        assert_eq!(
            w2[0].url,
            "rsync://restorer@10.9.0.1:8873/ubackup/mysql/10.1.2/3/db 1.xb"
        );
        let args: Vec<String> =
            restore_args(&authed, w2[0].ip, &[w2[0].url.clone()], Path::new("/s"))
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect();
        assert!(
            args.contains(&"--password-file=/etc/ubackup/node.secret".into()),
            "{args:?}"
        );
        // a file_path that is not the node layout is refused with both paths
        r.result.file_path = Some("/somewhere/else".into());
        let e = wanted(&[r], &access).unwrap_err().to_string();
        assert!(
            e.contains("/somewhere/else") && e.contains("mysql/10.1.2/3"),
            "{e}"
        );
    }
}
