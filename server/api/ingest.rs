//! Store-facing endpoints: catalog, events, session exit, receipts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

use crate::db::{products, receipts};
use crate::domain::event::{check_id, ClientId, EventInput};
use crate::domain::receipt::Receipt;
use crate::domain::time::parse_rfc3339_ms;
use crate::error::{Code, Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{Caller, Json, Path, Query, StoreCaller};
use crate::review::ingest::{self, Incoming, Outcome};
use crate::AppState;

/// A product of a store's catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Stock-keeping unit, unique per store.
    #[schema(value_type = ClientId)]
    pub sku: String,
    /// Display name: 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// Unit price in cents (0 or more).
    #[serde(deserialize_with = "crate::domain::whole::number")]
    #[schema(minimum = 0)]
    pub price_cents: i64,
    /// Optional product image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

impl From<products::Product> for Product {
    fn from(p: products::Product) -> Product {
        Product {
            sku: p.sku,
            name: p.name,
            price_cents: p.price_cents,
            image_url: p.image_url,
        }
    }
}

impl From<Product> for products::Product {
    fn from(p: Product) -> products::Product {
        products::Product {
            sku: p.sku,
            name: p.name,
            price_cents: p.price_cents,
            image_url: p.image_url,
        }
    }
}

/// The answer to one ingested event (also the answer replayed on a retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IngestOutcome {
    /// The store's event id.
    pub event_id: String,
    /// `auto_accepted` or `review`.
    pub route: String,
    /// Why the event went to review.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The review task, when one was opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

impl From<Outcome> for IngestOutcome {
    fn from(o: Outcome) -> IngestOutcome {
        IngestOutcome {
            event_id: o.event_id,
            route: o.route,
            reason: o.reason,
            task_id: o.task_id,
        }
    }
}

/// Most products in one catalog upload.
pub const MAX_PRODUCTS: usize = 10_000;

/// A catalog upload as the OpenAPI document describes it: at most
/// [`MAX_PRODUCTS`] products, each sku once.
pub struct CatalogUpload;

impl utoipa::PartialSchema for CatalogUpload {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("Product"))
            .max_items(Some(MAX_PRODUCTS))
            .into()
    }
}

impl ToSchema for CatalogUpload {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        crate::api::contract::register::<Product>(schemas);
    }
}

/// Answer to a catalog upload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpsertedProducts {
    /// Products inserted or updated.
    pub upserted: usize,
}

/// Inserts or updates products of the caller's catalog.
#[utoipa::path(put, path = "/api/v1/products", tag = "store", security(("bearer" = [])),
    request_body = CatalogUpload,
    responses(
        (status = 200, body = UpsertedProducts),
        (status = 422, description = "invalid product (`invalid-id`, `invalid-name`, `invalid-price`, `duplicate-sku`)", body = ErrorBody),
    ))]
pub async fn put_products(
    State(state): State<AppState>,
    StoreCaller(store): StoreCaller,
    Json(list): Json<Vec<Product>>,
) -> Result<axum::Json<UpsertedProducts>> {
    if list.len() > MAX_PRODUCTS {
        return Err(Error::new(
            Code::TooManyProducts,
            format!("at most {MAX_PRODUCTS} products per request"),
        ));
    }
    for (i, p) in list.iter().enumerate() {
        check_id(&format!("[{i}].sku"), &p.sku)?;
        if p.name.trim().is_empty() || p.name.chars().count() > 200 {
            return Err(Error::new(
                Code::InvalidName,
                format!("[{i}].name must be 1 to 200 characters"),
            ));
        }
        if p.price_cents < 0 {
            return Err(Error::new(
                Code::InvalidPrice,
                format!("[{i}].price_cents must not be negative"),
            ));
        }
        if list[..i].iter().any(|o| o.sku == p.sku) {
            return Err(Error::new(
                Code::DuplicateSku,
                format!("[{i}].sku {:?} appears twice", p.sku),
            ));
        }
    }
    let upserted = list.len();
    let rows: Vec<products::Product> = list.into_iter().map(Into::into).collect();
    ingest::upsert_products(&state.db, &store.id, &rows, state.now()).await?;
    Ok(axum::Json(UpsertedProducts { upserted }))
}

/// The caller's catalog.
#[utoipa::path(get, path = "/api/v1/products", tag = "store", security(("bearer" = [])),
    responses((status = 200, body = Vec<Product>)))]
pub async fn list_products(
    State(state): State<AppState>,
    StoreCaller(store): StoreCaller,
) -> Result<axum::Json<Vec<Product>>> {
    let list = products::list(&state.db, &store.id).await?;
    Ok(axum::Json(list.into_iter().map(Into::into).collect()))
}

/// One event, or an array of 1 to `max_batch_events` events (the default,
/// 1000, is what the OpenAPI document states).
struct EventsBody;

impl utoipa::PartialSchema for EventsBody {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
        use utoipa::openapi::Ref;
        let batch = ArrayBuilder::new()
            .items(Ref::from_schema_name("EventInput"))
            .min_items(Some(1))
            .max_items(Some(crate::config::Config::default().max_batch_events));
        OneOfBuilder::new()
            .item(Ref::from_schema_name("EventInput"))
            .item(batch)
            .into()
    }
}

impl ToSchema for EventsBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        crate::api::contract::register::<EventInput>(schemas);
    }
}

/// The answer to `POST /api/v1/events`: one outcome for one event, an array
/// of outcomes (in request order) for an array of events.
struct IngestAnswer;

impl utoipa::PartialSchema for IngestAnswer {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
        use utoipa::openapi::Ref;
        OneOfBuilder::new()
            .item(Ref::from_schema_name("IngestOutcome"))
            .item(ArrayBuilder::new().items(Ref::from_schema_name("IngestOutcome")))
            .into()
    }
}

impl ToSchema for IngestAnswer {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        crate::api::contract::register::<IngestOutcome>(schemas);
    }
}

/// Routes events; replays of a stored event id return the stored answer.
///
/// An array is stored all or nothing: the first invalid event refuses the
/// whole batch, its index named in the message.
#[utoipa::path(post, path = "/api/v1/events", tag = "store", security(("bearer" = [])),
    request_body(content = EventsBody, description = "one event, or an array of events"),
    responses(
        (status = 200, description = "the outcome, or an array of outcomes in request order", body = IngestAnswer),
        (status = 409, description = "`event-conflict`, `session-finalized`", body = ErrorBody),
        (status = 422, description = "`invalid-body`, `invalid-kind`, `invalid-quantity`, `invalid-confidence`, `invalid-timestamp`, `unknown-sku`, …", body = ErrorBody),
    ))]
pub async fn post_events(
    State(state): State<AppState>,
    StoreCaller(store): StoreCaller,
    Json(body): Json<Value>,
) -> Result<Response> {
    let (inputs, batch) = match body {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(Error::new(Code::EmptyBatch, "the array holds no event"));
            }
            if items.len() > state.config.max_batch_events {
                return Err(Error::new(
                    Code::BatchTooLarge,
                    format!("at most {} events per batch", state.config.max_batch_events),
                ));
            }
            let mut inputs = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                inputs.push(parse_event(item).map_err(|e| at_index(e, i))?);
            }
            (inputs, true)
        }
        other => (vec![parse_event(other)?], false),
    };
    let mut valid = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let v = input.validate().map_err(Error::from);
        valid.push(if batch {
            v.map_err(|e| at_index(e, i))?
        } else {
            v?
        });
    }
    let hashes: Vec<String> = inputs.iter().map(ingest::request_hash).collect();
    let incoming = Incoming::list(&valid, &hashes);
    let outcomes = ingest::ingest(
        &state.db,
        &store,
        &incoming,
        state.now(),
        state.config.labor_cost(),
        || (state.audit_draw)(),
    )
    .await
    .map_err(|r| match r.index {
        Some(i) if batch => at_index(r.error, i),
        _ => r.error,
    })?;
    let mut outcomes: Vec<IngestOutcome> = outcomes.into_iter().map(Into::into).collect();
    Ok(if batch {
        axum::Json(outcomes).into_response()
    } else {
        axum::Json(outcomes.remove(0)).into_response()
    })
}

fn parse_event(v: Value) -> Result<EventInput> {
    serde_json::from_value(v).map_err(|e| Error::new(Code::InvalidBody, e.to_string()))
}

/// Prefixes a batch error with the index of the event that caused it.
fn at_index(e: Error, i: usize) -> Error {
    match e {
        Error::Client { code, message } => Error::Client {
            code,
            message: format!("events[{i}]: {message}"),
        },
        other => other,
    }
}

/// Body of a session exit.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExitInput {
    /// When the shopper left, RFC 3339.
    #[schema(format = DateTime)]
    pub exited_at: String,
}

/// Records that the shopper left; the receipt is final at once when nothing
/// of the session is in review.
#[utoipa::path(post, path = "/api/v1/sessions/{session_id}/exit", tag = "store", security(("bearer" = [])),
    params(("session_id" = ClientId, Path, description = "the store's session id")),
    request_body = ExitInput,
    responses(
        (status = 200, body = Receipt),
        (status = 409, description = "`session-already-exited` with another time", body = ErrorBody),
    ))]
pub async fn exit_session(
    State(state): State<AppState>,
    StoreCaller(store): StoreCaller,
    Path(session_id): Path<String>,
    Json(input): Json<ExitInput>,
) -> Result<axum::Json<Receipt>> {
    check_id("session_id", &session_id)?;
    let exited_at = parse_rfc3339_ms(&input.exited_at).ok_or_else(|| {
        Error::new(
            Code::InvalidTimestamp,
            format!(
                "exited_at must be an RFC 3339 timestamp, not {:?}",
                input.exited_at
            ),
        )
    })?;
    let receipt =
        crate::review::receipts::exit(&state.db, &store, &session_id, exited_at, state.now())
            .await?;
    Ok(axum::Json(receipt))
}

/// Which store's session a supervisor asks about.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ReceiptQuery {
    /// Required for supervisors; a store key always reads its own store.
    pub store_id: Option<String>,
}

/// A session's receipt: final, or pending with what is settled so far.
#[utoipa::path(get, path = "/api/v1/sessions/{session_id}/receipt", tag = "store", security(("bearer" = [])),
    params(("session_id" = ClientId, Path, description = "the store's session id"), ReceiptQuery),
    responses(
        (status = 200, body = Receipt),
        (status = 404, description = "`unknown-session`, `unknown-store`", body = ErrorBody),
        (status = 422, description = "`missing-store-id`: a supervisor did not name the store", body = ErrorBody),
    ))]
pub async fn get_receipt(
    State(state): State<AppState>,
    caller: Caller,
    Path(session_id): Path<String>,
    Query(q): Query<ReceiptQuery>,
) -> Result<axum::Json<Receipt>> {
    let store_id = match caller {
        Caller::Store(store) => store.id,
        Caller::User(user) if user.role.is_supervisor() => {
            let store_id = q.store_id.ok_or_else(|| {
                Error::new(
                    Code::MissingStoreId,
                    "supervisors must name the store: ?store_id=",
                )
            })?;
            if !user.scope.sees(&store_id) {
                return Err(Error::unknown_store(&store_id));
            }
            store_id
        }
        Caller::User(_) => {
            return Err(Error::new(
                Code::RoleForbidden,
                "receipts are for the store and supervisors",
            ))
        }
    };
    let mut conn = state.db.reader().acquire().await?;
    receipts::read(&mut conn, &store_id, &session_id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Error::new(Code::UnknownSession, format!("no session {session_id:?}")))
}

/// 204 with no body.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
