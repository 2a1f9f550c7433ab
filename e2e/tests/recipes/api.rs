//! The catalog API from a database host's side (`catalog_url`): the host's
//! token lists only its own backups (another `--server-id` is refused), a
//! wrong token is refused, pin needs a token with `pin`, and a backup
//! pinned over the API survives `ubackup-server prune` while an unpinned
//! one of the same age goes.

use std::time::Duration;

use serde_json::json;
use ubackup_common::message::now_ms;
use ubackup_testkit::cluster::wait_for;

use super::rig::{Rig, HOST_ID};

/// Three old fulls of redis/6380 (3, 2.5 and 2 days ago: past the node's
/// `keeptime.redis = 1`), as the client would have queued them.
fn queue_old_backups(rig: &Rig) -> Vec<String> {
    let dir = rig.host.join("backup/redisbase_6380");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(&rig.sqlite_conf).unwrap();
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("rsync_port = "))
        .unwrap()
        .trim()
        .to_string();
    let mut names = Vec::new();
    let mut c = rig.cluster.conn();
    for (k, age_h) in [72, 60, 48].into_iter().enumerate() {
        let name = format!("redis_6380_old{k}.rdb.gz");
        let body = format!("old backup {k}\n").repeat(50);
        std::fs::write(dir.join(&name), &body).unwrap();
        let msg = json!({
            "filename": name, "last_all_filename": null, "size": body.len(), "log": "ok",
            "create_time": (now_ms() / 1000) - age_h * 3600, "success": true,
            "server_id": HOST_ID, "game_id": 31, "op_id": 1, "game_server_ip": "127.0.0.1",
            "back_type": "redis", "instance": 6380, "rsync_model": "backup/redisbase_6380",
            "last_all_time": 0, "interval": 3600, "rsync_port": port.parse::<u16>().unwrap(),
        });
        redis::cmd("LPUSH")
            .arg(&rig.cluster.names.lo)
            .arg(msg.to_string())
            .query::<()>(&mut c)
            .unwrap();
        names.push(name);
    }
    names
}

pub fn pin_holds_against_prune(rig: &Rig) {
    let names = queue_old_backups(rig);
    let rows: Vec<_> = names.iter().map(|n| rig.wait_indexed(n)).collect();
    let id = |k: usize| rows[k]["id"].as_str().unwrap().to_string();

    // the host's token: its own backups only, and no pin
    let (code, out, err) = rig.client(&rig.api_conf, &["list", "--server-id", "123456"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        err.contains("403") && err.contains("server 123456"),
        "{err}"
    );
    let (code, _, err) = rig.client(&rig.api_conf, &["pin", &id(0)]);
    assert_ne!(code, Some(0));
    assert!(err.contains("does not allow pin"), "{err}");
    // a wrong token
    let bad = rig.host.join("bad.token");
    std::fs::write(&bad, "not-the-token-0123456789\n").unwrap();
    let bad_conf = rig.host.join("client-bad.conf");
    std::fs::write(
        &bad_conf,
        std::fs::read_to_string(&rig.api_conf).unwrap().replace(
            &rig.host.join("catalog.token").display().to_string(),
            &bad.display().to_string(),
        ),
    )
    .unwrap();
    let (code, _, err) = rig.client(&bad_conf, &["list"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("401") && !err.contains("not-the-token"),
        "{err}"
    );

    // the operator pins the oldest over the API
    let (code, out, err) = rig.client(&rig.operator_conf, &["pin", &id(0)]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with(&format!("pinned {}", id(0))), "{out}");

    let stored = |k: usize| {
        rig.node_store
            .join("redis/127.0.0/1")
            .join(&names[k])
            .exists()
    };
    assert!((0..3).all(stored), "the node holds all three");
    let (code, out, err) = ubackup_e2e::run_bin(
        &rig.cluster.bin("ubackup-server"),
        &["-c", rig.node_conf.to_str().unwrap(), "prune"],
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(0), "prune: {out}{err}");
    // pinned: kept; the middle one: gone; the newest: kept (newest chain)
    assert!(stored(0), "the pinned backup was pruned: {out}{err}");
    assert!(
        !stored(1),
        "the unpinned old backup is still there: {out}{err}"
    );
    assert!(stored(2));
    let mut listed = Vec::new();
    wait_for("the listing after prune", Duration::from_secs(10), || {
        listed = rig.list(&rig.api_conf, &["--type", "redis", "--instance", "6380"]);
        listed.len() == 2
    })
    .unwrap();
    assert_eq!(listed[1]["id"], id(0).as_str());
    assert_eq!(listed[1]["pinned"], true);
}
