//! The people page and the store pages: frames rendered here, filled and
//! acted on by their scripts through the JSON API (`people.js`,
//! `stores.js`), like the other supervisor pages.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::format::percent;
use super::supervisor::Frame;
use crate::auth::Role;
use crate::db::stores;
use crate::error::Error;
use crate::http::extract::Path;
use crate::http::pages::{render, SupervisorPage};
use crate::AppState;

/// A store as a page lists it.
struct StoreChoice {
    id: String,
    name: String,
}

/// Store ids to names for a page's script, as JSON that cannot close the
/// `<script>` element it sits in.
fn names_json(list: &[StoreChoice]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = list
        .iter()
        .map(|s| (s.id.clone(), serde_json::Value::String(s.name.clone())))
        .collect();
    serde_json::Value::Object(map)
        .to_string()
        .replace('<', "\\u003c")
}

/// The stores the signed-in person covers.
async fn covered(
    state: &AppState,
    user: &crate::db::users::User,
) -> Result<Vec<StoreChoice>, Error> {
    Ok(stores::list(&state.db)
        .await?
        .into_iter()
        .filter(|s| user.scope.sees(&s.id))
        .map(|s| StoreChoice {
            id: s.id,
            name: s.name,
        })
        .collect())
}

#[derive(Template)]
#[template(path = "people.html")]
struct PeoplePage<'a> {
    frame: Frame<'a>,
    stores: Vec<StoreChoice>,
    store_names: String,
    all_allowed: bool,
    gold_floor: Option<String>,
}

/// The people page.
pub async fn people(
    State(state): State<AppState>,
    SupervisorPage { user, token }: SupervisorPage,
) -> Response {
    let stores = match covered(&state, &user).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let floor = state.config.gold_pause_floor;
    render(&PeoplePage {
        store_names: names_json(&stores),
        all_allowed: user.scope.is_all(),
        gold_floor: (floor > 0.0).then(|| percent(Some(floor))),
        frame: Frame::new(&user, &token, "people"),
        stores,
    })
}

#[derive(Template)]
#[template(path = "stores.html")]
struct StoresPage<'a> {
    frame: Frame<'a>,
    stores: Vec<StoreRow>,
}

struct StoreRow {
    id: String,
    name: String,
    webhook: String,
    training: &'static str,
    retention: i64,
}

/// The list of the stores the person covers.
pub async fn stores_page(
    State(state): State<AppState>,
    SupervisorPage { user, token }: SupervisorPage,
) -> Response {
    let list = match stores::list(&state.db).await {
        Ok(l) => l,
        Err(e) => return Error::from(e).into_response(),
    };
    render(&StoresPage {
        frame: Frame::new(&user, &token, "stores"),
        stores: list
            .into_iter()
            .filter(|s| user.scope.sees(&s.id))
            .map(|s| StoreRow {
                webhook: s.webhook_url.clone().unwrap_or_else(|| "none".into()),
                training: if s.training_allowed {
                    "allowed"
                } else {
                    "not allowed"
                },
                retention: s.media_retention_days,
                id: s.id,
                name: s.name,
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "store.html")]
struct StorePage<'a> {
    frame: Frame<'a>,
    store: stores::Store,
    webhook_url: String,
    can_change: bool,
}

/// One store's settings and deliveries.
pub async fn store_page(
    State(state): State<AppState>,
    SupervisorPage { user, token }: SupervisorPage,
    Path(store_id): Path<String>,
) -> Response {
    let store = match crate::review::admin::covered_store(&state.db, &user, &store_id).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    render(&StorePage {
        webhook_url: store.webhook_url.clone().unwrap_or_default(),
        can_change: user.role == Role::Admin,
        frame: Frame::new(&user, &token, "stores"),
        store,
    })
}
