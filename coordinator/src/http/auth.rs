//! HTTP basic logins against the configured users' SCRAM verifiers.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::HttpState;
use crate::engine::system_queries::Viewer;

/// Who is asking: every query's viewer without users; else the logged-in
/// user, or a 401 asking for a login.
pub fn viewer(state: &HttpState, headers: &HeaderMap) -> Result<Viewer, Box<Response>> {
    if state.users.is_empty() {
        return Ok(state.engine.viewer(None));
    }
    let refused = || {
        Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"vivace\"")],
                "log in with a Vivace user and password\n",
            )
                .into_response(),
        )
    };
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .and_then(|v| String::from_utf8(v).ok())
        .ok_or_else(refused)?;
    let (user, password) = credentials.split_once(':').ok_or_else(refused)?;
    if !state.users.check_password(user, password) {
        tracing::warn!(user, "HTTP login refused");
        return Err(refused());
    }
    Ok(state.engine.viewer(Some(user)))
}
