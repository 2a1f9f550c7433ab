//! The crash-safe queue primitives against a real redis-server.

use std::time::{Duration, Instant};

use redis::Commands;
use ubackup_common::queue::push::push_once;
use ubackup_common::queue::{dead, outbox, watch, Requeue, Taken, Waiter, WorkQueue};
use ubackup_common::{DeadLetter, Keys, RedisTarget};
use ubackup_testkit::{unique, RedisServer};

async fn setup(worker: &str, queues: &[&str]) -> (RedisServer, WorkQueue, Keys) {
    let redis = RedisServer::start().unwrap();
    let keys = Keys::new(&unique("t:"));
    let target = RedisTarget::from_url(&redis.url()).unwrap();
    let wq = WorkQueue::connect(
        &target,
        keys.clone(),
        worker,
        queues.iter().map(|s| s.to_string()).collect(),
    )
    .await
    .unwrap();
    (redis, wq, keys)
}

#[tokio::test]
async fn take_is_strict_priority_and_fifo_within_a_list() {
    let (redis, wq, keys) = setup("n1", &["level1", "low"]).await;
    let mut c = redis.conn();
    for i in 0..5 {
        let _: () = c.lpush("low", format!("low{i}")).unwrap();
    }
    let _: () = c.lpush("level1", "hi0").unwrap();
    let got = wq.try_take(1).await.unwrap();
    assert_eq!(got[0].payload, "hi0");
    assert_eq!(got[0].queue, "level1");
    let got = wq.try_take(3).await.unwrap();
    let p: Vec<_> = got.iter().map(|t| t.payload.as_str()).collect();
    assert_eq!(p, ["low0", "low1", "low2"]);
    let inflight: Vec<String> = c.lrange(keys.inflight("n1", "low"), 0, -1).unwrap();
    assert_eq!(inflight.len(), 3, "taken items are held in flight");
}

#[tokio::test]
async fn take_top_takes_only_from_the_top_list() {
    let (redis, wq, keys) = setup("n1", &["level1", "low"]).await;
    let mut c = redis.conn();
    let _: () = c.lpush("low", "low0").unwrap();
    assert!(
        wq.try_take_top(1).await.unwrap().is_empty(),
        "a lower list is left alone"
    );
    let _: () = c.lpush("level1", "hi0").unwrap();
    let _: () = c.lpush("level1", "hi1").unwrap();
    let got = wq.try_take_top(5).await.unwrap();
    let p: Vec<_> = got
        .iter()
        .map(|t| (t.queue.as_str(), t.payload.as_str()))
        .collect();
    assert_eq!(p, [("level1", "hi0"), ("level1", "hi1")]);
    let inflight: Vec<String> = c.lrange(keys.inflight("n1", "level1"), 0, -1).unwrap();
    assert_eq!(inflight.len(), 2, "taken items are held in flight");
    assert_eq!(c.llen::<_, usize>("low").unwrap(), 1);
}

#[tokio::test]
async fn blocked_take_wakes_for_top_list_quickly() {
    let (redis, wq, _keys) = setup("n1", &["level1", "low"]).await;
    let url = redis.url();
    let pusher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _: () = c.lpush("level1", "wake").unwrap();
        Instant::now()
    });
    let mut w = Waiter::default();
    let mut got = Vec::new();
    while got.is_empty() {
        got = wq.take(&mut w, 1, Duration::from_secs(5)).await.unwrap();
    }
    let woke = Instant::now();
    let pushed = pusher.await.unwrap();
    assert_eq!(got[0].payload, "wake");
    assert!(
        woke.duration_since(pushed) < Duration::from_millis(100),
        "pickup took {:?}",
        woke.duration_since(pushed)
    );
    drop(redis);
}

#[tokio::test]
async fn ack_is_fenced_after_requeue() {
    let (redis, wq, keys) = setup("zombie", &["q"]).await;
    let mut c = redis.conn();
    let _: () = c.lpush("q", "m1").unwrap();
    let taken = wq.try_take(1).await.unwrap().remove(0);
    // the zombie's heartbeat has expired (never set): another worker reaps it
    let target = RedisTarget::from_url(&redis.url()).unwrap();
    let other = WorkQueue::connect(&target, keys.clone(), "live", vec!["q".into()])
        .await
        .unwrap();
    let reaped = other.reap_expired().await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].1.requeued, 1);
    let again = other.try_take(1).await.unwrap().remove(0);
    assert_eq!(
        other
            .ack(&[(&again, Some("r-live"))], "results")
            .await
            .unwrap(),
        vec![true]
    );
    // the late ack of the zombie has no effect
    assert_eq!(
        wq.ack(&[(&taken, Some("r-zombie"))], "results")
            .await
            .unwrap(),
        vec![false]
    );
    let results: Vec<String> = c.lrange("results", 0, -1).unwrap();
    assert_eq!(results, vec!["r-live".to_string()]);
    assert_eq!(c.llen::<_, u64>(keys.inflight("zombie", "q")).unwrap(), 0);
}

#[tokio::test]
async fn live_worker_is_not_reaped() {
    let (redis, wq, keys) = setup("alive", &["q"]).await;
    let mut c = redis.conn();
    let _: () = c.lpush("q", "m1").unwrap();
    wq.heartbeat(Duration::from_secs(30), &[]).await.unwrap();
    wq.try_take(1).await.unwrap();
    let target = RedisTarget::from_url(&redis.url()).unwrap();
    let other = WorkQueue::connect(&target, keys.clone(), "other", vec!["q".into()])
        .await
        .unwrap();
    assert!(other.reap_expired().await.unwrap().is_empty());
    assert_eq!(c.llen::<_, u64>(keys.inflight("alive", "q")).unwrap(), 1);
}

#[tokio::test]
async fn third_interruption_dead_letters_poison() {
    let (redis, wq, keys) = setup("n1", &["q"]).await;
    let mut c = redis.conn();
    let _: () = c.lpush("q", "poison").unwrap();
    for round in 1..=3 {
        let t = wq.try_take(1).await.unwrap();
        assert_eq!(t.len(), 1, "round {round}");
        let o = wq.requeue_own(Requeue::Restart).await.unwrap();
        if round < 3 {
            assert_eq!((o.requeued, o.dead_lettered), (1, 0));
        } else {
            assert_eq!((o.requeued, o.dead_lettered), (0, 1));
        }
    }
    assert_eq!(c.llen::<_, u64>("q").unwrap(), 0);
    let dead: Vec<String> = c.lrange(keys.dead("q"), 0, -1).unwrap();
    let d: DeadLetter = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(d.payload, "poison");
    assert!(d.reason.contains("interrupted 3 times"), "{}", d.reason);
}

#[tokio::test]
async fn drain_does_not_count_and_dead_letter_is_fenced() {
    let (redis, wq, keys) = setup("n1", &["q"]).await;
    let mut c = redis.conn();
    let _: () = c.lpush("q", "m").unwrap();
    for _ in 0..5 {
        wq.try_take(1).await.unwrap();
        let o = wq.requeue_own(Requeue::Drain).await.unwrap();
        assert_eq!((o.requeued, o.dead_lettered), (1, 0));
    }
    let t = wq.try_take(1).await.unwrap().remove(0);
    assert!(wq
        .dead_letter(&t, "bad name", Some("fail-result"), "results")
        .await
        .unwrap());
    assert!(!wq
        .dead_letter(&t, "again", Some("x"), "results")
        .await
        .unwrap());
    assert_eq!(c.llen::<_, u64>(keys.dead("q")).unwrap(), 1);
    assert_eq!(
        c.lrange::<_, Vec<String>>("results", 0, -1).unwrap(),
        vec!["fail-result".to_string()]
    );
}

#[tokio::test]
async fn release_gives_back_to_the_pop_end_without_counting_and_is_fenced() {
    let (redis, wq, keys) = setup("n1", &["q"]).await;
    let mut c = redis.conn();
    let _: () = c.lpush("q", "big").unwrap();
    let _: () = c.lpush("q", "newer").unwrap();
    let t = wq.try_take(1).await.unwrap().remove(0);
    assert_eq!(t.payload, "big");
    assert!(wq.holds(&t).await.unwrap());
    assert!(wq.release(&t).await.unwrap());
    assert!(!wq.holds(&t).await.unwrap());
    assert!(
        !wq.release(&t).await.unwrap(),
        "a second release is fenced off"
    );
    // back at the pop end: taken again before `newer`
    assert_eq!(wq.try_take(1).await.unwrap()[0].payload, "big");
    let counts: std::collections::HashMap<String, String> = c.hgetall(keys.attempts()).unwrap();
    assert!(
        counts.is_empty(),
        "a release is not an interruption: {counts:?}"
    );
}

#[tokio::test]
async fn a_non_utf8_item_is_dead_lettered_not_stuck_in_flight() {
    let (redis, wq, keys) = setup("n1", &["q"]).await;
    let mut c = redis.conn();
    let _: () = c.lpush("q", b"ok1".as_slice()).unwrap();
    let _: () = c.lpush("q", b"bad\xff\xfe".as_slice()).unwrap();
    let _: () = c.lpush("q", b"ok2".as_slice()).unwrap();
    let got = wq.try_take(3).await.unwrap();
    let p: Vec<_> = got.iter().map(|t| t.payload.as_str()).collect();
    assert_eq!(p, ["ok1", "ok2"]);
    assert_eq!(
        c.llen::<_, u64>(keys.inflight("n1", "q")).unwrap(),
        2,
        "only the readable items are in flight"
    );
    let dead: Vec<String> = c.lrange(keys.dead("q"), 0, -1).unwrap();
    let d: DeadLetter = serde_json::from_str(&dead[0]).unwrap();
    assert!(d.reason.contains("not UTF-8"), "{}", d.reason);
    assert!(d.payload.starts_with("bad"));
    // and through the blocking path
    let _: () = c.lpush("q", b"\xc3(".as_slice()).unwrap();
    let mut w = Waiter::default();
    assert!(wq
        .take(&mut w, 1, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(c.llen::<_, u64>(keys.dead("q")).unwrap(), 2);
    assert_eq!(c.llen::<_, u64>(keys.inflight("n1", "q")).unwrap(), 2);
}

#[tokio::test]
async fn claim_moves_chosen_items_in_flight_and_not_past_a_higher_list() {
    let (redis, wq, keys) = setup("n1", &["level1", "low"]).await;
    let mut c = redis.conn();
    for p in ["a", "b", "c"] {
        let _: () = c.lpush("low", p).unwrap();
    }
    let peeked = wq.peek("low", 0, 2).await.unwrap();
    assert_eq!(
        peeked,
        [b"b".to_vec(), b"a".to_vec()],
        "the pop end, oldest last"
    );
    assert_eq!(wq.peek("low", 2, 5).await.unwrap(), [b"c".to_vec()]);
    let t = |p: &str| Taken {
        queue: "low".into(),
        payload: p.into(),
    };
    let (a, c_, gone) = (t("a"), t("c"), t("gone"));
    let flags = wq.claim(&[&a, &c_, &gone]).await.unwrap();
    assert_eq!(flags, [true, true, false]);
    assert_eq!(
        wq.holds_each(&[&a, &gone, &c_]).await.unwrap(),
        [true, false, true]
    );
    let rest: Vec<String> = c.lrange("low", 0, -1).unwrap();
    assert_eq!(rest, ["b"]);
    assert_eq!(c.llen::<_, u64>(keys.inflight("n1", "low")).unwrap(), 2);
    // a waiting level1 message stops the batch from growing
    let _: () = c.lpush("level1", "urgent").unwrap();
    let b = t("b");
    assert_eq!(wq.claim(&[&b]).await.unwrap(), [false]);
    assert_eq!(c.llen::<_, u64>("low").unwrap(), 1);
}

#[tokio::test]
async fn push_once_pushes_a_message_id_once() {
    let redis = RedisServer::start().unwrap();
    let keys = Keys::new(&unique("t:"));
    let target = RedisTarget::from_url(&redis.url()).unwrap();
    let mut conn = target.manager().await.unwrap();
    assert!(push_once(&mut conn, &keys, "id1", "q", "m1", 60)
        .await
        .unwrap());
    assert!(!push_once(&mut conn, &keys, "id1", "q", "m1", 60)
        .await
        .unwrap());
    assert!(push_once(&mut conn, &keys, "id2", "q", "m2", 60)
        .await
        .unwrap());
    let mut c = redis.conn();
    let q: Vec<String> = c.lrange("q", 0, -1).unwrap();
    assert_eq!(q, ["m2", "m1"]);
    let ttl: i64 = c.ttl(keys.sent("id1")).unwrap();
    assert!((1..=60).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn a_dead_letter_is_requeued_or_dropped_once() {
    let redis = RedisServer::start().unwrap();
    let target = RedisTarget::from_url(&redis.url()).unwrap();
    let mut conn = target.manager().await.unwrap();
    let mut c = redis.conn();
    let _: () = c.lpush("q:dead", "entry1").unwrap();
    let _: () = c.lpush("q:dead", "entry2").unwrap();
    let _: () = c.lpush("q", "next").unwrap();
    let (len, first) = dead::page(&mut conn, "q:dead", 1).await.unwrap();
    assert_eq!((len, first), (2, vec![b"entry2".to_vec()]));
    assert_eq!(dead::all(&mut conn, "q:dead").await.unwrap().len(), 2);
    assert!(dead::requeue(&mut conn, "q:dead", "q", b"entry1", "msg1")
        .await
        .unwrap());
    assert!(!dead::requeue(&mut conn, "q:dead", "q", b"entry1", "msg1")
        .await
        .unwrap());
    let q: Vec<String> = c.lrange("q", 0, -1).unwrap();
    assert_eq!(q, ["next", "msg1"], "back at the pop end");
    assert!(dead::drop(&mut conn, "q:dead", b"entry2").await.unwrap());
    assert!(!dead::drop(&mut conn, "q:dead", b"entry2").await.unwrap());
    assert_eq!(c.llen::<_, u64>("q:dead").unwrap(), 0);
}

#[tokio::test]
async fn forwarding_moves_the_outbox_in_order_and_watching_moves_nothing() {
    let queue = RedisServer::start().unwrap();
    let message = RedisServer::start().unwrap();
    let qt = RedisTarget::from_url(&queue.url()).unwrap();
    let mt = RedisTarget::from_url(&message.url()).unwrap();
    let qconn = qt.manager().await.unwrap();
    let mut c = queue.conn();
    for r in ["r1", "r2", "r3"] {
        let _: () = c.lpush("outbox", r).unwrap();
    }
    let mut target = None;
    let n = outbox::forward_once(&qconn, &mut target, &mt, "outbox", "message")
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        outbox::forward_once(&qconn, &mut target, &mt, "outbox", "message")
            .await
            .unwrap(),
        0
    );
    let got: Vec<String> = message.conn().lrange("message", 0, -1).unwrap();
    assert_eq!(got, ["r3", "r2", "r1"], "the original order");
    assert_eq!(c.llen::<_, u64>("outbox").unwrap(), 0);

    let mut w = qt.blocking_connection().await.unwrap();
    assert!(!watch::wait_for_item(&mut w, "l", 0.05).await.unwrap());
    let _: () = c.lpush("l", "x").unwrap();
    let _: () = c.lpush("l", "y").unwrap();
    assert!(watch::wait_for_item(&mut w, "l", 0.05).await.unwrap());
    let l: Vec<String> = c.lrange("l", 0, -1).unwrap();
    assert_eq!(l, ["y", "x"], "the list is as it was");
}
