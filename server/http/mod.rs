//! The HTTP edge: everything the JSON API ([`crate::api`]) and the pages
//! ([`crate::web`]) share about speaking HTTP, so neither imports the other.
//!
//! - [`extract`]: who is calling (store key, user token or session cookie,
//!   and their role); JSON bodies, path and query parameters whose
//!   rejections are JSON errors; the client's address;
//! - [`session`]: the session cookie and its CSRF token;
//! - [`pages`]: a page as HTTP (security headers, rendering) and who may see
//!   it: the signed-in user, or the sign-in redirect or 403 page;
//! - [`error`]: each registry code's HTTP status, the error body and its
//!   OpenAPI description;
//! - [`query`]: query strings read by both faces.
//!
//! Below the edge, errors carry a registry code ([`crate::error::Code`])
//! and never an HTTP status.

pub mod error;
pub mod extract;
pub mod pages;
pub mod query;
pub mod serve;
pub mod session;
