//! Inline SVG charts: no script, nothing fetched. Each bar has a `<title>`,
//! which browsers show on hover.
//!
//! SVG elements are always written with a body (`rect … {}` →
//! `<rect …></rect>`): in an HTML document, `<rect>` without a closing tag
//! would swallow its siblings.

use maud::{html, Markup};
use ubackup_catalog::web_stats::{Bucket, DAY_MS, HOUR_MS};

use super::html::{bytes, time};

const OK: &str = "#2e7d32";
const FAILED: &str = "#c62828";
const BYTES: &str = "#3b78c4";

/// The smallest "round" step (1, 2 or 5 × 10ⁿ) of at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= raw * (1.0 - 1e-9) {
            return m * p;
        }
    }
    10.0 * p
}

/// An axis up to at least `v` in at most 5 round steps: (max, step).
/// `min_step` keeps counts whole.
pub fn axis(v: f64, min_step: f64) -> (f64, f64) {
    let step = nice_step(v / 4.0).max(min_step);
    let max = (v / step).ceil().max(1.0) * step;
    (max, step)
}

/// A byte axis: round steps of the largest binary unit below `v`
/// (`0`, `10 GiB`, `20 GiB`, …) and the unit's name.
fn byte_axis(v: f64) -> (f64, f64, f64, &'static str) {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 1.0;
    let mut u = 0;
    while v >= unit * 1024.0 && u < UNITS.len() - 1 {
        unit *= 1024.0;
        u += 1;
    }
    let (max, step) = axis(v / unit, 0.0);
    (max * unit, step * unit, unit, UNITS[u])
}

/// Every bucket of length `len` from `since_ms` to `until_ms`, zeros where
/// the store returned none.
pub fn fill(buckets: &[Bucket], len: i64, since_ms: i64, until_ms: i64) -> Vec<Bucket> {
    let first = since_ms.div_euclid(len) * len;
    let mut out = Vec::new();
    let mut it = buckets.iter().peekable();
    let mut t = first;
    while t < until_ms {
        while it.peek().is_some_and(|b| b.start_ms < t) {
            it.next();
        }
        match it.peek() {
            Some(b) if b.start_ms == t => out.push((*b).clone()),
            _ => out.push(Bucket {
                start_ms: t,
                ..Default::default()
            }),
        }
        t += len;
    }
    out
}

struct Frame {
    w: f64,
    h: f64,
    left: f64,
    bottom: f64,
    top: f64,
}

impl Frame {
    fn plot_w(&self) -> f64 {
        self.w - self.left - 8.0
    }
    fn plot_h(&self) -> f64 {
        self.h - self.bottom - self.top
    }
    fn y(&self, v: f64, max: f64) -> f64 {
        self.top + self.plot_h() * (1.0 - v / max)
    }
}

fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// Horizontal grid lines and their labels, every `step` up to `max`.
fn grid(fr: &Frame, max: f64, step: f64, label: impl Fn(f64) -> String) -> Markup {
    let n = (max / step).round() as i64;
    html! {
        @for i in 0..=n {
            @let v = step * i as f64;
            @let y = fr.y(v, max);
            line x1=(f(fr.left)) x2=(f(fr.w - 8.0)) y1=(f(y)) y2=(f(y)) stroke=(if i == 0 { "#8a99a8" } else { "#e3e8ee" }) {}
            text x=(f(fr.left - 4.0)) y=(f(y + 4.0)) text-anchor="end" { (label(v)) }
        }
    }
}

/// Backups per hour, ok and failed stacked.
pub fn hourly(buckets: &[Bucket], since_ms: i64, until_ms: i64) -> Markup {
    let all = fill(buckets, HOUR_MS, since_ms, until_ms);
    let fr = Frame {
        w: 1100.0,
        h: 230.0,
        left: 46.0,
        bottom: 24.0,
        top: 8.0,
    };
    let (max, step) = axis(
        all.iter()
            .map(|b| (b.ok + b.failed) as f64)
            .fold(0.0, f64::max),
        1.0,
    );
    let bw = fr.plot_w() / all.len().max(1) as f64;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (fr.w) " " (fr.h)} width="100%" role="img" aria-label="backups per hour, ok and failed" {
            (grid(&fr, max, step, |v| format!("{}", v.round() as i64)))
            @for (i, b) in all.iter().enumerate() {
                @let x = fr.left + i as f64 * bw;
                @let y_ok = fr.y(b.ok as f64, max);
                @let y_all = fr.y((b.ok + b.failed) as f64, max);
                g {
                    title { (time(b.start_ms)) " UTC: " (b.ok) " ok, " (b.failed) " failed" }
                    rect x=(f(x + 0.3)) y=(f(y_ok)) width=(f((bw - 0.6).max(0.5))) height=(f(fr.y(0.0, max) - y_ok)) fill=(OK) {}
                    @if b.failed > 0 {
                        rect x=(f(x + 0.3)) y=(f(y_all)) width=(f((bw - 0.6).max(0.5))) height=(f(y_ok - y_all)) fill=(FAILED) {}
                    }
                }
                @if b.start_ms.rem_euclid(DAY_MS) == 0 {
                    line x1=(f(x)) x2=(f(x)) y1=(f(fr.top)) y2=(f(fr.h - fr.bottom + 4.0)) stroke="#c3ccd6" stroke-dasharray="2,3" {}
                    text x=(f(x + 3.0)) y=(f(fr.h - 6.0)) { (&time(b.start_ms)[5..10]) }
                }
            }
        }
        div.legend.muted { span style={"background:" (OK)} {} "ok" span style={"background:" (FAILED)} {} "failed" " · hours in UTC" }
    }
}

/// Bytes shipped per UTC day.
pub fn daily_bytes(buckets: &[Bucket], since_ms: i64, until_ms: i64) -> Markup {
    let all = fill(buckets, DAY_MS, since_ms, until_ms);
    let fr = Frame {
        w: 1100.0,
        h: 210.0,
        left: 64.0,
        bottom: 24.0,
        top: 18.0,
    };
    let (max, step, unit, unit_name) =
        byte_axis(all.iter().map(|b| b.bytes as f64).fold(0.0, f64::max));
    let bw = fr.plot_w() / all.len().max(1) as f64;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (fr.w) " " (fr.h)} width="100%" role="img" aria-label="bytes shipped per day" {
            (grid(&fr, max, step, |v| {
                let x = v / unit;
                if x == x.round() { format!("{x:.0} {unit_name}") } else { format!("{x:.1} {unit_name}") }
            }))
            @for (i, b) in all.iter().enumerate() {
                @let x = fr.left + i as f64 * bw;
                @let y = fr.y(b.bytes as f64, max);
                @let bar_w = (bw * 0.7).max(1.0);
                g {
                    title { (&time(b.start_ms)[..10]) ": " (bytes(b.bytes as i64)) " in " (b.ok) " backups" }
                    rect x=(f(x + bw * 0.15)) y=(f(y)) width=(f(bar_w)) height=(f(fr.y(0.0, max) - y)) fill=(BYTES) {}
                }
                @if b.bytes > 0 {
                    text x=(f(x + bw / 2.0)) y=(f(y - 4.0)) text-anchor="middle" { (bytes(b.bytes as i64)) }
                }
                text x=(f(x + bw / 2.0)) y=(f(fr.h - 6.0)) text-anchor="middle" { (&time(b.start_ms)[5..10]) }
            }
        }
    }
}

/// A node's disk usage as a small bar, coloured by the alert thresholds.
pub fn disk_bar(used_pct: Option<f64>, low_free_pct: f64, critical_free_pct: f64) -> Markup {
    let Some(p) = used_pct else {
        return html! { span.muted { "unknown" } };
    };
    let free = 100.0 - p;
    let color = if free < critical_free_pct {
        FAILED
    } else if free < low_free_pct {
        "#d98200"
    } else {
        BYTES
    };
    let w = 140.0;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width="140" height="12" viewBox="0 0 140 12" role="img" aria-label={(f(p)) "% used"} style="vertical-align:middle" {
            rect x="0" y="0" width=(w) height="12" rx="2" fill="#e3e8ee" {}
            rect x="0" y="0" width=(f(w * p.clamp(0.0, 100.0) / 100.0)) height="12" rx="2" fill=(color) {}
        }
        " " (f(p)) "%"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filling_and_scales() {
        let b = |t: i64, ok: u64| Bucket {
            start_ms: t,
            ok,
            ..Default::default()
        };
        let got = fill(
            &[b(HOUR_MS, 3), b(3 * HOUR_MS, 1)],
            HOUR_MS,
            10,
            4 * HOUR_MS,
        );
        assert_eq!(
            got.iter()
                .map(|x| (x.start_ms / HOUR_MS, x.ok))
                .collect::<Vec<_>>(),
            vec![(0, 0), (1, 3), (2, 0), (3, 1)]
        );
        assert_eq!(axis(0.0, 1.0), (1.0, 1.0));
        assert_eq!(axis(4.0, 1.0), (4.0, 1.0));
        assert_eq!(axis(5.0, 1.0), (6.0, 2.0));
        assert_eq!(axis(7.0, 1.0), (8.0, 2.0));
        assert_eq!(axis(120.0, 1.0), (150.0, 50.0));
        let gib = (1u64 << 30) as f64;
        let (max, step, unit, name) = byte_axis(39.9 * gib);
        assert_eq!(
            (max / gib, step / gib, unit, name),
            (40.0, 10.0, gib, "GiB")
        );
    }
}
