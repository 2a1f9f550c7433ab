//! The Redis Sentinel files of deploy/redis/ started for real: the master
//! (`redis-ubackup.conf`), the replica (`redis-replica.conf`) and three
//! sentinels (`sentinel.conf`), on 127.0.0.1 ports instead of the example
//! addresses. The replica must sync, the sentinels must agree on the
//! master, a ubackup config naming them must parse, and after kill -9 of
//! the master the sentinels must promote the replica.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ubackup_common::config::redis::QUEUE_REDIS;
use ubackup_common::{IniDoc, SectionReader};
use ubackup_e2e::{localhost, repo_file, repo_root, start_listening};
use ubackup_testkit::wait_until;

fn shipped_value(text: &str, directive: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(directive))
        .unwrap_or_else(|| panic!("the shipped file sets {directive}"))
        .trim()
        .to_string()
}

fn query<T: redis::FromRedisValue>(port: u16, pw: &str, args: &[&str]) -> Option<T> {
    let url = format!("redis://:{pw}@127.0.0.1:{port}/");
    let mut c = redis::Client::open(url)
        .ok()?
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut c).ok()
}

/// A redis-server from the shipped `file`, on a free 127.0.0.1 port.
fn server(file: &str, dir: &Path, extra: Vec<String>) -> ubackup_e2e::Daemon {
    let conf = repo_root().join(file);
    let dir = dir.to_path_buf();
    start_listening("redis-server", &[localhost()], move |_, port| {
        let mut c = Command::new("redis-server");
        c.arg(&conf)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&dir)
            .args(&extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    })
    .unwrap()
    .remove(0)
}

#[test]
fn sentinel_files_start_agree_on_the_master_and_fail_over() {
    let master_text = repo_file("deploy/redis/redis-ubackup.conf");
    let sentinel_text = repo_file("deploy/redis/sentinel.conf");
    let pw = shipped_value(&master_text, "requirepass ");
    let spw = shipped_value(&sentinel_text, "requirepass ");
    let tmp = tempfile::tempdir().unwrap();
    for d in ["m", "r", "s0", "s1", "s2"] {
        std::fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    let mut master = server(
        "deploy/redis/redis-ubackup.conf",
        &tmp.path().join("m"),
        vec![],
    );
    let replica = server(
        "deploy/redis/redis-replica.conf",
        &tmp.path().join("r"),
        vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port.to_string(),
        ],
    );
    wait_until(
        "the replica syncs with the master",
        Duration::from_secs(20),
        || {
            query::<String>(replica.port, &pw, &["INFO", "replication"])
                .is_some_and(|t| t.contains("master_link_status:up"))
        },
    );

    let mut sentinels = Vec::new();
    for i in 0..3 {
        let dir = tmp.path().join(format!("s{i}"));
        let text = sentinel_text.clone();
        let mport = master.port;
        let d = start_listening("redis-sentinel", &[localhost()], move |_, port| {
            // the shipped file with test addresses; a quicker down-after so
            // the test does not wait 5 s; a file of its own (rewritten)
            let conf = dir.join("sentinel.conf");
            let local = text
                .replace("port 26379", &format!("port {port}"))
                .replace("bind 0.0.0.0", "bind 127.0.0.1")
                .replace("10.0.0.10 6379", &format!("127.0.0.1 {mport}"))
                .replace(
                    "down-after-milliseconds ubackup 5000",
                    "down-after-milliseconds ubackup 1000",
                );
            std::fs::write(
                &conf,
                format!("{local}\ndir {}\nlogfile \"\"\n", dir.display()),
            )
            .unwrap();
            let mut c = Command::new("redis-sentinel");
            c.arg(&conf).stdout(Stdio::null()).stderr(Stdio::null());
            c
        })
        .expect("redis-sentinel starts from the shipped sentinel.conf")
        .remove(0);
        sentinels.push(d);
    }
    let master_of = |port: u16| -> Option<u16> {
        let a: Option<(String, u16)> = query(
            port,
            &spw,
            &["SENTINEL", "get-master-addr-by-name", "ubackup"],
        )?;
        a.map(|(_, p)| p)
    };
    for s in &sentinels {
        assert_eq!(
            master_of(s.port),
            Some(master.port),
            "sentinel {} names the master",
            s.port
        );
    }
    // a failover needs each to know the replica and the other two
    wait_until(
        "the sentinels know each other and the replica",
        Duration::from_secs(40),
        || {
            sentinels.iter().all(|s| {
                let others: Option<Vec<redis::Value>> =
                    query(s.port, &spw, &["SENTINEL", "sentinels", "ubackup"]);
                let reps: Option<Vec<redis::Value>> =
                    query(s.port, &spw, &["SENTINEL", "replicas", "ubackup"]);
                others.is_some_and(|o| o.len() == 2) && reps.is_some_and(|r| r.len() == 1)
            })
        },
    );

    // the example's client lines, with these ports, parse as a ubackup config
    let list: Vec<String> = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let conf = format!(
        "[global]\nredis_sentinels = {}\nredis_master_name = ubackup\nredis_sentinel_password = {spw}\nredis_password = {pw}\n",
        list.join(",")
    );
    let doc = IniDoc::parse(Path::new("client.conf"), &conf).unwrap();
    let target = QUEUE_REDIS
        .read(&SectionReader::required(&doc, "global").unwrap())
        .unwrap();
    assert!(target.sentinels().is_some());

    master.proc.kill9();
    wait_until(
        "the sentinels promote the replica",
        Duration::from_secs(30),
        || {
            master_of(sentinels[0].port) == Some(replica.port)
                && query::<String>(replica.port, &pw, &["INFO", "replication"])
                    .is_some_and(|t| t.contains("role:master"))
        },
    );
}
