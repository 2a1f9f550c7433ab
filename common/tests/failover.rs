//! Redis Sentinel failover against real processes: a master, a replica and
//! three sentinels (`ubackup_testkit::cluster::SentinelSetup`), the master
//! killed with -9, the sentinels promoting the replica.

use std::path::Path;
use std::time::Duration;

use ubackup_common::config::redis::QUEUE_REDIS;
use ubackup_common::queue::push::push_once;
use ubackup_common::queue::{Waiter, WorkQueue};
use ubackup_common::{IniDoc, Keys, RedisTarget, SectionReader};
use ubackup_testkit::cluster::{SentinelOpts, SentinelSetup};
use ubackup_testkit::{free_port, unique, wait_until_async};

/// How long the sentinels get to promote or reconfigure. A sentinel whose
/// timer jumps (its process stalled on a loaded machine) enters TILT mode
/// and acts on nothing for 30 s; the deadline outlasts one TILT.
const SENTINEL_DEADLINE: Duration = Duration::from_secs(75);

const PUSH_SHA_SCRIPT: &str = include_str!("../lua/push_once.lua");

/// The target exactly as a component reads it from its config file.
fn target_from_config(lines: &[(String, String)]) -> RedisTarget {
    let mut text = String::from("[global]\n");
    for (k, v) in lines {
        text.push_str(&format!("{k} = {v}\n"));
    }
    let doc = IniDoc::parse(Path::new("/test/ubackup.conf"), &text).unwrap();
    let g = SectionReader::required(&doc, "global").unwrap();
    QUEUE_REDIS.read(&g).unwrap()
}

async fn start(opts: SentinelOpts) -> SentinelSetup {
    tokio::task::spawn_blocking(move || SentinelSetup::start(opts))
        .await
        .unwrap()
        .expect("master + replica + 3 sentinels")
}

fn sha1_hex(text: &str) -> String {
    redis::Script::new(text).get_hash().to_string()
}

/// The regression the issue names: redis-rs's `ConnectionManager` keeps
/// dialling the old master after a failover; `RedisConn` follows the
/// sentinels, its Lua scripts load again on the new master (`NOSCRIPT`),
/// a blocking waiter connects to the new master, and when the old master
/// comes back the sentinels make it a replica and nothing is written there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_conn_follows_a_failover_where_connection_manager_stays_pinned() {
    let mut s = start(SentinelOpts {
        password: Some("data-pw".into()),
        sentinel_password: Some("sentinel-pw".into()),
        ..SentinelOpts::default()
    })
    .await;
    let keys = Keys::new(&unique("fo:"));
    let queue = format!("{}level1", keys.prefix());
    let target = target_from_config(&s.settings("redis"));
    let old_port = s.master_port().unwrap();
    let mut conn = target.manager().await.unwrap();
    assert_eq!(conn.current_addr(), format!("127.0.0.1:{old_port}"));
    let mut pinned = redis::Client::open(format!("redis://:data-pw@127.0.0.1:{old_port}/"))
        .unwrap()
        .get_connection_manager_with_config(
            // few reconnect attempts, so each failing command below is quick
            redis::aio::ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_connection_timeout(Some(Duration::from_millis(500))),
        )
        .await
        .unwrap();
    assert!(push_once(&mut conn, &keys, "m1", &queue, "p1", 600)
        .await
        .unwrap());
    // acknowledged on the replica before the kill, so the test can demand it survives
    let _: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let wq = WorkQueue::connect(&target, keys.clone(), "w1", vec![queue.clone()])
        .await
        .unwrap();

    let old = s.kill9_master().unwrap();
    let new_port = s.wait_failover(old_port, SENTINEL_DEADLINE).unwrap();
    assert_ne!(new_port, old_port);
    let mut fresh = s.conn_to(new_port).unwrap();
    let sha = sha1_hex(PUSH_SHA_SCRIPT);
    let cached: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query(&mut fresh)
        .unwrap();
    assert_eq!(
        cached,
        vec![false],
        "the new master starts without the script (so NOSCRIPT is exercised)"
    );

    // RedisConn: the first command after the kill may fail (the caller's
    // retry), then it reaches the new master
    wait_until_async(
        "RedisConn to push through the new master",
        Duration::from_secs(20),
        || {
            let mut c = conn.clone();
            let (keys, queue) = (keys.clone(), queue.clone());
            async move {
                push_once(&mut c, &keys, "m2", &queue, "p2", 600)
                    .await
                    .is_ok()
            }
        },
    )
    .await;
    assert_eq!(conn.current_addr(), format!("127.0.0.1:{new_port}"));
    let cached: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query(&mut fresh)
        .unwrap();
    assert_eq!(
        cached,
        vec![true],
        "the script was loaded again on the new master"
    );
    // the same message id again: the marker moved with the data, so it is not queued twice
    assert!(!push_once(&mut conn, &keys, "m1", &queue, "p1", 600)
        .await
        .unwrap());

    // ConnectionManager alone: still the old address, so every command
    // fails, even now that the new master is up and answering
    for _ in 0..3 {
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut pinned).await;
        assert!(
            r.is_err(),
            "ConnectionManager reached a server on the dead master's port"
        );
    }

    // a blocking waiter (BLMOVE on its own connection) after the switch
    let mut waiter = Waiter::default();
    let mut got = Vec::new();
    for _ in 0..50 {
        match wq.take(&mut waiter, 10, Duration::from_millis(200)).await {
            Ok(t) => got.extend(t),
            Err(_) => continue,
        }
        if got.len() == 2 {
            break;
        }
    }
    let payloads: Vec<&str> = got.iter().map(|t| t.payload.as_str()).collect();
    assert_eq!(
        payloads,
        ["p1", "p2"],
        "both acknowledged pushes, once each, in order"
    );
    let refs: Vec<_> = got.iter().map(|t| (t, Some("r"))).collect();
    let results = format!("{}message", keys.prefix());
    assert_eq!(wq.ack(&refs, &results).await.unwrap(), vec![true, true]);
    let inflight: i64 = redis::cmd("LLEN")
        .arg(keys.inflight("w1", &queue))
        .query(&mut fresh)
        .unwrap();
    assert_eq!(inflight, 0, "nothing stuck in flight on the new master");

    // the old master comes back: the sentinels turn it into a replica, and
    // its stale copy (p1 only) is replaced by the new master's data
    let q2 = queue.clone();
    let s = tokio::task::spawn_blocking(move || {
        s.servers[old].restart().unwrap();
        let port = s.servers[old].port;
        ubackup_testkit::wait_until(
            "the old master to rejoin as a replica",
            SENTINEL_DEADLINE,
            || {
                s.conn_to(port)
                    .and_then(|mut c| {
                        redis::cmd("INFO")
                            .arg("replication")
                            .query::<String>(&mut c)
                            .ok()
                    })
                    .is_some_and(|t| {
                        t.contains("role:slave") && t.contains("master_link_status:up")
                    })
            },
        );
        let mut c = s.conn_to(port).unwrap();
        ubackup_testkit::wait_until(
            "the old master to hold the new master's results",
            Duration::from_secs(10),
            || redis::cmd("LLEN").arg(&results).query::<i64>(&mut c).ok() == Some(2),
        );
        let q: i64 = redis::cmd("LLEN").arg(&q2).query(&mut c).unwrap();
        assert_eq!(q, 0, "the stale p1 of the old master's AOF is gone");
        s
    })
    .await
    .unwrap();
    assert!(push_once(&mut conn, &keys, "m3", &queue, "p3", 600)
        .await
        .unwrap());
    assert_eq!(conn.current_addr(), format!("127.0.0.1:{new_port}"));
    drop(s);
}

/// Wrong sentinel password, a master name no sentinel knows and no
/// sentinel reachable: each says so, per sentinel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_errors_say_what_each_sentinel_answered() {
    let s = start(SentinelOpts {
        sentinel_password: Some("right".into()),
        ..SentinelOpts::default()
    })
    .await;
    let mut wrong = s.settings("redis");
    wrong.retain(|(k, _)| k != "redis_sentinel_password");
    wrong.push(("redis_sentinel_password".into(), "wrong".into()));
    let e = target_from_config(&wrong)
        .manager()
        .await
        .err()
        .expect("wrong password refused");
    assert_eq!(e.kind(), redis::ErrorKind::AuthenticationFailed, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("master `ubackup`")
            && text.contains(&format!("sentinel 127.0.0.1:{}", s.sentinels[0].port)),
        "{text}"
    );

    let mut unknown = s.settings("redis");
    unknown.retain(|(k, _)| k != "redis_master_name");
    unknown.push(("redis_master_name".into(), "nosuchmaster".into()));
    let e = target_from_config(&unknown)
        .manager()
        .await
        .err()
        .expect("unknown name refused");
    assert_eq!(
        e.kind(),
        redis::ErrorKind::MasterNameNotFoundBySentinel,
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("monitors no master named `nosuchmaster`"),
        "{e}"
    );

    let nobody = vec![
        (
            "redis_sentinels".to_string(),
            format!("127.0.0.1:{},127.0.0.1:{}", free_port(), free_port()),
        ),
        ("redis_master_name".to_string(), "ubackup".to_string()),
    ];
    let e = target_from_config(&nobody)
        .manager()
        .await
        .err()
        .expect("nobody answers");
    assert!(e.is_io_error(), "{e:?}");
    assert!(
        e.to_string()
            .contains("no sentinel named a reachable master"),
        "{e}"
    );
    let e = target_from_config(&nobody)
        .blocking_connection()
        .await
        .err()
        .expect("nobody answers");
    assert!(
        e.to_string()
            .contains("no sentinel named a reachable master"),
        "{e}"
    );
    drop(s);
}
