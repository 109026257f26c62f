//! Query strings that the JSON API and the pages both read.

use serde::Deserialize;
use utoipa::IntoParams;

/// Query of the threshold recommendation (the API's and the policy page's).
#[derive(Debug, Deserialize, IntoParams)]
pub struct RecommendationQuery {
    /// Highest acceptable auto-accept error rate, above 0 and below 1
    /// (default 0.005).
    #[param(value_type = Option<f64>, exclusive_minimum = 0, exclusive_maximum = 1)]
    pub target: Option<String>,
}
