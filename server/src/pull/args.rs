//! The node's rsync calls: its config as transport options, and the
//! argument vector and watchdog of a single pull or a batch.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use ubackup_transport::rsync::{self, RsyncOptions};
use ubackup_transport::source::source_url;
use ubackup_transport::RsyncSource;

use crate::config::ServerConfig;
use crate::intake::PullJob;

/// `rsync_contimeout`, `rsync_timeout`, `rsync_nodelay`,
/// `rsync_password_file`, and `rsync_tls*` for a pull from `src`.
pub(super) fn options(cfg: &ServerConfig, src: &RsyncSource) -> RsyncOptions {
    RsyncOptions {
        tls: cfg
            .rsync_tls
            .as_ref()
            .and_then(|p| p.for_source(src.ip))
            .cloned(),
        ..base(cfg)
    }
}

/// The options that do not depend on the source (the deadlines).
fn base(cfg: &ServerConfig) -> RsyncOptions {
    RsyncOptions {
        contimeout: cfg.rsync_contimeout,
        timeout: cfg.rsync_timeout,
        nodelay: cfg.rsync_nodelay,
        password_file: cfg.rsync_password_file.clone(),
        tls: None,
    }
}

/// One message: `MODULE/PATH` into the attempt directory `dest`, where it
/// lands under its basename; a file landed earlier at the final path is
/// rsync's basis (`--copy-dest`).
pub(super) fn single(
    cfg: &ServerConfig,
    job: &PullJob,
    dest: &Path,
    bwlimit_kbps: u64,
) -> Vec<OsString> {
    let basis = job.dest_dir.is_dir().then_some(job.dest_dir.as_path());
    let url = source_url(&job.source, cfg.rsync_user.as_deref(), &job.remote_path);
    rsync::pull_args(
        &options(cfg, &job.source),
        bwlimit_kbps,
        basis,
        &[url],
        dest,
    )
}

/// A batch: the remote paths listed in `list`, all from `src`, each at
/// `dest/<remote path>`.
pub(super) fn batch(
    cfg: &ServerConfig,
    src: &RsyncSource,
    list: &Path,
    dest: &Path,
    bwlimit_kbps: u64,
) -> Vec<OsString> {
    let url = source_url(src, cfg.rsync_user.as_deref(), "");
    rsync::files_from_args(&options(cfg, src), bwlimit_kbps, list, &url, dest)
}

/// The outer watchdog of a transfer of `size` bytes.
pub(super) fn watchdog(cfg: &ServerConfig, size: u64, bwlimit_kbps: u64) -> Duration {
    rsync::watchdog(&base(cfg), size, bwlimit_kbps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{intake, Intake};
    use ubackup_common::Taken;

    fn cfg(extra: &str) -> ServerConfig {
        ServerConfig::parse(
            Path::new("/t.conf"),
            &format!("[global]\nserver_root_path=/nonexistent-root/\nredis_host=127.0.0.1\nredis_queue=q\nmyip=10.9.9.9\nrsync_timeout=7\nrsync_contimeout=3\n{extra}"),
        )
        .unwrap()
    }

    fn job(c: &ServerConfig, filename: &str) -> PullJob {
        let payload = serde_json::json!({"filename": filename, "last_all_filename": null, "size": 10, "log": "ok",
            "create_time": 1, "success": true, "server_id": 7, "game_id": 1, "op_id": 1,
            "game_server_ip": "10.1.2.3", "back_type": "mysql", "instance": 3306, "rsync_model": "backup/db 3306",
            "last_all_time": 0, "interval": 3600, "rsync_port": 8873});
        match intake(
            &Taken {
                queue: "q".into(),
                payload: payload.to_string(),
            },
            c,
        ) {
            Intake::Pull(j) => *j,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn argument_vector_keeps_names_as_single_arguments() {
        let c = cfg("");
        let j = job(&c, "x y #1.tar.gz");
        let args: Vec<String> = single(&c, &j, Path::new("/tmp/a1"), 500)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(&args[..3], ["-s", "--no-links", "--times"]);
        assert!(args.contains(&"--contimeout=3".into()) && args.contains(&"--timeout=7".into()));
        assert!(
            args.contains(&"--bwlimit=500".into())
                && args.contains(&"--sockopts=TCP_NODELAY".into())
        );
        assert_eq!(args[args.len() - 3], "--");
        assert_eq!(
            args[args.len() - 2],
            "rsync://10.1.2.3:8873/backup/db 3306/x y #1.tar.gz"
        );
        assert_eq!(args[args.len() - 1], "/tmp/a1/");
        assert!(!args.iter().any(|a| a == "-a" || a == "-r"));
    }

    #[test]
    fn tls_goes_through_the_connector_for_the_sources_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let c = cfg(&format!(
            "rsync_tls = 10.1.0.0/16\nrsync_tls_port = 9874\nrsync_tls_ca = {}\n",
            ca.display()
        ));
        let j = job(&c, "a.tar.gz");
        let args: Vec<String> = single(&c, &j, Path::new("/tmp/a1"), 0)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let e = args
            .iter()
            .position(|a| a == "-e")
            .expect("-e for 10.1.2.3");
        assert!(
            args[e + 1].contains("ubackup-tls-connect --port 9874 --timeout 3 --ca ")
                && args[e + 1].ends_with("ca.pem"),
            "{}",
            args[e + 1]
        );
        let mut other = j.clone();
        other.source.ip = "192.0.2.9".parse().unwrap();
        let plain = single(&c, &other, Path::new("/tmp/a1"), 0);
        assert!(
            !plain.iter().any(|a| a == "-e"),
            "192.0.2.9 is not in rsync_tls"
        );
    }

    #[test]
    fn a_batch_lists_its_files_and_pulls_from_the_module_root() {
        let c = cfg("rsync_nodelay = no");
        let j = job(&c, "x y #1.tar.gz");
        let args: Vec<String> = batch(
            &c,
            &j.source,
            Path::new("/tmp/t/b1.1.files"),
            Path::new("/tmp/a1"),
            0,
        )
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect();
        assert_eq!(&args[..3], ["-s", "--no-links", "--times"]);
        assert!(args.contains(&"--from0".into()));
        assert!(args.contains(&"--files-from=/tmp/t/b1.1.files".into()));
        assert!(!args.iter().any(|a| a.starts_with("--copy-dest")
            || a.starts_with("--bwlimit")
            || a.starts_with("--sockopts")));
        assert_eq!(
            &args[args.len() - 3..],
            ["--", "rsync://10.1.2.3:8873/backup/", "/tmp/a1/"]
        );
    }

    #[test]
    fn watchdog_covers_timeouts_and_a_slow_transfer() {
        let c = cfg("");
        assert_eq!(watchdog(&c, 0, 0), Duration::from_secs(3 + 14 + 30));
        // 100 MiB at 1000 KiB/s: expected ~102 s, the watchdog allows 4x that
        assert_eq!(
            watchdog(&c, 100 << 20, 1000),
            Duration::from_secs(3 + 14 + 409 + 30)
        );
    }
}
