//! Named samples and their summaries.

use std::collections::BTreeMap;

/// Median (mean of the two middle values for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// Nearest-rank percentile (`p` in 0..=100): with 100 samples, p99 is the
/// 99th smallest.
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    Some(s[rank.min(s.len()) - 1])
}

/// Every figure of a harness run, one value per run, by name
/// (`small.ub.w4`, `small.raw.w4`, …), plus free-text notes.
#[derive(Debug, Default)]
pub struct Samples {
    pub values: BTreeMap<String, Vec<f64>>,
    pub notes: Vec<String>,
}

impl Samples {
    pub fn add(&mut self, key: &str, v: f64) {
        eprintln!("    {key} = {v:.4}");
        self.values.entry(key.to_string()).or_default().push(v);
    }

    pub fn note(&mut self, text: impl Into<String>) {
        let t = text.into();
        eprintln!("    note: {t}");
        self.notes.push(t);
    }

    pub fn median(&self, key: &str) -> Option<f64> {
        self.values.get(key).and_then(|v| median(v))
    }

    pub fn max(&self, key: &str) -> Option<f64> {
        self.values
            .get(key)
            .and_then(|v| v.iter().copied().reduce(f64::max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }
}
