//! The alert browser extension (`deploy/browser-extension/`) in a real
//! browser: Debian's headless Chromium loads it unpacked and polls the real
//! `ubackup-reporter serve`, over a catalog the real `ubackup-indexer`
//! fills from result messages on Redis. Driven over the DevTools protocol:
//! the options page is filled in and saved as a person would, then the
//! badge must show the count `/api/alerts` gives, a new alert (a failed
//! backup result) one notification and only one, and a resolved alert
//! (a newer good result) a lower count and its notification cleared.
//!
//! A screenshot of the popup goes to a temp dir; with
//! `UPDATE_SCREENSHOTS=1` to `docs/screenshots/extension-popup.png`.
//!
//! Needs `/usr/bin/chromium` (`CHROMIUM=path` overrides); without it this
//! test FAILS, saying so: it never skips.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};
use ubackup_common::message::now_ms;
use ubackup_common::ResultRecord;
use ubackup_testkit::{wait_until, wait_until_or, Proc};

use crate::common::{self, catalog_rows, chromium_bin, http_get, spawn_indexer, spawn_serve};

/// The id the manifest's fixed `key` gives the unpacked extension.
const EXT_ID: &str = "kcoacnmonhloaholejdnmalpghnhfhgf";
const TOKEN: &str = "extension-read-token-42";
const WAIT: Duration = Duration::from_secs(60);

fn extension_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/browser-extension")
        .canonicalize()
        .unwrap()
}

/// One DevTools session (a page or the service worker).
struct Cdp {
    ws: WebSocket<TcpStream>,
    next: u64,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let addr = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("not a DevTools websocket URL: {url}"));
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let (ws, _) = tungstenite::client(url, stream)
            .unwrap_or_else(|e| panic!("DevTools websocket {url}: {e}"));
        Cdp { ws, next: 0 }
    }

    /// Sends `method`, returns its `result` (events in between are dropped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let m = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("DevTools {method}: {e}"));
            let Ok(text) = m.to_text() else { continue };
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if v["id"].as_u64() != Some(id) {
                continue;
            }
            assert!(v.get("error").is_none(), "DevTools {method} failed: {v}");
            return v["result"].clone();
        }
    }

    /// Evaluates `expr` (promises awaited), returns its value as JSON.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "`{expr}` threw: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }
}

/// Headless Chromium with the unpacked extension, its DevTools port.
struct Browser {
    proc: Proc,
    port: u16,
    /// The browser's own session.
    cdp: std::cell::RefCell<Cdp>,
    dir: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let bin = chromium_bin();
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        let ext = extension_dir();
        let mut cmd = Command::new(&bin);
        cmd.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--load-extension={}", ext.display()))
        .arg(format!("--disable-extensions-except={}", ext.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap());
        let mut proc = Proc::spawn("chromium", cmd)
            .unwrap_or_else(|e| panic!("Chromium ({}) could not be started: {e:#}", bin.display()));
        // the browser writes its port and websocket path once it listens
        let active = profile.join("DevToolsActivePort");
        let stderr = dir.path().join("stderr");
        let mut exited = None;
        wait_until_or(
            "Chromium listens for DevTools",
            WAIT,
            || {
                if let Some(code) = proc.wait_exit(Duration::ZERO) {
                    exited = Some(code);
                    return true;
                }
                std::fs::read_to_string(&active).is_ok_and(|s| s.lines().count() >= 2)
            },
            || std::fs::read_to_string(&stderr).unwrap_or_default(),
        );
        assert!(
            exited.is_none(),
            "Chromium exited {exited:?} before listening; stderr:\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        let text = std::fs::read_to_string(&active).unwrap();
        let mut lines = text.lines();
        let port: u16 = lines.next().unwrap().trim().parse().unwrap();
        let path = lines.next().unwrap().trim().to_string();
        Browser {
            proc,
            port,
            cdp: std::cell::RefCell::new(Cdp::connect(&format!("ws://127.0.0.1:{port}{path}"))),
            dir,
        }
    }

    fn targets(&self) -> Vec<Value> {
        let infos = self.cdp.borrow_mut().call("Target.getTargets", json!({}));
        infos["targetInfos"].as_array().cloned().unwrap_or_default()
    }

    /// The extension's service worker.
    fn worker(&self) -> Cdp {
        let mut ws = None;
        let seen = std::cell::RefCell::new(Vec::new());
        wait_until_or(
            "the extension's service worker runs",
            WAIT,
            || {
                *seen.borrow_mut() = self.targets();
                ws = seen
                    .borrow()
                    .iter()
                    .find(|t| {
                        t["type"] == "service_worker"
                            && t["url"]
                                .as_str()
                                .is_some_and(|u| u.starts_with("chrome-extension://"))
                    })
                    .map(|t| {
                        (
                            t["url"].as_str().unwrap().to_string(),
                            format!(
                                "ws://127.0.0.1:{}/devtools/page/{}",
                                self.port,
                                t["targetId"].as_str().unwrap()
                            ),
                        )
                    });
                ws.is_some()
            },
            || {
                format!(
                    "targets: {:?}\nstderr:\n{}",
                    seen.borrow(),
                    std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
                )
            },
        );
        let (url, ws) = ws.unwrap();
        assert_eq!(
            url,
            format!("chrome-extension://{EXT_ID}/background.js"),
            "the manifest's key gives the extension a fixed id"
        );
        let mut w = Cdp::connect(&ws);
        // the target shows before the worker's script has run
        wait_until("the extension APIs in the worker", WAIT, || {
            w.call(
                "Runtime.evaluate",
                json!({"expression": "typeof chrome === 'object' && !!chrome.action && !!chrome.notifications", "returnByValue": true}),
            )["result"]["value"]
                == true
        });
        w
    }

    /// A new tab at `url`.
    fn open(&self, url: &str) -> Cdp {
        let id = self
            .cdp
            .borrow_mut()
            .call("Target.createTarget", json!({"url": url}))["targetId"]
            .as_str()
            .unwrap()
            .to_string();
        let mut page = Cdp::connect(&format!("ws://127.0.0.1:{}/devtools/page/{id}", self.port));
        page.call("Runtime.enable", json!({}));
        page
    }
}

/// A reverse proxy in front of serve that lets through only requests with
/// `Authorization: Bearer TOKEN` (401 otherwise), as an operator would put
/// one: (its port, how many requests it let through).
fn token_proxy(upstream: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let passed = Arc::new(AtomicUsize::new(0));
    let count = passed.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let count = count.clone();
            std::thread::spawn(move || proxy_one(client, upstream, &count));
        }
    });
    (port, passed)
}

/// One request: its head read, checked, passed on with `Connection:
/// close`, the answer copied back.
fn proxy_one(mut client: TcpStream, upstream: u16, passed: &AtomicUsize) {
    use std::io::{Read, Write};
    let _ = client.set_read_timeout(Some(WAIT));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let want = format!("authorization: bearer {TOKEN}").to_ascii_lowercase();
    if !head.lines().any(|l| l.trim().to_ascii_lowercase() == want) {
        let _ = client.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    passed.fetch_add(1, Ordering::SeqCst);
    // one request per connection: serve closes after answering
    let mut lines: Vec<&str> = head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let head = lines.join("\r\n") + "\r\n\r\n";
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if up.write_all(head.as_bytes()).is_ok() {
        let _ = std::io::copy(&mut up, &mut client);
    }
}

/// What `/api/alerts` says: the ids, and the badge the extension should show
/// (the critical count, else the warning count, else nothing).
fn api(port: u16) -> (BTreeSet<String>, String) {
    let (status, body) = http_get(port, "/api/alerts").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let alerts = v["alerts"].as_array().unwrap();
    let n = |sev: &str| alerts.iter().filter(|a| a["severity"] == sev).count();
    let badge = match (n("critical"), n("warning")) {
        (0, 0) => String::new(),
        (0, w) => w.to_string(),
        (c, _) => c.to_string(),
    };
    let ids = alerts
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    (ids, badge)
}

/// What the extension shows and remembers, read in its worker.
#[derive(Debug)]
struct Shown {
    badge: String,
    color: Vec<u64>,
    /// Notification ids currently shown.
    notifications: BTreeSet<String>,
    /// (what, alert id) of every notification created or cleared.
    events: Vec<(String, String)>,
    /// Times the worker finished a poll.
    checked_ms: i64,
    polled_ok: bool,
}

fn shown(w: &mut Cdp) -> Shown {
    let v = w.eval(
        "Promise.all([chrome.action.getBadgeText({}), chrome.action.getBadgeBackgroundColor({}), chrome.notifications.getAll(), chrome.storage.local.get(null)])",
    );
    let store = &v[3];
    Shown {
        badge: v[0].as_str().unwrap_or_default().to_string(),
        color: v[1]
            .as_array()
            .map(|c| c.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
        notifications: v[2]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
        events: store["events"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|x| {
                        (
                            x["what"].as_str().unwrap().to_string(),
                            x["id"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        checked_ms: store["state"]["checked_ms"].as_i64().unwrap_or(0),
        polled_ok: store["state"]["error"].is_null() && store["state"]["configured"] == true,
    }
}

fn nid(alert: &str) -> String {
    format!("ubackup:{alert}")
}

fn created(s: &Shown, alert: &str) -> usize {
    s.events
        .iter()
        .filter(|(w, id)| w == "created" && id == alert)
        .count()
}

/// Pushes results onto `message_queue` and waits until the indexer stored them.
fn push(b: &common::Bench, recs: &[ResultRecord]) {
    let before = catalog_rows(&b.catalog_path);
    let mut c = b.conn();
    for r in recs {
        redis::cmd("LPUSH")
            .arg(&b.mq)
            .arg(serde_json::to_string(r).unwrap())
            .query::<()>(&mut c)
            .unwrap();
    }
    wait_until("the indexer stored the results", WAIT, || {
        catalog_rows(&b.catalog_path) == before + recs.len() as i64
    });
}

/// Waits until the extension shows what `/api/alerts` says, and has polled
/// twice since (so a repeated notification would have shown by then).
fn settle(w: &mut Cdp, port: u16, what: &str) -> (BTreeSet<String>, Shown) {
    let (ids, badge) = api(port);
    let last = std::cell::RefCell::new(None);
    let start = now_ms();
    wait_until_or(
        what,
        WAIT,
        || {
            let s = shown(w);
            let ok = s.badge == badge
                && s.notifications == ids.iter().map(|i| nid(i)).collect()
                && s.checked_ms > start;
            *last.borrow_mut() = Some(s);
            ok
        },
        || {
            format!(
                "/api/alerts: {ids:?}, badge {badge:?}; the extension: {:?}",
                last.borrow()
            )
        },
    );
    let first = shown(w).checked_ms;
    let mut polls = 0;
    let mut at = first;
    wait_until("two more polls", WAIT, || {
        let c = shown(w).checked_ms;
        if c > at {
            polls += 1;
            at = c;
        }
        polls >= 2
    });
    (ids, shown(w))
}

fn illegal(instance: i64, age_s: i64) -> ResultRecord {
    let mut r = common::client_failed(
        instance,
        age_s,
        "size mismatch: expected 318767104 bytes, received 1048576",
    );
    r.illegal = Some("size mismatch".into());
    r
}

#[test]
fn extension_badge_notifications_and_popup_against_a_live_serve() {
    // Fail first, and clearly, when there is no browser.
    chromium_bin();

    let b = common::Bench::new("");
    let indexer_conf = b.dir.path().join("real-indexer.conf");
    common::write_indexer_conf(
        &indexer_conf,
        &b.redis.url(),
        &b.mq,
        &b.prefix,
        &b.catalog_path,
        &b.dir.path().join("indexer.log"),
        "31 = mmo-east\n",
    );
    let mut indexer = spawn_indexer(&indexer_conf);
    // 3306 fine, 3307 an illegal backup (critical), 3308 a failed pull (warning)
    push(
        &b,
        &[
            common::ok(3306, 600, 3600),
            illegal(3307, 500),
            common::pull_failed(3308, 400),
        ],
    );
    let (mut serve, port) = spawn_serve(&b.config);
    // the extension reads serve through a proxy that checks its token
    let (proxy, passed) = token_proxy(port);
    assert_eq!(
        http_get(proxy, "/api/alerts").unwrap().0,
        401,
        "the proxy refuses a request without the token"
    );
    let base = format!("http://127.0.0.1:{proxy}");
    let (ids, badge) = api(port);
    let crit = "illegal:111111/mysql/3307/mmo-east".to_string();
    let warn = "pull_failed:111111/mysql/3308/mmo-east".to_string();
    assert_eq!(ids, BTreeSet::from([crit.clone(), warn.clone()]));
    assert_eq!(badge, "1");

    let browser = Browser::start();
    let mut w = browser.worker();
    let before = shown(&mut w);
    assert!(
        before.notifications.is_empty() && before.badge.is_empty(),
        "nothing shown before it is configured: {before:?}"
    );

    // configure it on its options page, as an operator does
    let mut options = browser.open(&format!("chrome-extension://{EXT_ID}/options.html"));
    wait_until("the options page loaded", WAIT, || {
        options.eval("document.readyState === 'complete' && !!document.getElementById('save')")
            == true
    });
    options.eval(&format!(
        "document.getElementById('url').value = '{base}/'; document.getElementById('token').value = '{TOKEN}'; document.getElementById('interval').value = '1'; document.getElementById('save').click(); true"
    ));
    wait_until("the options page saved", WAIT, || {
        options
            .eval("document.getElementById('status').textContent")
            .as_str()
            .is_some_and(|s| s.starts_with("Saved"))
    });
    let cfg = w.eval("chrome.storage.local.get('config').then(c => c.config)");
    assert_eq!(cfg, json!({"url": base, "token": TOKEN, "interval": 1}));

    // 1. the badge shows the critical count, a notification per alert
    let (_, s) = settle(
        &mut w,
        port,
        "the badge and notifications match /api/alerts",
    );
    assert!(s.polled_ok, "{s:?}");
    assert!(
        passed.load(Ordering::SeqCst) > 0,
        "the extension sent its token"
    );
    assert_eq!(s.badge, "1");
    assert_eq!(s.color, vec![197, 34, 31, 255], "critical: red");
    assert_eq!(
        (created(&s, &crit), created(&s, &warn)),
        (1, 1),
        "{:?}",
        s.events
    );

    // 2. a new alert through the pipeline: one notification, only one
    let script = "script_error:111111/mysql/3309/mmo-east".to_string();
    push(
        &b,
        &[common::client_failed(
            3309,
            30,
            "backup script exited 2: mysqldump: Got error: 2002",
        )],
    );
    let (ids, s) = settle(&mut w, port, "the new alert is shown");
    assert!(ids.contains(&script));
    assert_eq!(s.badge, "1", "still the critical count");
    assert_eq!(created(&s, &script), 1, "{:?}", s.events);
    assert_eq!(
        s.events.iter().filter(|(w, _)| w == "created").count(),
        3,
        "no alert notified twice: {:?}",
        s.events
    );

    // the popup lists the three, linking to the instance pages
    let mut popup = browser.open(&format!("chrome-extension://{EXT_ID}/popup.html"));
    popup.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 488, "height": 400, "deviceScaleFactor": 1, "mobile": false}),
    );
    wait_until("the popup lists the alerts", WAIT, || {
        popup.eval("document.querySelectorAll('#alerts li').length") == 3
    });
    let links = popup.eval(
        "Array.from(document.querySelectorAll('#alerts a.subject'), a => [a.textContent, a.href])",
    );
    let links: Vec<(String, String)> = serde_json::from_value(links).unwrap();
    assert_eq!(
        links,
        vec![
            (
                "111111/mysql/3307/mmo-east".into(),
                format!("{base}/instance/111111/mysql/3307")
            ),
            (
                "111111/mysql/3309/mmo-east".into(),
                format!("{base}/instance/111111/mysql/3309")
            ),
            (
                "111111/mysql/3308/mmo-east".into(),
                format!("{base}/instance/111111/mysql/3308")
            ),
        ],
        "in /api/alerts order: worst first, then by kind"
    );
    for (_, href) in &links {
        let path = href.strip_prefix(&base).unwrap();
        let (status, page) = http_get(port, path).unwrap();
        assert!(
            status == 200 && page.contains("Instance 111111:mysql:"),
            "{href}: {status}"
        );
    }
    let text = popup.eval("document.body.innerText");
    let text = text.as_str().unwrap();
    for m in [
        "1 critical",
        "2 warning",
        "client reported: backup script exited 2",
    ] {
        assert!(text.contains(m), "the popup says `{m}`:\n{text}");
    }
    let shot = popup.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    let shots = if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
    } else {
        b.dir.path().join("screenshots")
    };
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join("extension-popup.png"), &png).unwrap();
    eprintln!("popup screenshot in {}", shots.display());

    // 3. the critical alert resolved by a newer good backup: the badge
    // shows the warning count, amber; its notification is cleared
    push(&b, &[common::ok(3307, 5, 3600)]);
    let (ids, s) = settle(&mut w, port, "the resolved alert is cleared");
    assert_eq!(ids, BTreeSet::from([warn.clone(), script.clone()]));
    assert_eq!(s.badge, "2");
    assert_eq!(s.color, vec![227, 116, 0, 255], "warning: amber");
    assert!(!s.notifications.contains(&nid(&crit)));
    assert!(s.events.contains(&("cleared".into(), crit.clone())));

    // 4. and the new one too
    push(&b, &[common::ok(3309, 2, 3600)]);
    let (ids, s) = settle(&mut w, port, "the second resolved alert is cleared");
    assert_eq!(ids, BTreeSet::from([warn.clone()]));
    assert_eq!(s.badge, "1");
    assert_eq!(s.notifications, BTreeSet::from([nid(&warn)]));
    assert_eq!(
        s.events.iter().filter(|(w, _)| w == "created").count(),
        3,
        "resolving notifies nothing: {:?}",
        s.events
    );

    // serve gone: the badge says so, the notification stays
    serve.signal(libc::SIGTERM);
    assert_eq!(serve.wait_exit(Duration::from_secs(20)), Some(Some(0)));
    wait_until("the badge shows serve is unreachable", WAIT, || {
        shown(&mut w).badge == "?"
    });
    let s = shown(&mut w);
    assert_eq!(s.notifications, BTreeSet::from([nid(&warn)]));

    drop(browser.proc);
    indexer.signal(libc::SIGTERM);
    assert_eq!(indexer.wait_exit(Duration::from_secs(20)), Some(Some(0)));
}

/// The shipped files: Manifest V3, every script a file of the extension
/// (no inline script, nothing fetched from elsewhere, no library), and
/// every file the manifest or a page names present.
#[test]
fn extension_files_are_mv3_with_only_its_own_scripts() {
    let dir = extension_dir();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["manifest_version"], 3);
    assert_eq!(manifest["background"]["service_worker"], "background.js");
    let csp = manifest["content_security_policy"]["extension_pages"]
        .as_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let mut perms: Vec<&str> = manifest["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    perms.sort();
    assert_eq!(perms, ["alarms", "notifications", "storage"]);
    let mut named: Vec<String> = vec![
        "background.js".into(),
        manifest["action"]["default_popup"].as_str().unwrap().into(),
        manifest["options_ui"]["page"].as_str().unwrap().into(),
    ];
    for icon in manifest["icons"].as_object().unwrap().values() {
        named.push(icon.as_str().unwrap().into());
    }
    let mut scripts = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("html" | "js" | "css") => std::fs::read_to_string(&path).unwrap(),
            _ => continue,
        };
        let lower = text.to_ascii_lowercase();
        if name.ends_with(".html") {
            for tag in lower.split("<script").skip(1) {
                let open = tag.split('>').next().unwrap();
                let src = open
                    .split("src=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or_else(|| panic!("{name}: an inline script: <script{open}>"));
                assert!(
                    !src.contains(':') && !src.starts_with("//"),
                    "{name}: a script from elsewhere: {src}"
                );
                named.push(src.to_string());
                scripts += 1;
            }
            for tag in lower.split('<').skip(1) {
                let open = tag.split('>').next().unwrap();
                assert!(
                    !open
                        .split_whitespace()
                        .skip(1)
                        .any(|attr| attr.starts_with("on") && attr.contains('=')),
                    "{name}: an inline event handler: <{open}>"
                );
                assert!(
                    !open.contains("javascript:"),
                    "{name}: a javascript: URL: <{open}>"
                );
            }
        }
        if name.ends_with(".js") {
            for import in text
                .lines()
                .filter(|l| l.trim_start().starts_with("import "))
            {
                let from = import.split(['"', '\'']).nth(1).unwrap();
                assert!(from.starts_with("./"), "{name}: imports {from}");
                named.push(from.trim_start_matches("./").to_string());
            }
            assert!(
                !text.contains("eval(") && !text.contains("new Function"),
                "{name}: evaluates strings"
            );
        }
    }
    assert_eq!(
        scripts, 2,
        "popup.html and options.html each load one script"
    );
    for f in &named {
        assert!(dir.join(f).is_file(), "{f} is named but not shipped");
    }
}
