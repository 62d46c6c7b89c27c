//! The console's login and session, operators, API tokens and the audit log.

use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{blocking, client_address, now_ms, ApiError, AppState, By, Checked, Result, SessionId};
use crate::auth::{self, Caller, LoginError, ManageError, Permissions, Role, Who};
use crate::db::AUDIT_PAGE_ENTRIES_MAX;

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        let status = match &e {
            ManageError::Credential(_) | ManageError::NoScopes | ManageError::Days => StatusCode::UNPROCESSABLE_ENTITY,
            ManageError::Exists(_)
            | ManageError::LastAdministrator
            | ManageError::TooManyOperators
            | ManageError::TooManyTokens => StatusCode::CONFLICT,
            ManageError::NoSuchOperator(_) | ManageError::NoSuchToken(_) => StatusCode::NOT_FOUND,
            ManageError::Db(_) | ManageError::Hash(_) => {
                tracing::error!(error = %e, "managing operators or tokens failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        match e {
            ManageError::Db(db) => db.into(),
            e => ApiError::new(status, e.code(), e.to_string()),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct LoginRequest {
    login: String,
    password: String,
}

/// The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's
/// page sends it), for the whole console, for the session's life; `Secure` behind HTTPS.
fn cookie(value: &str, max_age_s: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let text =
        format!("{}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}", auth::SESSION_COOKIE);
    HeaderValue::from_str(&text).ok()
}

fn secure(s: &super::ApiState, parts: &Parts) -> bool {
    s.access.secure_cookies
        || parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn describe(caller: &Caller, csrf: Option<String>) -> serde_json::Value {
    let who = match &caller.who {
        Who::Operator { login, role } => json!({ "kind": "operator", "login": login, "role": role }),
        Who::Token { id, name } => json!({ "kind": "token", "id": id, "name": name }),
    };
    json!({ "who": who, "permissions": caller.permissions, "csrf": csrf })
}

/// `POST /api/login` with `{"login", "password"}`: a session cookie and the CSRF token
/// for the console's writes. Wrong passwords are counted per login and client address.
pub(super) async fn login(
    State(s): AppState,
    parts: Parts,
    Checked(Json(req)): Checked<Json<LoginRequest>>,
) -> Response {
    let source = client_address(&s, &parts);
    let secure = secure(&s, &parts);
    let (login, password) = (req.login.trim().to_owned(), req.password);
    let now = now_ms();
    let result = blocking(&s.db, move |db| auth::login(db, &login, &password, &source, now)).await;
    let session = match result {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            let (status, code) = match e {
                LoginError::BadCredentials { .. } => (StatusCode::UNAUTHORIZED, "bad_credentials"),
                LoginError::Locked { .. } => (StatusCode::TOO_MANY_REQUESTS, "locked"),
                LoginError::Disabled => (StatusCode::FORBIDDEN, "operator_disabled"),
            };
            return ApiError::new(status, code, e.to_string()).into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let caller = Caller {
        permissions: session.operator.role.permissions(),
        who: Who::Operator { login: session.operator.login.clone(), role: session.operator.role },
    };
    let mut body = describe(&caller, Some(session.csrf.clone()));
    body["name"] = json!(session.operator.name);
    body["expires_at_ms"] = json!(session.expires_at_ms);
    let mut response = Json(body).into_response();
    if let Some(c) = cookie(&session.id, auth::SESSION_MS / 1000, secure) {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /api/logout`: ends the session and clears the cookie.
pub(super) async fn logout(State(s): AppState, parts: Parts) -> Response {
    let secure = secure(&s, &parts);
    if let Some(SessionId(Some(id))) = parts.extensions.get::<SessionId>().cloned() {
        if let Err(e) = blocking(&s.db, move |db| db.end_session(&auth::sha256_hex(&id))).await {
            return ApiError::from(e).into_response();
        }
    }
    let mut response = Json(json!({ "ok": true })).into_response();
    if let Some(c) = cookie("", 0, secure) {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

/// `GET /api/session`: who the caller is, what they may do, and (for a console session)
/// the CSRF token, so that a reloaded page carries on.
pub(super) async fn session(By(caller): By, parts: Parts) -> Result<serde_json::Value> {
    let csrf = match parts.extensions.get::<SessionId>() {
        Some(SessionId(Some(id))) => Some(auth::csrf_token(id)),
        _ => None,
    };
    Ok(Json(describe(&caller, csrf)))
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    before: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/audit?before=ID&limit=N`: the newest entries first, at most
/// [`AUDIT_PAGE_ENTRIES_MAX`] a page.
pub(super) async fn audit(
    State(s): AppState,
    Checked(Query(q)): Checked<Query<AuditQuery>>,
) -> Result<serde_json::Value> {
    let limit = q.limit.unwrap_or(100).min(AUDIT_PAGE_ENTRIES_MAX);
    let entries = blocking(&s.db, move |db| db.audit(q.before, limit)).await?;
    Ok(Json(json!({ "entries": entries })))
}

pub(super) async fn operators(State(s): AppState) -> Result<serde_json::Value> {
    let list = blocking(&s.db, |db| db.operators()).await?;
    Ok(Json(json!({ "operators": list, "roles": Role::ALL })))
}

fn role(word: &str) -> std::result::Result<Role, ApiError> {
    Role::parse(word).map_err(|e| ApiError::invalid("bad_role", e.to_string()))
}

#[derive(Deserialize)]
pub(super) struct NewOperator {
    login: String,
    name: String,
    role: String,
    /// None: HQ makes one up and answers it, once.
    password: Option<String>,
}

/// `POST /api/operators`: adds an operator; without a password, HQ makes one up and
/// answers it (the only time it is shown).
pub(super) async fn add_operator(
    State(s): AppState,
    By(caller): By,
    Checked(Json(req)): Checked<Json<NewOperator>>,
) -> Result<serde_json::Value> {
    let role = role(&req.role)?;
    let made_up = req.password.is_none();
    let password = req.password.unwrap_or_else(auth::random_password);
    let by = caller.as_actor();
    let pw = password.clone();
    let op = blocking(&s.db, move |db| Ok(auth::add_operator(db, &req.login, &req.name, role, &pw, &by, now_ms())))
        .await??;
    Ok(Json(json!({ "operator": op, "password": made_up.then_some(password) })))
}

#[derive(Deserialize)]
pub(super) struct OperatorPatch {
    name: Option<String>,
    role: Option<String>,
    disabled: Option<bool>,
    password: Option<String>,
}

/// `PATCH /api/operators/{login}`: a new name, role or password, or disabled (which ends
/// the operator's sessions at once) or enabled again.
pub(super) async fn change_operator(
    State(s): AppState,
    By(caller): By,
    Checked(Path(login)): Checked<Path<String>>,
    Checked(Json(req)): Checked<Json<OperatorPatch>>,
) -> Result<serde_json::Value> {
    let role = req.role.as_deref().map(role).transpose()?;
    let by = caller.as_actor();
    let op = blocking(&s.db, move |db| {
        let edit = auth::OperatorEdit {
            name: req.name.as_deref(),
            role,
            disabled: req.disabled,
            password: req.password.as_deref(),
        };
        Ok(auth::change_operator(db, &login, edit, &by, now_ms()))
    })
    .await??;
    Ok(Json(json!({ "operator": op })))
}

pub(super) async fn tokens(State(s): AppState) -> Result<serde_json::Value> {
    let list = blocking(&s.db, |db| db.tokens()).await?;
    let scopes: Vec<_> = crate::auth::Permission::ALL.iter().map(|p| p.code()).collect();
    Ok(Json(json!({ "tokens": list, "scopes": scopes })))
}

#[derive(Deserialize)]
pub(super) struct NewToken {
    name: String,
    /// The scopes, by name; or
    scopes: Option<Vec<String>>,
    /// a role's permissions.
    role: Option<String>,
    /// How long it lasts; none: until revoked.
    days: Option<u32>,
}

/// `POST /api/tokens`: issues a token with the scopes listed (or a role's); the answer
/// is the only time the token is shown.
pub(super) async fn issue_token(
    State(s): AppState,
    By(caller): By,
    Checked(Json(req)): Checked<Json<NewToken>>,
) -> Result<auth::IssuedToken> {
    let mut scopes = match &req.scopes {
        Some(list) => Permissions::parse(list.iter().map(String::as_str))
            .map_err(|e| ApiError::invalid("bad_scope", e.to_string()))?,
        None => Permissions::NONE,
    };
    if let Some(r) = &req.role {
        scopes = Permissions::of(&scopes.iter().chain(role(r)?.permissions().iter()).collect::<Vec<_>>());
    }
    let by = caller.as_actor();
    let issued =
        blocking(&s.db, move |db| Ok(auth::issue_token(db, &req.name, scopes, req.days, &by, now_ms()))).await??;
    Ok(Json(issued))
}

/// `DELETE /api/tokens/{id}`: revokes it; the next request with it is refused.
pub(super) async fn revoke_token(
    State(s): AppState,
    By(caller): By,
    Checked(Path(id)): Checked<Path<i64>>,
) -> Result<serde_json::Value> {
    let by = caller.as_actor();
    let token = blocking(&s.db, move |db| Ok(auth::revoke_token(db, id, &by, now_ms()))).await??;
    Ok(Json(json!({ "token": token })))
}
