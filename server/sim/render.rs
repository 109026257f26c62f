//! `recount simulate`'s text output: the policies side by side, and the
//! review rate / charge error chart.

use std::fmt::Write;

use super::{CurvePoint, PolicyOutcome, Report};

/// The report as text.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Store day: {} shoppers, {} events, seed {}\n",
        report.shoppers, report.events, report.seed
    );
    out.push_str(&table(&report.policies));
    out.push('\n');
    out.push_str(&chart(&report.curve, &report.marks));
    out
}

type Row = (&'static str, fn(&PolicyOutcome) -> String);

const ROWS: &[Row] = &[
    ("events to people", |p| {
        format!(
            "{} ({:.1} %)",
            p.figures.events_to_people,
            p.figures.review_rate * 100.0
        )
    }),
    ("receipts to people", |p| {
        format!("{:.1} %", p.figures.receipts_to_people * 100.0)
    }),
    ("audit samples (answered)", |p| {
        format!("{} ({})", p.figures.audits, p.figures.audits_answered)
    }),
    ("verdicts", |p| p.figures.verdicts.to_string()),
    ("escalated: deadline", |p| {
        p.figures.escalated.deadline.to_string()
    }),
    ("escalated: no one eligible", |p| {
        p.figures.escalated.no_eligible_labeler.to_string()
    }),
    ("escalated: disagreement", |p| {
        p.figures.escalated.disagreement.to_string()
    }),
    ("labeler-hours on duty", |p| {
        format!("{:.0}", p.figures.labeler_hours)
    }),
    ("labeler-hours answering", |p| {
        format!("{:.1}", p.figures.labeler_hours_busy)
    }),
    ("utilisation", |p| {
        format!("{:.0} %", p.figures.utilisation * 100.0)
    }),
    ("labeler-hours needed", |p| {
        p.needed_labeler_hours.to_string()
    }),
    ("auto-accepted (wrong)", |p| {
        format!(
            "{} ({})",
            p.figures.auto_accepted, p.figures.auto_accepted_errors
        )
    }),
    ("expected charge error $", |p| {
        dollars(p.figures.expected_charge_error_cents)
    }),
    ("true charge error $", |p| {
        dollars(p.figures.charge_error_cents as f64)
    }),
    ("  after audit adjustments $", |p| {
        dollars(p.figures.charge_error_after_adjustments_cents as f64)
    }),
    ("receipt adjustments", |p| p.figures.adjustments.to_string()),
    ("latency p50 / p95 / p99 s", |p| {
        format!(
            "{:.0} / {:.0} / {:.0}",
            p.figures.latency_p50_s, p.figures.latency_p95_s, p.figures.latency_p99_s
        )
    }),
    ("receipts past SLA", |p| p.figures.past_sla.to_string()),
    ("cost per 1,000 receipts $", |p| {
        dollars(p.figures.cost_per_1000_receipts_cents)
    }),
];

fn dollars(cents: f64) -> String {
    format!("{:.2}", cents / 100.0)
}

/// Each figure's label and its value for each policy, in order: the rows
/// of the text table and of the policy page's "What if".
pub fn rows(policies: &[PolicyOutcome]) -> Vec<(&'static str, Vec<String>)> {
    ROWS.iter()
        .map(|(label, f)| (*label, policies.iter().map(f).collect()))
        .collect()
}

/// The policies side by side, one column each.
pub fn table(policies: &[PolicyOutcome]) -> String {
    let names: Vec<&str> = policies.iter().map(|p| p.figures.policy.as_str()).collect();
    columns(&names, &rows(policies))
}

/// A table of `rows` (a label and a value per column) under `names`,
/// values right-aligned.
fn columns(names: &[&str], rows: &[(&str, Vec<String>)]) -> String {
    let width = |s: &str| s.chars().count();
    let label_width = rows.iter().map(|r| width(r.0)).max().unwrap_or(0) + 2;
    let widths: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(c, name)| {
            rows.iter()
                .map(|r| width(&r.1[c]))
                .chain([width(name)])
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    let mut out = format!("{:label_width$}", "");
    for (name, w) in names.iter().zip(&widths) {
        let _ = write!(out, "{name:>w$}");
    }
    out.push('\n');
    for (label, values) in rows {
        let _ = write!(out, "{label:label_width$}");
        for (v, w) in values.iter().zip(&widths) {
            let _ = write!(out, "{v:>w$}");
        }
        out.push('\n');
    }
    out
}

/// A replay's policies side by side.
pub fn replay_table(policies: &[super::replay::Replayed]) -> String {
    let names: Vec<&str> = policies.iter().map(|p| p.policy.as_str()).collect();
    columns(&names, &replay_rows(policies))
}

/// A replay's figures, a value per policy: [`replay_table`]'s rows and the
/// policy page's.
pub fn replay_rows(policies: &[super::replay::Replayed]) -> Vec<(&'static str, Vec<String>)> {
    let money = |c: Option<f64>| c.map_or("no estimate".to_string(), dollars);
    vec![
        (
            "events",
            policies.iter().map(|p| p.events.to_string()).collect(),
        ),
        (
            "to people",
            policies
                .iter()
                .map(|p| format!("{} ({:.1} %)", p.to_people, p.review_rate * 100.0))
                .collect(),
        ),
        (
            "auto-accepted",
            policies
                .iter()
                .map(|p| p.auto_accepted.to_string())
                .collect(),
        ),
        (
            "audits it would draw",
            policies
                .iter()
                .map(|p| format!("{:.0}", p.expected_audits))
                .collect(),
        ),
        (
            "labelled among them",
            policies.iter().map(|p| p.labelled.to_string()).collect(),
        ),
        (
            "charge error $ (est.)",
            policies
                .iter()
                .map(|p| money(p.charge_error_cents))
                .collect(),
        ),
        (
            "  95 % interval $",
            policies
                .iter()
                .map(
                    |p| match (p.charge_error_low_cents, p.charge_error_high_cents) {
                        (Some(l), Some(h)) => format!("{} – {}", dollars(l), dollars(h)),
                        _ => "–".into(),
                    },
                )
                .collect(),
        ),
    ]
}

const WIDTH: usize = 60;
const HEIGHT: usize = 16;

/// Review rate (x) against expected charge error per 1,000 receipts (y):
/// threshold routing at 0.50–0.99 as dots, each policy as its letter.
pub fn chart(curve: &[CurvePoint], marks: &[CurvePoint]) -> String {
    let all = curve.iter().chain(marks);
    let x_max = all
        .clone()
        .map(|p| p.review_rate)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let y_max = all
        .map(|p| p.expected_error_per_1000_cents)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let mut grid = vec![vec![' '; WIDTH]; HEIGHT];
    let mut put = |p: &CurvePoint, c: char| {
        let x = ((p.review_rate / x_max) * (WIDTH - 1) as f64).round() as usize;
        let y = ((p.expected_error_per_1000_cents / y_max) * (HEIGHT - 1) as f64).round() as usize;
        grid[HEIGHT - 1 - y.min(HEIGHT - 1)][x.min(WIDTH - 1)] = c;
    };
    for p in curve {
        put(p, '.');
    }
    for (i, p) in marks.iter().enumerate() {
        put(p, letter(i));
    }
    let mut out = String::from(
        "Expected charge error per 1,000 receipts ($) against review rate;\n\
         dots: threshold routing at 0.50 to 0.99; letters: the policies above, in order.\n",
    );
    for (row, line) in grid.iter().enumerate() {
        let label = if row == 0 {
            dollars(y_max)
        } else if row == HEIGHT - 1 {
            "0".to_string()
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{label:>8} |{}",
            line.iter().collect::<String>().trim_end()
        );
    }
    let _ = writeln!(out, "{:>8} +{}", "", "-".repeat(WIDTH));
    let _ = writeln!(
        out,
        "{:>8}  0{:>w$}",
        "",
        format!("{:.0} % of events reviewed", x_max * 100.0),
        w = WIDTH - 1
    );
    out
}

/// A policy's letter on the chart.
pub fn letter(i: usize) -> char {
    (b'A' + (i % 26) as u8) as char
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_puts_each_policy_where_its_figures_are() {
        let curve: Vec<CurvePoint> = (0..5)
            .map(|i| CurvePoint {
                threshold: Some(0.5 + i as f64 / 10.0),
                review_rate: i as f64 / 10.0,
                expected_error_per_1000_cents: 400.0 - 100.0 * i as f64,
            })
            .collect();
        let marks = [CurvePoint {
            threshold: None,
            review_rate: 0.4,
            expected_error_per_1000_cents: 0.0,
        }];
        let text = chart(&curve, &marks);
        let lines: Vec<&str> = text.lines().collect();
        // Top line: the highest error at no review, a dot at x = 0.
        assert!(lines[2].starts_with("    4.00 |."), "{}", lines[2]);
        // Bottom line: the policy at the largest review rate and no error.
        assert!(
            lines[2 + HEIGHT - 1].ends_with('A'),
            "{}",
            lines[2 + HEIGHT - 1]
        );
        assert!(text.contains("40 % of events reviewed"));
    }
}
