//! The policy page's simulations: "What if" (the store's policy against
//! others on a simulated day) and "Replay" (the same over the store's own
//! past events), each a form and, once run, a table with a column per
//! policy.

use crate::domain::routing::RoutingPolicy;
use crate::domain::time::{date_and_weekday, parse_date_ms};
use crate::error::Error;
use crate::review::replay::{self, ReplayError};
use crate::sim::forecast::DAY;
use crate::sim::{render as sim_render, whatif};
use crate::AppState;

/// The policy page's query: the recommendation's target, a what-if and a
/// replay.
#[derive(Debug, serde::Deserialize)]
pub(super) struct PolicyPageQuery {
    /// Highest acceptable auto-accept error (the recommendation's).
    pub(super) target: Option<String>,
    /// Policies to compare with the store's, one `recount simulate` spec a
    /// line.
    whatif: Option<String>,
    /// Shoppers of the simulated day.
    shoppers: Option<String>,
    /// Policies to replay beside the store's, one spec a line.
    replay: Option<String>,
    /// First day replayed (`YYYY-MM-DD`, UTC).
    replay_from: Option<String>,
    /// Last day replayed, included.
    replay_to: Option<String>,
}

/// One figure of a comparison, a value per policy.
pub(super) struct FigureRow {
    pub(super) label: &'static str,
    pub(super) values: Vec<String>,
}

fn figure_rows(rows: Vec<(&'static str, Vec<String>)>) -> Vec<FigureRow> {
    rows.into_iter()
        .map(|(label, values)| FigureRow { label, values })
        .collect()
}

/// Policies compared by default: the store's against these.
const DEFAULT_SPECS: &str = "charge-aware\nthreshold,threshold=0.95";

/// The "What if" section: the form as asked, and the comparison once run.
pub(super) struct WhatIfView {
    pub(super) specs: String,
    pub(super) shoppers: String,
    pub(super) error: Option<String>,
    pub(super) names: Vec<String>,
    pub(super) rows: Vec<FigureRow>,
    pub(super) events: u64,
}

impl WhatIfView {
    /// Runs the what-if of `query`, if it asks for one. The simulation is
    /// CPU work: it runs on the blocking pool.
    pub(super) async fn of(
        query: &PolicyPageQuery,
        policy: &RoutingPolicy,
        review_cost: f64,
    ) -> WhatIfView {
        let mut view = WhatIfView {
            specs: query.whatif.clone().unwrap_or_else(|| DEFAULT_SPECS.into()),
            shoppers: query
                .shoppers
                .clone()
                .unwrap_or_else(|| whatif::DEFAULT_SHOPPERS.to_string()),
            error: None,
            names: Vec::new(),
            rows: Vec::new(),
            events: 0,
        };
        let Some(specs) = query.whatif.clone() else {
            return view;
        };
        let Ok(shoppers) = view.shoppers.trim().parse::<u32>() else {
            view.error = Some(format!(
                "shoppers: {:?} is not a whole number",
                view.shoppers
            ));
            return view;
        };
        let policy = policy.clone();
        let run = tokio::task::spawn_blocking(move || {
            whatif::what_if(&policy, review_cost, &specs, shoppers, 1)
        })
        .await;
        match run {
            Ok(Ok(report)) => {
                view.names = report
                    .policies
                    .iter()
                    .map(|p| p.figures.policy.clone())
                    .collect();
                view.rows = figure_rows(sim_render::rows(&report.policies));
                view.events = report.events;
            }
            Ok(Err(e)) => view.error = Some(e.to_string()),
            Err(e) => view.error = Some(format!("the simulation stopped: {e}")),
        }
        view
    }
}

/// Days a replay covers when none are asked for: the last week.
const DEFAULT_DAYS: i64 = 7;

/// The "Replay" section: the form as asked, and the comparison once run.
pub(super) struct ReplayView {
    pub(super) specs: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) error: Option<String>,
    pub(super) names: Vec<String>,
    pub(super) rows: Vec<FigureRow>,
    /// What was replayed, for people.
    pub(super) summary: String,
}

impl ReplayView {
    /// Runs the replay of `query` over `store_id`'s history, if it asks for
    /// one. A refused replay says why beside the form; a failed read of
    /// the history is an error of the page.
    pub(super) async fn of(
        state: &AppState,
        store_id: &str,
        query: &PolicyPageQuery,
    ) -> Result<ReplayView, Error> {
        let today = state.now().div_euclid(DAY) * DAY;
        let day = |ms: i64| date_and_weekday(ms).0;
        let mut view = ReplayView {
            specs: query.replay.clone().unwrap_or_else(|| DEFAULT_SPECS.into()),
            from: query
                .replay_from
                .clone()
                .unwrap_or_else(|| day(today - (DEFAULT_DAYS - 1) * DAY)),
            to: query.replay_to.clone().unwrap_or_else(|| day(today)),
            error: None,
            names: Vec::new(),
            rows: Vec::new(),
            summary: String::new(),
        };
        let Some(specs) = query.replay.as_deref() else {
            return Ok(view);
        };
        match view.run(state, store_id, specs).await {
            Ok(()) => {}
            Err(ReplayError::Refused(m)) => view.error = Some(m),
            Err(ReplayError::Failed(e)) => return Err(Error::Internal(e)),
        }
        Ok(view)
    }

    async fn run(
        &mut self,
        state: &AppState,
        store_id: &str,
        specs: &str,
    ) -> Result<(), ReplayError> {
        let refuse = |m: String| ReplayError::Refused(m);
        let date = |name: &str, text: &str| {
            parse_date_ms(text.trim())
                .ok_or_else(|| refuse(format!("{name}: {text:?} is not a day written YYYY-MM-DD")))
        };
        let from = date("from", &self.from)?;
        let to = date("to", &self.to)? + DAY;
        let policies = whatif::parse_policies(specs).map_err(|e| refuse(e.0))?;
        let report = replay::replay(
            &state.db,
            store_id,
            from,
            to,
            &policies,
            state.config.labor_cost(),
            state.now(),
        )
        .await?;
        self.names = report.policies.iter().map(|p| p.policy.clone()).collect();
        self.rows = figure_rows(sim_render::replay_rows(&report.policies));
        self.summary = format!(
            "{} events from {} to {} (UTC){}; audit samples weighed at the store's audit rate {}.",
            report.events,
            self.from.trim(),
            self.to.trim(),
            if report.skipped > 0 {
                format!(
                    ", {} left out: a product no longer in the catalog",
                    report.skipped
                )
            } else {
                String::new()
            },
            report.audit_rate
        );
        Ok(())
    }
}
