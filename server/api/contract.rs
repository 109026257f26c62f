//! The answers every operation shares, added to the OpenAPI document in one
//! place: what the HTTP edge answers before or around a handler
//! (credentials, roles, the JSON body, path and query, time limits, our
//! own failures). Each handler's `responses(...)` lists only its own
//! answers; [`SharedAnswers`] adds these where they apply and the handler
//! did not already describe that status, so the document lists every
//! status an operation can answer.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

/// Bytes of a file (a video upload, a clip, a JPEG, an export file), as the
/// OpenAPI document describes a body that is not JSON.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// Adds `T` and the schemas it refers to, for a schema written by hand
/// whose body names `T` by reference.
pub fn register<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into(), T::schema()));
    T::schemas(schemas);
}

/// A JSON document served as a file (an export's `dataset-card.json`).
pub struct JsonDocument;

impl PartialSchema for JsonDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Object).into()
    }
}

impl ToSchema for JsonDocument {}

/// Adds the shared answers to every operation of the document.
pub struct SharedAnswers;

/// When a shared answer applies to an operation.
#[derive(Clone, Copy)]
enum When {
    Always,
    Authenticated,
    JsonBody,
    PathParameters,
    QueryParameters,
}

/// The shared answers: status, when, and the codes it carries.
const SHARED: &[(&str, When, &str)] = &[
    (
        "400",
        When::JsonBody,
        "`malformed-json` (the body is not JSON), `unreadable-body`",
    ),
    (
        "400",
        When::PathParameters,
        "`invalid-path` (a path segment that is not valid UTF-8)",
    ),
    (
        "400",
        When::QueryParameters,
        "`invalid-query` (a malformed query string, a number out of range)",
    ),
    (
        "401",
        When::Authenticated,
        "`unauthorized`: no key or token, a malformed `Authorization` header, or an unknown, rotated or expired key or token",
    ),
    (
        "403",
        When::Authenticated,
        "`store-key-required` (a user token on a store endpoint), `user-token-required` (a store key on a user endpoint), `role-forbidden` (a role this endpoint does not serve), `csrf-failed` (a change through the session cookie without the page's CSRF token)",
    ),
    (
        "408",
        When::Always,
        "`request-timeout`: the request took longer than `request_timeout_ms`, or its body paused longer than `body_idle_timeout_ms`",
    ),
    (
        "413",
        When::JsonBody,
        "`body-too-large`: the JSON body is larger than `json_body_limit`",
    ),
    (
        "415",
        When::JsonBody,
        "`unsupported-media-type`: the `Content-Type` is not `application/json`",
    ),
    (
        "422",
        When::JsonBody,
        "`invalid-body`: JSON of the wrong shape (a missing or unknown field, a wrong type, a number out of range, an unknown enum value)",
    ),
    (
        "500",
        When::Always,
        "`internal-error`: an unexpected failure on Recount's side (details are logged, never sent)",
    ),
    (
        "503",
        When::Always,
        "`unavailable`: the database is busy or unreachable; retry shortly",
    ),
];

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_shared(operation);
            }
        }
    }
}

fn add_shared(operation: &mut Operation) {
    let applies = |when: When| match when {
        When::Always => true,
        When::Authenticated => operation.security.as_ref().is_some_and(|s| !s.is_empty()),
        When::JsonBody => operation
            .request_body
            .as_ref()
            .is_some_and(|b| b.content.contains_key("application/json")),
        When::PathParameters => has_parameter(operation, ParameterIn::Path),
        When::QueryParameters => has_parameter(operation, ParameterIn::Query),
    };
    // The codes each status gains, in the table's order.
    let mut gained: Vec<(&str, Vec<&str>)> = Vec::new();
    for &(status, when, codes) in SHARED {
        if !applies(when) {
            continue;
        }
        match gained.iter_mut().find(|(s, _)| *s == status) {
            Some((_, all)) => all.push(codes),
            None => gained.push((status, vec![codes])),
        }
    }
    let responses = &mut operation.responses.responses;
    for (status, codes) in gained {
        match responses.get_mut(status) {
            // The handler's own answer with this status: it says which of
            // its codes; the shared ones it does not name yet are added to
            // its description.
            Some(RefOr::T(own)) => {
                let new: Vec<&str> = codes
                    .into_iter()
                    .filter(|c| !first_code(c).is_some_and(|code| own.description.contains(code)))
                    .collect();
                if !new.is_empty() {
                    own.description = format!("{}; also {}", own.description, new.join("; "));
                }
            }
            Some(RefOr::Ref(_)) => {}
            None => {
                let answer = ResponseBuilder::new()
                    .description(codes.join("; "))
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                    )
                    .build();
                responses.insert(status.to_string(), RefOr::T(answer));
            }
        }
    }
}

/// The first code a description names, with its backticks.
fn first_code(codes: &str) -> Option<&str> {
    let start = codes.find('`')?;
    let end = codes[start + 1..].find('`')? + start + 2;
    Some(&codes[start..end])
}

fn has_parameter(operation: &Operation, place: ParameterIn) -> bool {
    operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == place)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the real document: its method, path and statuses.
    fn statuses() -> Vec<(String, Vec<String>, bool)> {
        let doc = crate::api::router().split_for_parts().1;
        let mut out = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
            ] {
                if let Some(op) = op {
                    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                    out.push((
                        format!("{method} {path}"),
                        op.responses.responses.keys().cloned().collect(),
                        secured,
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn every_operation_lists_the_shared_answers_that_apply_to_it() {
        let all = statuses();
        assert!(all.len() >= 40, "{}", all.len());
        for (op, statuses, secured) in &all {
            for s in ["408", "500", "503"] {
                assert!(statuses.iter().any(|x| x == s), "{op} lacks {s}");
            }
            if *secured {
                for s in ["401", "403"] {
                    assert!(statuses.iter().any(|x| x == s), "{op} lacks {s}");
                }
            }
        }
        let (_, health, _) = all.iter().find(|(op, ..)| op == "get /healthz").unwrap();
        assert!(
            !health.iter().any(|s| s == "401" || s == "403"),
            "{health:?}"
        );
        let (_, events, _) = all
            .iter()
            .find(|(op, ..)| op == "post /api/v1/events")
            .unwrap();
        for s in ["400", "413", "415", "422"] {
            assert!(events.iter().any(|x| x == s), "events lack {s}");
        }
    }

    #[test]
    fn a_handlers_own_answer_keeps_its_codes_and_gains_the_shared_ones() {
        let doc = crate::api::router().split_for_parts().1;
        let op = doc.paths.paths["/api/v1/events"].post.as_ref().unwrap();
        let Some(RefOr::T(answer)) = op.responses.responses.get("422") else {
            panic!("no 422");
        };
        let text = &answer.description;
        assert!(text.contains("`invalid-kind`"), "{text}");
        assert_eq!(
            text.matches("`invalid-body`").count(),
            1,
            "named once: {text}"
        );
        let Some(RefOr::T(malformed)) = op.responses.responses.get("400") else {
            panic!("no 400");
        };
        assert!(malformed.description.contains("`malformed-json`"));
    }

    /// The document's constraint at `pointer` in component `schema`.
    fn constraint(schema: &str, pointer: &str) -> serde_json::Value {
        let doc = serde_json::to_value(crate::api::router().split_for_parts().1).unwrap();
        let at = format!("/components/schemas/{schema}{pointer}");
        doc.pointer(&at)
            .unwrap_or_else(|| panic!("no {at}"))
            .clone()
    }

    #[test]
    fn the_documents_limits_are_the_servers() {
        use crate::domain::event::{MAX_CANDIDATES, MAX_CLIPS, MAX_ID_LEN, MAX_QUANTITY};
        use crate::domain::export::{MAX_SHARD_BYTES, MIN_SHARD_BYTES};
        let n = |v: serde_json::Value| v.as_f64().unwrap();
        assert_eq!(n(constraint("ClientId", "/maxLength")), MAX_ID_LEN as f64);
        let event = "/properties";
        assert_eq!(
            n(constraint(
                "EventInput",
                &format!("{event}/quantity/maximum")
            )),
            MAX_QUANTITY as f64
        );
        assert_eq!(
            n(constraint(
                "EventInput",
                &format!("{event}/candidates/maxItems")
            )),
            MAX_CANDIDATES as f64
        );
        assert_eq!(
            n(constraint("EventInput", &format!("{event}/clips/maxItems"))),
            MAX_CLIPS as f64
        );
        assert_eq!(
            n(constraint(
                "EventInput",
                &format!("{event}/cameras/maxItems")
            )),
            MAX_CLIPS as f64
        );
        assert_eq!(
            n(constraint("VerdictInput", "/properties/quantity/maximum")),
            MAX_QUANTITY as f64
        );
        assert_eq!(
            n(constraint("VerdictInput", "/properties/note/maxLength")),
            crate::review::queue::MAX_NOTE_LEN as f64
        );
        assert_eq!(
            n(constraint("DisputeInput", "/properties/reason/maxLength")),
            crate::review::disputes::MAX_REASON_LEN as f64
        );
        assert_eq!(
            n(constraint("ExportSpec", "/properties/shard_bytes/minimum")),
            MIN_SHARD_BYTES as f64
        );
        assert_eq!(
            n(constraint("ExportSpec", "/properties/shard_bytes/maximum")),
            MAX_SHARD_BYTES as f64
        );
        assert_eq!(
            n(constraint("CatalogUpload", "/maxItems")),
            crate::api::ingest::MAX_PRODUCTS as f64
        );
        assert_eq!(
            n(constraint("EventsBody", "/oneOf/1/maxItems")),
            crate::config::Config::default().max_batch_events as f64
        );
    }

    #[test]
    fn the_id_pattern_refuses_exactly_what_check_id_refuses() {
        // The pattern's class is Unicode's Cc, which char::is_control tests.
        let class = |c: char| matches!(c as u32, 0..=0x1f | 0x7f..=0x9f);
        for c in (0..0x3000u32).filter_map(char::from_u32) {
            assert_eq!(class(c), c.is_control(), "{:?}", c);
        }
    }

    #[test]
    fn the_first_code_of_a_description_is_found() {
        assert_eq!(first_code("`a-b` (x), `c`"), Some("`a-b`"));
        assert_eq!(first_code("no code"), None);
    }
}
