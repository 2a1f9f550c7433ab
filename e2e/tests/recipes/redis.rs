//! Redis with `redis-cli --rdb`: three fulls under load (RPUSH), one of
//! them failing (the server unreachable: `wrong`, no file); the second
//! good one restored (SQLite catalog), a second redis-server loading the
//! placed RDB.

use std::process::{Command, Stdio};
use std::time::Instant;

use ubackup_e2e::start_listening;
use ubackup_testkit::cluster::localhost;
use ubackup_testkit::RedisServer;

use super::rig::{have, script, Rig};
use super::{assert_prefix, output, rounds, Load};

const SECTION: &str = "redis6379";

fn cli(port: u16) -> Command {
    let mut c = Command::new("redis-cli");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    c
}

pub fn run(rig: &Rig) -> bool {
    if !have(&["redis-server", "redis-cli"], "Redis") {
        return false;
    }
    let server = RedisServer::start().unwrap();
    let port = server.port;
    let load = Load::start(cli(port), |i| format!("RPUSH orders {i}\n"));
    let committed = || -> u64 {
        output(cli(port).args(["LLEN", "orders"]))
            .trim()
            .parse()
            .unwrap()
    };
    let fail = rig.root.join("redis-fail");
    rig.set_section(
        SECTION,
        "script",
        &format!(
            "if [ -e {f} ]; then export REDIS_PORT=1; fi; REDIS_PORT=${{REDIS_PORT:-{port}}} bash {b}",
            f = fail.display(),
            b = script("redis_rdb_backup.sh")
        ),
    );
    let restored = rig.root.join("redis-restored");
    rig.set_section(
        SECTION,
        "restore_script",
        &format!(
            "bash {} {}",
            script("redis_rdb_restore.sh"),
            restored.display()
        ),
    );
    let rs = rounds(rig, SECTION, 4, &committed, &|r| {
        if r == 2 {
            std::fs::write(&fail, b"").unwrap();
        } else {
            let _ = std::fs::remove_file(&fail);
        }
    });
    drop(load);
    let oks: Vec<bool> = rs.iter().map(|r| r.ok).collect();
    assert_eq!(oks, [true, false, true, true], "{rs:?}");
    assert!(rs[1].file.contains("redis-cli --rdb"), "{:?}", rs[1]);
    let names = std::fs::read_dir(rig.host.join("backup/redisbase_6379"))
        .unwrap()
        .count();
    assert_eq!(names, 3, "one file per good run, nothing half-written");
    for r in rs.iter().filter(|r| r.ok) {
        rig.wait_indexed(&r.file);
    }
    let rows = rig.list(&rig.sqlite_conf, &["--type", "redis"]);
    let target = rows
        .iter()
        .find(|r| r["filename"] == rs[2].file.as_str())
        .unwrap();

    let started = Instant::now();
    let out = rig.restore(
        &rig.sqlite_conf,
        target["id"].as_str().unwrap(),
        &rig.root.join("restore-redis"),
    );
    eprintln!("redis: restore of one RDB took {:.1?}", started.elapsed());
    assert!(out.contains("is ready"), "{out}");
    let second = start_listening("redis-server (restored)", &[localhost()], |addr, p| {
        let mut c = Command::new("redis-server");
        c.args(["--bind", &addr.to_string(), "--port", &p.to_string()])
            .arg("--dir")
            .arg(&restored)
            .args([
                "--dbfilename",
                "dump.rdb",
                "--appendonly",
                "no",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    })
    .unwrap();
    let ids: Vec<u64> = output(cli(second[0].port).args(["LRANGE", "orders", "0", "-1"]))
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_prefix("redis", &ids, &rs[2]);
    true
}
