//! The page frame (navigation, style, login state), the error page, the
//! response headers every page gets, and small formatters.
//!
//! Escaping rule: pages are maud templates, which escape every `(expr)`.
//! Nothing dynamic is ever wrapped in `PreEscaped`; the one raw string is
//! the static [`STYLE`].

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::viewer::Viewer;

/// Which navigation entry is highlighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Stats,
    Alerts,
    Control,
    None,
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC",sans-serif;color:#1d2733;background:#f4f6f8}
header{background:#1f2d3d;color:#fff;display:flex;align-items:center;gap:18px;padding:0 20px;height:46px}
header .brand{font-weight:700;letter-spacing:.5px;margin-right:10px}
header a{color:#c9d6e3;text-decoration:none;padding:13px 4px}
header a.on{color:#fff;border-bottom:3px solid #4fa3f7}
header .who{margin-left:auto;font-size:13px;color:#c9d6e3;display:flex;gap:8px;align-items:center}
header .who form{margin:0}
header button{background:none;border:1px solid #6b7f94;color:#e6edf3;border-radius:3px;padding:2px 8px;cursor:pointer}
main{padding:18px 20px;max-width:1320px}
h1{font-size:20px;margin:0 0 12px}
h2{font-size:16px;margin:22px 0 8px}
.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:12px 14px;margin-bottom:14px}
.kpis{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:14px}
.kpi{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:10px 14px;min-width:150px}
.kpi .v{font-size:22px;font-weight:600}
.kpi .l{color:#5b6b7c;font-size:12px;text-transform:uppercase;letter-spacing:.4px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6ebf0;vertical-align:top}
th{background:#eef2f6;font-weight:600;font-size:12px;color:#3c4b5b;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre.cmd{background:#10171f;color:#e6edf3;padding:6px 9px;border-radius:4px;margin:2px 0;white-space:pre-wrap;word-break:break-all;font-size:12px}
.ok{color:#1e7b34}.bad{color:#b3261e}.warn{color:#a15c00}.muted{color:#6b7a89}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:#6b7a89}
.badge.ok{background:#2e7d32;color:#fff}.badge.warning{background:#d98200;color:#fff}.badge.critical{background:#c62828;color:#fff}.badge.unknown{background:#5e35b1;color:#fff}
.badge.down{background:#c62828;color:#fff}.badge.paused{background:#d98200;color:#fff}.badge.up{background:#2e7d32;color:#fff}
form.inline{display:inline;margin:0}
.filters{display:flex;gap:10px;align-items:end;flex-wrap:wrap;margin-bottom:12px}
.filters label{font-size:12px;color:#3c4b5b;display:flex;flex-direction:column;gap:2px}
input,select,button{font:inherit;font-size:13px}
input[type=text],input[type=password],input[type=number],select{padding:3px 6px;border:1px solid #b9c4cf;border-radius:3px;background:#fff}
button.act{padding:2px 9px;border-radius:3px;border:1px solid #8394a5;background:#f7f9fb;cursor:pointer}
button.danger{border-color:#c62828;color:#b3261e}
.note{background:#fff8e1;border:1px solid #f0d68a;padding:8px 12px;border-radius:5px;margin-bottom:14px}
.err{background:#fdecea;border:1px solid #f2b8b5;padding:10px 14px;border-radius:5px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px;vertical-align:middle}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#4b5b6b}
.nowrap{white-space:nowrap}
tr.cmdrow td{border-top:none;padding-top:0}
tr.cmdrow pre.cmd{display:inline-block;margin:0}
tr.hasrow td{border-bottom:none}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:14px}
@media (max-width:900px){.grid2{grid-template-columns:1fr}}
"#;

/// The whole page around `body`.
pub fn frame(title: &str, nav: Nav, viewer: &Viewer, body: Markup) -> Html<String> {
    let item = |n: Nav, href: &'static str, label: &'static str| {
        html! { a class=[(n == nav).then_some("on")] href=(href) { (label) } }
    };
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · ubackup" }
                    style { (PreEscaped(STYLE)) }
                }
                body {
                    header {
                        span.brand { "ubackup" }
                        (item(Nav::Overview, "/", "Overview"))
                        (item(Nav::Stats, "/stats", "Statistics"))
                        (item(Nav::Alerts, "/alerts", "Alerts"))
                        (item(Nav::Control, "/control", "Cluster control"))
                        span.who { (viewer.header()) }
                    }
                    main { (body) }
                }
            }
        }
        .into_string(),
    )
}

/// An error page (the status is set by the caller).
pub fn error_page(status: StatusCode, title: &str, detail: &str) -> Html<String> {
    frame(
        title,
        Nav::None,
        &Viewer::anonymous(),
        html! {
            h1 { (status.as_u16()) " " (title) }
            div.err { (detail) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

/// Headers for every page: no script may run, nothing may be loaded from
/// elsewhere, forms post only here, no framing (clickjacking of the write
/// buttons), and pages are not cached (they show the live cluster).
pub async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `2026-11-21 10:00:00` (UTC; the pages say so once).
pub fn time(ms: i64) -> String {
    crate::format::utc(ms).trim_end_matches(" UTC").to_string()
}

/// `2026-11-21T10:00:00.123Z`: RFC 3339 to the millisecond, which
/// `ubackup-client restore --at` reads back exactly.
pub fn rfc3339_ms(ms: i64) -> String {
    format!("{}.{:03}Z", time(ms).replace(' ', "T"), ms.rem_euclid(1000))
}

/// One shell word: as is when it is plainly safe, else single-quoted.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,:/@%+=".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn bytes(n: i64) -> String {
    crate::format::bytes(n.max(0) as u64)
}

/// The link to an instance's page.
pub fn instance_href(server_id: i64, back_type: &str, instance: i64) -> String {
    format!(
        "/instance/{server_id}/{}/{instance}",
        path_segment(back_type)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatters() {
        assert_eq!(time(1_763_800_000_000), "2025-11-22 08:26:40");
        assert_eq!(rfc3339_ms(1_763_800_000_123), "2025-11-22T08:26:40.123Z");
        assert_eq!(shell_word("mysql"), "mysql");
        assert_eq!(shell_word("my sql'x"), "'my sql'\\''x'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(instance_href(1, "a/b c", 2), "/instance/1/a%2Fb%20c/2");
    }
}
