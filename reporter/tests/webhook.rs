//! The webhook is called exactly once per new alert and once per resolve,
//! across repeated runs of the real binary; a failing webhook is retried on
//! the next run and nothing is lost or sent twice.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use serde_json::Value;
use ubackup_common::message::now_ms;

/// A test HTTP listener on 127.0.0.1:0 recording every POSTed body.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
    fail: Arc<AtomicBool>,
    _rt: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct HookState {
    got: Arc<Mutex<Vec<Value>>>,
    fail: Arc<AtomicBool>,
}

async fn receive(State(s): State<HookState>, Json(v): Json<Value>) -> StatusCode {
    if s.fail.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    s.got.lock().unwrap().push(v);
    StatusCode::OK
}

impl Hook {
    fn start() -> Hook {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(AtomicBool::new(false));
        let st = HookState {
            got: got.clone(),
            fail: fail.clone(),
        };
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        rt.spawn(async move {
            let app = Router::new().route("/hook", post(receive)).with_state(st);
            axum::serve(listener, app).await.unwrap();
        });
        Hook {
            url,
            got,
            fail,
            _rt: rt,
        }
    }

    /// (event, alert id) of every body received, in order.
    fn events(&self) -> Vec<(String, String)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["event"].as_str().unwrap_or("").to_string(),
                    v["alert"]["id"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

fn ev(e: &str, id: &str) -> (String, String) {
    (e.to_string(), id.to_string())
}

#[test]
fn once_per_new_alert_once_per_resolve_and_retry_after_failure() {
    let b = Bench::new("backlog_threshold = 1\n");
    let hook = Hook::start();
    let state = b.dir.path().join("state/alerts.json");
    let cfg = p(&b.config).to_string();
    let alerts = |b: &Bench| {
        b.run(&[
            "alerts",
            "-c",
            &cfg,
            "--webhook",
            &hook.url,
            "--state",
            p(&state),
        ])
    };

    // nothing wrong: nothing sent
    let (code, out, _) = alerts(&b);
    assert_eq!(code, 0, "{out}");
    assert!(hook.events().is_empty());

    // a node goes down: one event, not repeated by later runs
    b.node("n7", false, &[]);
    for _ in 0..3 {
        let (code, out, _) = alerts(&b);
        assert_eq!(code, 2, "{out}");
    }
    assert_eq!(hook.events(), vec![ev("raised", "node_down:n7")]);
    let body = hook.got.lock().unwrap()[0].clone();
    assert_eq!(body["alert"]["kind"], "node_down");
    assert_eq!(body["alert"]["severity"], "critical");
    assert!(
        body["text"].as_str().unwrap().contains("node_down n7"),
        "{body}"
    );

    // the webhook fails; meanwhile a backlog appears and the node comes back
    hook.fail.store(true, Ordering::SeqCst);
    let mut c = b.conn();
    for i in 0..2 {
        redis::cmd("LPUSH")
            .arg(&b.q1)
            .arg(message(1, i, now_ms() / 1000))
            .query::<()>(&mut c)
            .unwrap();
    }
    b.set_up("n7", true);
    let (code, out, _) = alerts(&b);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("pending (retried next run)"), "{out}");
    assert_eq!(hook.events().len(), 1, "nothing got through");
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["pending"].as_array().unwrap().len(), 2, "{saved}");
    // still failing: still pending, nothing lost
    alerts(&b);
    assert_eq!(hook.events().len(), 1);

    // the webhook works again: the two held events arrive, once, in order
    hook.fail.store(false, Ordering::SeqCst);
    alerts(&b);
    alerts(&b);
    let q1 = format!("queue_backlog:{}", b.q1);
    let got = hook.events();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[1..].contains(&ev("raised", &q1)) && got[1..].contains(&ev("resolved", "node_down:n7")),
        "{got:?}"
    );

    // the backlog clears: one resolve
    redis::cmd("DEL").arg(&b.q1).query::<()>(&mut c).unwrap();
    alerts(&b);
    alerts(&b);
    let got = hook.events();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[3], ev("resolved", &q1));
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(
        saved["pending"].as_array().unwrap().is_empty()
            && saved["known"].as_object().unwrap().is_empty(),
        "{saved}"
    );
}

#[test]
fn unreadable_catalog_resolves_nothing() {
    // instance alerts that cannot be evaluated must not be reported as resolved
    let b = Bench::new("");
    let hook = Hook::start();
    let state = b.dir.path().join("alerts.json");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(b.store(vec![client_failed(3306, 10, "script exited 1")]));
    let cfg = p(&b.config).to_string();
    let (code, _, _) = b.run(&[
        "alerts",
        "-c",
        &cfg,
        "--webhook",
        &hook.url,
        "--state",
        p(&state),
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        hook.events(),
        vec![ev("raised", "script_error:111111/mysql/3306/mygame")]
    );
    // the catalog becomes unreadable (not a database any more)
    drop(b.catalog.clone());
    for f in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{f}", b.catalog_path.display()));
    }
    std::fs::write(
        &b.catalog_path,
        b"this is not a sqlite database, not at all, no",
    )
    .unwrap();
    let (code, out, _) = b.run(&[
        "alerts",
        "-c",
        &cfg,
        "--webhook",
        &hook.url,
        "--state",
        p(&state),
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("UNKNOWN"), "{out}");
    assert_eq!(
        hook.events().len(),
        1,
        "no resolve while the catalog cannot be read: {:?}",
        hook.events()
    );
}
