//! `disk`: the node's disk figures for `server_root_path` (statvfs, exact
//! for any filesystem, shared/CRATES.md) plus the machine's memory, load and
//! CPU count (sysinfo), into the node's state hash and the samples.

use std::path::Path;

use ubackup_catalog::DiskSample;
use ubackup_common::keys::state;
use ubackup_common::message::now_ms;
use ubackup_common::Keys;
use ubackup_common::RedisConn;

/// Measures the filesystem holding `root` and the machine.
pub fn measure(root: &Path, node: &str, ip: &str) -> std::io::Result<DiskSample> {
    let s = nix::sys::statvfs::statvfs(root)
        .map_err(|e| std::io::Error::other(format!("statvfs {}: {e}", root.display())))?;
    let frsize = s.fragment_size() as u64;
    let total = s.blocks() as u64 * frsize;
    // `used` as df shows it (blocks not free to anyone); `free` is what a
    // non-root writer such as the node may still use (f_bavail).
    let used = (s.blocks() as u64).saturating_sub(s.blocks_free() as u64) * frsize;
    let free = s.blocks_available() as u64 * frsize;
    let (mem_total, mem_used, cpus) = match sysinfo::System::new() {
        Ok(mut sys) => {
            sys.refresh_memory();
            sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
            let cpus = sys.cpus().len() as u32;
            (
                Some(sys.total_memory()),
                Some(sys.used_memory()),
                (cpus > 0).then_some(cpus),
            )
        }
        Err(e) => {
            tracing::warn!("cannot read the machine's memory/CPU figures: {e}");
            (None, None, None)
        }
    };
    let load1 = sysinfo::System::load_average().ok().map(|l| l.one);
    Ok(DiskSample {
        time_ms: now_ms(),
        node: node.to_string(),
        ip: ip.to_string(),
        path: root.display().to_string(),
        total,
        used,
        free,
        mem_total,
        mem_used,
        load1,
        cpus,
    })
}

/// Writes the sample into the node's state hash (the same `disk_free` /
/// `disk_total` fields the node's heartbeat refreshes, plus the
/// reporter's own), leaving the heartbeat alone.
pub async fn publish(conn: &mut RedisConn, keys: &Keys, d: &DiskSample) -> redis::RedisResult<()> {
    let mut fields: Vec<(&str, String)> = vec![
        (state::DISK_TOTAL, d.total.to_string()),
        (state::DISK_FREE, d.free.to_string()),
        (state::DISK_USED, d.used.to_string()),
        (state::DISK_SAMPLE_MS, d.time_ms.to_string()),
    ];
    if !d.ip.is_empty() {
        fields.push((state::IP, d.ip.clone()));
    }
    if let Some(v) = d.mem_total {
        fields.push((state::MEM_TOTAL, v.to_string()));
    }
    if let Some(v) = d.mem_used {
        fields.push((state::MEM_USED, v.to_string()));
    }
    if let Some(v) = d.load1 {
        fields.push((state::LOAD1, format!("{v:.2}")));
    }
    if let Some(v) = d.cpus {
        fields.push((state::CPUS, v.to_string()));
    }
    redis::cmd("HSET")
        .arg(keys.state(&d.node))
        .arg(&fields)
        .query_async::<()>(conn)
        .await
}
