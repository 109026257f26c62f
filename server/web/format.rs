//! How the supervisor pages write numbers: durations a person reads at a
//! glance, shares as percentages with their interval, counts with thousands
//! separators. Pure functions, one place per spelling.

use crate::domain::dashboard::Rate;

/// A duration in milliseconds: "850 ms", "4.2 s", "3 min 05 s", "2 h 10 min";
/// "–" when absent.
pub fn duration_ms(ms: Option<f64>) -> String {
    let Some(ms) = ms.filter(|v| v.is_finite()) else {
        return "–".into();
    };
    let ms = ms.max(0.0);
    if ms < 1000.0 {
        format!("{} ms", ms.round() as i64)
    } else if ms < 60_000.0 {
        let s = ms / 1000.0;
        if s < 10.0 {
            format!("{s:.1} s")
        } else {
            format!("{} s", s.round() as i64)
        }
    } else if ms < 3_600_000.0 {
        let total = (ms / 1000.0).round() as i64;
        format!("{} min {:02} s", total / 60, total % 60)
    } else {
        let total = (ms / 60_000.0).round() as i64;
        format!("{} h {:02} min", total / 60, total % 60)
    }
}

/// A share as a percentage with one decimal ("4.2 %"), two below 1 %
/// ("0.35 %") because the auto-accept error target lives there.
pub fn percent(v: Option<f64>) -> String {
    match v.filter(|v| v.is_finite()) {
        None => "–".into(),
        Some(v) if v != 0.0 && v.abs() < 0.01 => format!("{:.2} %", v * 100.0),
        Some(v) => format!("{:.1} %", v * 100.0),
    }
}

/// A rate as "4.2 %" and its interval as "3.1–5.6 % of 1,204".
pub fn rate(r: &Rate) -> (String, String) {
    let value = percent(r.value);
    let detail = match (r.low, r.high) {
        (Some(low), Some(high)) => format!(
            "95 % CI {}–{} · n = {}",
            percent(Some(low)).trim_end_matches(" %"),
            percent(Some(high)),
            count(r.total)
        ),
        _ => format!("n = {}", count(r.total)),
    };
    (value, detail)
}

/// An integer with thin thousands separators: "1,234,567".
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with at most `decimals` decimals, "–" when absent.
pub fn number(v: Option<f64>, decimals: usize) -> String {
    match v.filter(|v| v.is_finite()) {
        None => "–".into(),
        Some(v) => format!("{v:.decimals$}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration_ms(None), "–");
        assert_eq!(duration_ms(Some(f64::NAN)), "–");
        assert_eq!(duration_ms(Some(849.6)), "850 ms");
        assert_eq!(duration_ms(Some(4_240.0)), "4.2 s");
        assert_eq!(duration_ms(Some(12_400.0)), "12 s");
        assert_eq!(duration_ms(Some(185_000.0)), "3 min 05 s");
        assert_eq!(duration_ms(Some(7_800_000.0)), "2 h 10 min");
        assert_eq!(duration_ms(Some(-5.0)), "0 ms");
    }

    #[test]
    fn percentages_keep_two_decimals_under_one_percent() {
        assert_eq!(percent(Some(0.042)), "4.2 %");
        assert_eq!(percent(Some(0.0035)), "0.35 %");
        assert_eq!(percent(Some(0.0)), "0.0 %");
        assert_eq!(percent(Some(1.0)), "100.0 %");
        assert_eq!(percent(None), "–");
    }

    #[test]
    fn rates_show_interval_and_sample_size() {
        let r = Rate {
            count: 3,
            total: 1204,
            value: Some(3.0 / 1204.0),
            low: Some(0.00086),
            high: Some(0.0073),
        };
        assert_eq!(
            rate(&r),
            ("0.25 %".into(), "95 % CI 0.09–0.73 % · n = 1,204".into())
        );
        let empty = Rate {
            count: 0,
            total: 0,
            value: None,
            low: None,
            high: None,
        };
        assert_eq!(rate(&empty), ("–".into(), "n = 0".into()));
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-45_000), "-45,000");
    }

    #[test]
    fn numbers_round_to_the_given_decimals() {
        assert_eq!(number(Some(0.7432), 3), "0.743");
        assert_eq!(number(None, 2), "–");
    }
}
