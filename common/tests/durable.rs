//! `redis_min_replicas` against a real master and a real replica: a push
//! and a fenced ack count as done only once the replica has them; with the
//! replica down a push is refused (the client keeps its spool entry) and an
//! ack waits, and both complete by themselves when the replica is back.

use std::time::Duration;

use redis::Commands;
use ubackup_common::queue::push::push_once;
use ubackup_common::redis_conn::Durability;
use ubackup_common::{Keys, RedisTarget, WorkQueue};
use ubackup_testkit::{unique, wait_until, wait_until_async, RedisServer};

fn online_replicas(master: &RedisServer) -> usize {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut master.conn())
        .unwrap_or_default();
    info.lines()
        .filter(|l| l.starts_with("slave") && l.contains("state=online"))
        .count()
}

fn list(server: &RedisServer, key: &str) -> Vec<String> {
    server.conn().lrange(key, 0, -1).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_and_acks_count_only_once_a_replica_has_them() {
    let master = RedisServer::start().unwrap();
    let mport = master.port.to_string();
    let mut replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &mport]).unwrap();
    wait_until("the replica is online", Duration::from_secs(20), || {
        online_replicas(&master) == 1
    });

    let target = RedisTarget::from_url(&master.url())
        .unwrap()
        .with_durability(Durability {
            min_replicas: 1,
            wait_timeout: Duration::from_millis(200),
        });
    let keys = Keys::new(&unique("durable:"));
    let queue = format!("{}q", keys.prefix());
    let results = format!("{}results", keys.prefix());
    let mut conn = target.manager().await.unwrap();

    // a confirmed push is on the replica the moment push_once returns
    assert!(push_once(&mut conn, &keys, "m1", &queue, "payload-1", 600)
        .await
        .unwrap());
    assert_eq!(list(&replica, &queue), vec!["payload-1".to_string()]);

    let wq = WorkQueue::connect(&target, keys.clone(), "w1", vec![queue.clone()])
        .await
        .unwrap();
    let taken = wq.try_take(1).await.unwrap();
    assert_eq!(taken.len(), 1);
    let inflight = keys.inflight("w1", &queue);

    replica.kill9();
    wait_until(
        "the master sees its replica gone",
        Duration::from_secs(20),
        || online_replicas(&master) == 0,
    );

    // without the replica a push is not done: the error says why, so the
    // client keeps the message in its spool
    let e = push_once(&mut conn, &keys, "m2", &queue, "payload-2", 600)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("on 0 of the 1 replicas"),
        "the push error names the replicas: {e}"
    );

    // the ack is made on the master but does not return while no replica
    // confirms it
    let ack = {
        let wq = wq.clone();
        let item = taken[0].clone();
        let results = results.clone();
        tokio::spawn(async move { wq.ack(&[(&item, Some("result-1"))], &results).await })
    };
    wait_until(
        "the ack is applied on the master",
        Duration::from_secs(20),
        || {
            list(&master, &inflight).is_empty()
                && list(&master, &results) == vec!["result-1".to_string()]
        },
    );
    assert!(
        !ack.is_finished(),
        "an ack the replica does not have must not count as done"
    );

    // the replica comes back: the ack completes by itself, fenced once
    replica.restart().unwrap();
    wait_until_async(
        "the ack completes once the replica is back",
        Duration::from_secs(30),
        || {
            let done = ack.is_finished();
            async move { done }
        },
    )
    .await;
    assert_eq!(ack.await.unwrap().unwrap(), vec![true]);
    assert_eq!(list(&replica, &results), vec!["result-1".to_string()]);
    assert!(list(&replica, &inflight).is_empty());

    // the spooled message is sent again: the master had it (its marker
    // too), so nothing is pushed twice and the resend is now confirmed
    assert!(!push_once(&mut conn, &keys, "m2", &queue, "payload-2", 600)
        .await
        .unwrap());
    assert_eq!(list(&replica, &queue), vec!["payload-2".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_min_replicas_a_push_needs_no_replica() {
    let master = RedisServer::start().unwrap();
    let target = RedisTarget::from_url(&master.url()).unwrap();
    assert_eq!(target.durability().min_replicas, 0);
    let keys = Keys::new(&unique("durable0:"));
    let queue = format!("{}q", keys.prefix());
    let mut conn = target.manager().await.unwrap();
    assert!(push_once(&mut conn, &keys, "m1", &queue, "p", 600)
        .await
        .unwrap());
    // and no probe write is made: the original behaviour, byte for byte
    let probe: bool = master.conn().exists(keys.replication_probe()).unwrap();
    assert!(!probe);
}
