//! `serve`: `/metrics` parses as Prometheus text, `/api/alerts` and
//! `/api/status` are the same JSON as the CLI's.

use crate::common;

use std::collections::HashMap;

use common::*;
use ubackup_common::keys::state;
use ubackup_common::message::now_ms;
use ubackup_common::shutdown;

/// A strict reader of the text exposition format 0.0.4: every line is a
/// `# HELP`/`# TYPE` comment or `name{label="value",...} number`, names
/// match `[a-zA-Z_:][a-zA-Z0-9_:]*`, label values use only the escapes
/// `\\`, `\"` and `\n`. Panics on anything else.
fn strict_parse(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    fn name_ok(n: &str) -> bool {
        let mut c = n.chars();
        matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_' || x == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, tail) = (
                parts.next().unwrap(),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            assert!(
                matches!(kw, "HELP" | "TYPE") && name_ok(name) && !tail.is_empty(),
                "bad comment line: {line}"
            );
            if kw == "TYPE" {
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail),
                    "{line}"
                );
            }
            continue;
        }
        assert!(!line.is_empty(), "empty line in exposition");
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(name_ok(name), "bad metric name: {line}");
        let mut labels = HashMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            loop {
                let start = chars
                    .peek()
                    .map(|(i, _)| *i)
                    .unwrap_or_else(|| panic!("unterminated labels: {line}"));
                if r[start..].starts_with('}') {
                    rest = &r[start + 1..];
                    break;
                }
                let eq = r[start..]
                    .find('=')
                    .unwrap_or_else(|| panic!("label without =: {line}"))
                    + start;
                let lname = &r[start..eq];
                assert!(
                    name_ok(lname) && !lname.contains(':'),
                    "bad label name {lname}: {line}"
                );
                assert_eq!(&r[eq + 1..eq + 2], "\"", "label value not quoted: {line}");
                while chars.peek().map(|(i, _)| *i <= eq + 1).unwrap_or(false) {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            other => panic!("bad escape {other:?}: {line}"),
                        },
                        Some((_, '"')) => break,
                        Some((_, '\n')) | None => panic!("unterminated label value: {line}"),
                        Some((_, c)) => value.push(c),
                    }
                }
                labels.insert(lname.to_string(), value);
                match chars.peek() {
                    Some((_, ',')) => {
                        chars.next();
                    }
                    Some((_, '}')) => {}
                    other => panic!("expected , or }} after a label, got {other:?}: {line}"),
                }
            }
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {line}"));
        let v: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value `{v}`: {line}")),
        };
        out.push((name.to_string(), labels, v));
    }
    out
}

async fn start(
    b: &Bench,
) -> (
    String,
    shutdown::ShutdownTrigger,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (trigger, sd) = shutdown::channel();
    let task = tokio::spawn(ubackup_reporter::serve::serve(b.cfg(), listener, sd));
    (base, trigger, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_api_serves_json() {
    let b = Bench::new("backlog_threshold = 2\n");
    b.node(
        "5",
        true,
        &[(state::DISK_TOTAL, "1000"), (state::DISK_FREE, "80")],
    );
    b.node("bad\"node", false, &[]);
    let mut c = b.conn();
    for i in 0..3 {
        redis::cmd("LPUSH")
            .arg(&b.q1)
            .arg(message(1, i, now_ms() / 1000 - 30))
            .query::<()>(&mut c)
            .unwrap();
    }
    redis::cmd("LPUSH")
        .arg(b.keys.dead(&b.q2))
        .arg("{}")
        .query::<()>(&mut c)
        .unwrap();
    b.store(vec![
        ok(1, 100, 3600),
        ok(2, 100, 3600),
        client_failed(3, 100, "x"),
    ])
    .await;
    let (base, trigger, task) = start(&b).await;
    let http = reqwest::Client::new();

    let resp = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    let lines: Vec<std::io::Result<String>> = text.lines().map(|l| Ok(l.to_string())).collect();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).expect("valid Prometheus text");
    let get = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{text}"));
        match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v)
            | prometheus_parse::Value::Counter(v) => v,
            ref other => panic!("{name}: unexpected {other:?}"),
        }
    };
    assert_eq!(get("ubackup_redis_up", &[]), 1.0);
    assert_eq!(
        get(
            "ubackup_queue_depth",
            &[("list", &b.q1), ("kind", "priority")]
        ),
        3.0
    );
    assert!(get("ubackup_queue_oldest_age_seconds", &[("list", &b.q1)]) >= 30.0);
    assert_eq!(
        get("ubackup_dead_letters", &[("list", &b.keys.dead(&b.q2))]),
        1.0
    );
    assert_eq!(get("ubackup_node_disk_free_bytes", &[("node", "5")]), 80.0);
    assert_eq!(get("ubackup_node_up", &[("node", "5")]), 1.0);
    // a quote in a label value is escaped and read back intact by the
    // strict reader (prometheus-parse keeps escapes as they are)
    let strict = strict_parse(&text);
    assert_eq!(strict.len(), scrape.samples.len());
    let bad = strict.iter().find(|(n, l, _)| {
        n == "ubackup_node_up" && l.get("node").map(String::as_str) == Some("bad\"node")
    });
    assert_eq!(bad.map(|s| s.2), Some(0.0), "{text}");
    assert_eq!(
        get("ubackup_backups_24h", &[("node", "n1"), ("result", "ok")]),
        2.0
    );
    assert_eq!(
        get(
            "ubackup_backups_24h",
            &[("node", "n1"), ("result", "failed")]
        ),
        1.0
    );
    assert_eq!(
        get("ubackup_bytes_24h", &[("node", "n1")]),
        (100u64 << 20) as f64
    );
    assert_eq!(get("ubackup_instances", &[]), 3.0);
    assert_eq!(get("ubackup_instances_overdue", &[]), 0.0);
    assert_eq!(
        get(
            "ubackup_alerts",
            &[("kind", "node_down"), ("severity", "CRITICAL")]
        ),
        1.0
    );
    assert_eq!(get("ubackup_health", &[]), 2.0);
    // every family has HELP and TYPE gauge
    let types: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for s in &scrape.samples {
        assert_eq!(types.get(s.metric.as_str()), Some(&"gauge"), "{}", s.metric);
    }

    let alerts: serde_json::Value = http
        .get(format!("{base}/api/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts["status"], "critical");
    let kinds: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    for k in [
        "node_down",
        "node_disk_low",
        "queue_backlog",
        "dead_letters",
        "script_error",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    // the original extension's path answers too, with CORS for browsers
    let resp = http.get(format!("{base}/api/alert")).send().await.unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let status: serde_json::Value = http
        .get(format!("{base}/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["instances"]["failing"], 1);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 2);

    trigger.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_503_and_redis_up_zero() {
    let mut b = Bench::new("");
    let (base, trigger, task) = start(&b).await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/api/alerts"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    b.redis.kill9();
    let resp = http.get(format!("{base}/api/alerts")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "unknown");
    let m = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("ubackup_redis_up 0"), "{m}");
    // Redis back: the endpoint reconnects by itself
    b.redis.restart().unwrap();
    ubackup_testkit::wait_until_async(
        "endpoint reconnects",
        std::time::Duration::from_secs(15),
        || {
            let (http, base) = (http.clone(), base.clone());
            async move {
                http.get(format!("{base}/api/alerts"))
                    .send()
                    .await
                    .map(|r| r.status() == 200)
                    .unwrap_or(false)
            }
        },
    )
    .await;
    trigger.trigger();
    task.await.unwrap().unwrap();
}
