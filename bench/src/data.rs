//! Source files on the "database host" (an rsync daemon on loopback) and
//! the backup messages that name them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use ubackup_common::fsutil::blake3_file;
use ubackup_testkit::{write_file, RsyncDaemon, RsyncModule};

/// `n` small files, `root/m<i>/f<i>.bin`, served by one daemon both as
/// `n` modules (`m<i>`: every file from its own source, nothing to batch)
/// and as one module `all` (every file from one host and module, as the
/// instances of one database host are: `rsync_model = all/m<i>`).
pub struct SmallSet {
    pub root: PathBuf,
    pub n: usize,
    pub size: usize,
    pub checksums: Vec<String>,
    pub daemon: RsyncDaemon,
}

impl SmallSet {
    pub fn create(dir: &Path, n: usize, size: usize) -> Result<SmallSet> {
        let root = dir.join("small");
        let mut checksums = Vec::with_capacity(n);
        let mut modules = Vec::with_capacity(n + 1);
        for i in 0..n {
            let p = root.join(format!("m{i}")).join(format!("f{i}.bin"));
            write_file(&p, size, i as u64 + 1);
            checksums.push(blake3_file(&p)?);
            modules.push(RsyncModule {
                name: format!("m{i}"),
                path: root.join(format!("m{i}")),
                chroot: false,
            });
        }
        modules.push(RsyncModule {
            name: "all".into(),
            path: root.clone(),
            chroot: false,
        });
        let daemon = RsyncDaemon::start(&modules)?;
        Ok(SmallSet {
            root,
            n,
            size,
            checksums,
            daemon,
        })
    }

    /// File `i` from its own module `m<i>`.
    pub fn message_own_source(&self, i: usize) -> String {
        message(
            self.daemon.port,
            &format!("m{i}"),
            &format!("f{i}.bin"),
            self.size as u64,
            &self.checksums[i],
            i as i64,
        )
    }

    /// File `i` from the shared module `all` (sub-directory `m<i>`).
    pub fn message_one_source(&self, i: usize) -> String {
        message(
            self.daemon.port,
            &format!("all/m{i}"),
            &format!("f{i}.bin"),
            self.size as u64,
            &self.checksums[i],
            i as i64,
        )
    }

    /// `rsync://127.0.0.1:PORT/m<i>/f<i>.bin`, the per-file raw pull.
    pub fn url_own_source(&self, i: usize) -> String {
        format!("rsync://127.0.0.1:{}/m{i}/f{i}.bin", self.daemon.port)
    }

    /// The whole tree in one rsync: the floor.
    pub fn url_all(&self) -> String {
        format!("rsync://127.0.0.1:{}/all/", self.daemon.port)
    }
}

/// `files` large files `big<i>.bin` of `bytes` each in module `large`.
pub struct LargeSet {
    pub root: PathBuf,
    pub files: Vec<(String, u64, String)>,
    pub daemon: RsyncDaemon,
}

impl LargeSet {
    pub fn create(dir: &Path, names_and_sizes: &[(&str, u64)]) -> Result<LargeSet> {
        let root = dir.join("large");
        let mut files = Vec::new();
        for (i, (name, bytes)) in names_and_sizes.iter().enumerate() {
            let p = root.join(name);
            write_file(&p, *bytes as usize, 1000 + i as u64);
            files.push((name.to_string(), *bytes, blake3_file(&p)?));
        }
        let daemon = RsyncDaemon::start(&[RsyncModule {
            name: "large".into(),
            path: root.clone(),
            chroot: false,
        }])?;
        Ok(LargeSet {
            root,
            files,
            daemon,
        })
    }

    pub fn message(&self, i: usize, instance: i64) -> String {
        let (name, bytes, sum) = &self.files[i];
        message(self.daemon.port, "large", name, *bytes, sum, instance)
    }

    pub fn url(&self, i: usize) -> String {
        format!(
            "rsync://127.0.0.1:{}/large/{}",
            self.daemon.port, self.files[i].0
        )
    }
}

/// A success message as ubackup-client sends it (with `rsync_port` and
/// `checksum`, the client's defaults when configured).
pub fn message(
    port: u16,
    model: &str,
    filename: &str,
    size: u64,
    checksum: &str,
    instance: i64,
) -> String {
    json!({
        "filename": filename, "last_all_filename": null, "size": size, "log": "ok",
        "create_time": ubackup_common::message::now_secs(), "success": true,
        "server_id": 900001, "game_id": 31, "op_id": 1,
        "game_server_ip": "127.0.0.1", "back_type": "mysql", "instance": instance,
        "rsync_model": model, "last_all_time": 0, "interval": 3600,
        "rsync_port": port, "checksum": checksum,
    })
    .to_string()
}

/// LPUSHes `payloads` onto `list` in pipelined chunks (the first payload is
/// the first one popped).
pub fn push_all(c: &mut redis::Connection, list: &str, payloads: &[String]) -> Result<()> {
    for chunk in payloads.chunks(500) {
        redis::cmd("LPUSH").arg(list).arg(chunk).query::<()>(c)?;
    }
    Ok(())
}

/// The production shape at small scale: `hosts` database hosts with
/// `per_host` instances each, one small file per instance; every host is one
/// rsync module (`h<h>`), its instances' files in sub-directories, as
/// `rsync_model = h<h>/i<k>`.
pub struct BurstSet {
    pub messages: Vec<String>,
    pub daemon: RsyncDaemon,
}

impl BurstSet {
    pub fn create(dir: &Path, hosts: usize, per_host: usize, size: usize) -> Result<BurstSet> {
        let root = dir.join("burst");
        let mut modules = Vec::with_capacity(hosts);
        let mut files = Vec::with_capacity(hosts * per_host);
        for h in 0..hosts {
            for k in 0..per_host {
                let name = format!("f{h}_{k}.bin");
                let p = root.join(format!("h{h}")).join(format!("i{k}")).join(&name);
                write_file(&p, size, (h * per_host + k) as u64 + 7);
                files.push((h, k, name, blake3_file(&p)?));
            }
            modules.push(RsyncModule {
                name: format!("h{h}"),
                path: root.join(format!("h{h}")),
                chroot: false,
            });
        }
        let daemon = RsyncDaemon::start(&modules)?;
        // hosts whose crons fire in the same minute interleave their
        // pushes at random: a deterministic shuffle (so a host's next
        // message is usually far down the list, out of a batch's reach)
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in (1..files.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            files.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let messages = files
            .iter()
            .map(|(h, k, name, sum)| {
                message(
                    daemon.port,
                    &format!("h{h}/i{k}"),
                    name,
                    size as u64,
                    sum,
                    (h * per_host + k) as i64,
                )
            })
            .collect();
        Ok(BurstSet { messages, daemon })
    }
}

/// The module (`h<h>`) of a burst message.
pub fn module_of(payload: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(payload)?;
    let model = v["rsync_model"].as_str().context("rsync_model")?;
    Ok(model.split('/').next().unwrap_or(model).to_string())
}
