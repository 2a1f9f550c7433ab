//! The public handle: starting the stand-in on its own thread and
//! runtime, injecting faults, and looking at what it holds and what it was
//! sent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::ServiceExt;
use serde_json::Value;

use super::http::base64;
use super::router;
use super::state::{ItemFault, ItemMatch, LoggedRequest, RequestFault, StandIn};

/// A running stand-in. Dropping it stops the server and its thread.
pub struct EsStandIn {
    addr: SocketAddr,
    shared: Arc<Mutex<StandIn>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EsStandIn {
    /// Starts on an ephemeral 127.0.0.1 port.
    pub fn start() -> EsStandIn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Mutex::new(StandIn::default()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app_state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("es-stand-in".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("stand-in runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let app = router::app(app_state);
                    tokio::select! {
                        r = axum::serve(listener, ServiceExt::<Request>::into_make_service(app)) => { if let Err(e) = r { eprintln!("es stand-in: {e}"); } }
                        _ = rx => {}
                    }
                });
                // dropping the runtime cancels open connections
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn stand-in thread");
        EsStandIn {
            addr,
            shared,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> MutexGuard<'_, StandIn> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- fault injection ----

    /// The item with `_id == id` fails with `status` the next `times` times
    /// it is sent (`u32::MAX` = always).
    pub fn fail_item_id(&self, id: &str, status: u16, times: u32) {
        self.lock().item_faults.push(ItemFault {
            matcher: ItemMatch::Id(id.into()),
            status,
            remaining: times,
        });
    }

    /// The `n`-th bulk item (0-based) received from now on fails once.
    pub fn fail_nth_item(&self, n: u64, status: u16) {
        let mut s = self.lock();
        let at = s.items_received + n;
        s.item_faults.push(ItemFault {
            matcher: ItemMatch::Nth(at),
            status,
            remaining: 1,
        });
    }

    /// The next `count` requests (any path) answer `status` as a whole.
    pub fn fail_requests(&self, status: u16, count: u32) {
        self.lock().request_fault = Some(RequestFault {
            status,
            remaining: Some(count),
            until: None,
        });
    }

    /// Every request answers `status` for `d`.
    pub fn fail_requests_for(&self, status: u16, d: Duration) {
        self.lock().request_fault = Some(RequestFault {
            status,
            remaining: None,
            until: Some(Instant::now() + d),
        });
    }

    /// `true`: every request answers 503 (no master) until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        self.lock().request_fault = if down {
            Some(RequestFault {
                status: 503,
                remaining: None,
                until: None,
            })
        } else {
            None
        };
    }

    /// Every answer is delayed by `d`.
    pub fn set_delay(&self, d: Duration) {
        self.lock().delay = d;
    }

    /// Requests must carry Basic credentials `user:password`.
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        self.lock().auth = Some(format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes())
        ));
    }

    /// Requests must carry `Authorization: ApiKey <encoded>`.
    pub fn require_api_key(&self, encoded: &str) {
        self.lock().auth = Some(format!("ApiKey {encoded}"));
    }

    // ---- inspection ----

    /// Every document of `index` (real time, not only refreshed ones), by id.
    pub fn docs(&self, index: &str) -> BTreeMap<String, Value> {
        self.lock()
            .indices
            .get(index)
            .map(|i| {
                i.docs
                    .iter()
                    .map(|(k, d)| (k.clone(), d.source.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn doc(&self, index: &str, id: &str) -> Option<Value> {
        self.lock()
            .indices
            .get(index)
            .and_then(|i| i.docs.get(id))
            .map(|d| d.source.clone())
    }

    /// `_version` of a document (1 when created, +1 per overwrite).
    pub fn doc_version(&self, index: &str, id: &str) -> Option<i64> {
        self.lock()
            .indices
            .get(index)
            .and_then(|i| i.docs.get(id))
            .map(|d| d.version)
    }

    pub fn doc_count(&self, index: &str) -> usize {
        self.lock()
            .indices
            .get(index)
            .map(|i| i.docs.len())
            .unwrap_or(0)
    }

    pub fn index_names(&self) -> Vec<String> {
        self.lock().indices.keys().cloned().collect()
    }

    /// The `mappings` of an index as `GET /<index>/_mapping` shows them.
    pub fn mapping(&self, index: &str) -> Option<Value> {
        self.lock().indices.get(index).map(|i| i.mapping.to_json())
    }

    /// The body a template was stored with.
    pub fn template(&self, name: &str) -> Option<Value> {
        self.lock().templates.get(name).map(|t| t.body.clone())
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Requests with this method whose path ends with `path_suffix`.
    pub fn request_count(&self, method: &str, path_suffix: &str) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(path_suffix))
            .count()
    }

    /// Bulk operations received so far (including failed ones).
    pub fn bulk_items_received(&self) -> u64 {
        self.lock().items_received
    }
}

impl Drop for EsStandIn {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use elasticsearch::http::Method;

    use crate::es::test_client::{client, raw};
    use crate::es::EsStandIn;

    #[tokio::test]
    async fn injected_faults_and_delays() {
        let es = EsStandIn::start();
        let c = client(&es);
        es.fail_requests(503, 2);
        for _ in 0..2 {
            let (s, v, _) = raw(&c, Method::Get, "/", None).await;
            assert_eq!((s, v["status"].as_u64()), (503, Some(503)));
        }
        assert_eq!(raw(&c, Method::Get, "/", None).await.0, 200);
        es.fail_item_id("x", 429, 1);
        es.fail_nth_item(1, 400);
        let body = "{\"index\":{\"_index\":\"f\",\"_id\":\"x\"}}\n{}\n{\"index\":{\"_index\":\"f\",\"_id\":\"y\"}}\n{}\n";
        let (_, v, _) = raw(&c, Method::Post, "/_bulk", Some(body.into())).await;
        assert_eq!(v["items"][0]["index"]["status"], 429);
        assert_eq!(
            v["items"][0]["index"]["error"]["type"],
            "es_rejected_execution_exception"
        );
        assert_eq!(v["items"][1]["index"]["status"], 400);
        let (_, v, _) = raw(&c, Method::Post, "/_bulk", Some(body.into())).await;
        assert_eq!(
            v["errors"], false,
            "each fault fired its number of times: {v}"
        );
        es.set_delay(std::time::Duration::from_millis(300));
        let t = std::time::Instant::now();
        raw(&c, Method::Get, "/", None).await;
        assert!(t.elapsed() >= std::time::Duration::from_millis(300));
        es.set_delay(std::time::Duration::ZERO);
        es.set_down(true);
        assert_eq!(
            raw(&c, Method::Post, "/_bulk", Some(body.into())).await.0,
            503
        );
        es.set_down(false);
        assert_eq!(raw(&c, Method::Get, "/", None).await.0, 200);
        assert_eq!(es.request_count("POST", "/_bulk"), 3);
    }
}
