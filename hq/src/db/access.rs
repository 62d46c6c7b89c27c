//! The SQL of access control and audit (schema version 4): operators, console sessions,
//! API tokens, wrong-password counts, the audit log. What the rows mean, and the rules
//! (roles, lockouts, hashing), are `crate::auth`'s; this only stores them.

use super::sql::{self, params, Connection, OptionalExtension};
use serde::Serialize;

use super::{Db, DbError};
use crate::auth::{Permissions, Role, Throttle, AUTH_FAILURE_ROWS_MAX, TOKEN_ROWS_MAX};

/// Audit entries kept at most; past it the oldest are dropped (years of a chain's
/// operator writes).
pub const AUDIT_ROWS_MAX: i64 = 1_000_000;
/// Audit entries per page of [`Db::audit`].
pub const AUDIT_PAGE_ENTRIES_MAX: usize = 500;
/// Largest summary an audit entry keeps, in bytes of JSON; a larger one is cut to a note.
pub const AUDIT_SUMMARY_BYTES_MAX: usize = 16 * 1024;

/// An operator as listed (never with the password hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Operator {
    pub login: String,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at_ms: i64,
}

/// An API token as listed (never the token or its hash): `prefix` is its first characters,
/// enough to tell tokens apart.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub scopes: Permissions,
    pub prefix: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// An entry to write to the audit log: who, when, what.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub at_ms: i64,
    /// `operator`, `token`, `system` (the CLI on HQ's machine) or `store` (a till's
    /// order over sync).
    pub actor_kind: &'static str,
    pub actor: String,
    /// What was done, a word such as `catalog.publish`.
    pub action: &'static str,
    /// A short JSON summary of the change.
    pub summary: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor_kind: String,
    pub actor: String,
    pub action: String,
    pub summary: serde_json::Value,
}

/// What [`Db::add_operator`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOperator {
    Added,
    Exists,
    TooMany,
}

/// A change to an operator ([`Db::change_operator`]); `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct OperatorChange {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
}

pub(super) const SCHEMA_V4: &str = "
CREATE TABLE operators (
    login TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0, created_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE operator_sessions (
    hash TEXT PRIMARY KEY, login TEXT NOT NULL REFERENCES operators (login),
    created_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX operator_sessions_by_login ON operator_sessions (login);
CREATE TABLE operator_auth_failures (
    login TEXT NOT NULL, source TEXT NOT NULL, failures INTEGER NOT NULL, lockouts INTEGER NOT NULL,
    locked_until_ms INTEGER NOT NULL, PRIMARY KEY (login, source)
) STRICT, WITHOUT ROWID;
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, scopes TEXT NOT NULL,
    prefix TEXT NOT NULL, created_by TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER, revoked_at_ms INTEGER
) STRICT;
CREATE TABLE audit (
    id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, actor_kind TEXT NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, summary TEXT NOT NULL
) STRICT;
";

/// Writes an audit entry inside the caller's transaction, so that a write and its entry
/// commit together or not at all.
pub(super) fn audit_in(conn: &Connection, e: &NewAudit) -> Result<(), DbError> {
    let mut summary = e.summary.to_string();
    if summary.len() > AUDIT_SUMMARY_BYTES_MAX {
        summary = serde_json::json!({ "note": "summary too long to keep", "bytes": summary.len() }).to_string();
    }
    let id = conn
        .prepare_cached(
            "INSERT INTO audit (at_ms, actor_kind, actor, action, summary) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )?
        .query_row(params![e.at_ms, e.actor_kind, e.actor, e.action, summary], |r| r.get::<i64>(0))?;
    if id > AUDIT_ROWS_MAX {
        conn.prepare_cached("DELETE FROM audit WHERE id <= ?1")?.execute([id - AUDIT_ROWS_MAX])?;
    }
    tracing::info!(actor = %e.actor, action = e.action, summary = %summary, "audit");
    Ok(())
}

fn operator_from_row(r: &sql::Row<'_>) -> sql::Result<(Operator, String)> {
    let role: String = r.get(2)?;
    let role = Role::parse(&role).map_err(|e| sql::Error::conversion(2, e))?;
    Ok((
        Operator { login: r.get(0)?, name: r.get(1)?, role, disabled: r.get::<i64>(3)? != 0, created_at_ms: r.get(4)? },
        r.get(5)?,
    ))
}

fn token_from_row(r: &sql::Row<'_>) -> sql::Result<Token> {
    let scopes: String = r.get(2)?;
    let scopes = Permissions::parse(scopes.split_whitespace()).map_err(|e| sql::Error::conversion(2, e))?;
    Ok(Token {
        id: r.get(0)?,
        name: r.get(1)?,
        scopes,
        prefix: r.get(3)?,
        created_by: r.get(4)?,
        created_at_ms: r.get(5)?,
        expires_at_ms: r.get(6)?,
        revoked_at_ms: r.get(7)?,
    })
}

const OPERATOR_COLUMNS: &str = "login, name, role, disabled, created_at_ms, password_hash";
const TOKEN_COLUMNS: &str = "id, name, scopes, prefix, created_by, created_at_ms, expires_at_ms, revoked_at_ms";

impl Db {
    pub fn operator_count(&self) -> Result<u64, DbError> {
        let n: i64 = self.conn()?.query_row("SELECT COUNT(*) FROM operators", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Adds an operator (with the password already hashed) and its audit entry.
    pub fn add_operator(
        &self,
        op: &Operator,
        password_hash: &str,
        max: i64,
        audit: &NewAudit,
    ) -> Result<AddOperator, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let exists: Option<i64> =
            tx.query_row("SELECT 1 FROM operators WHERE login = ?1", [&op.login], |r| r.get(0)).optional()?;
        if exists.is_some() {
            return Ok(AddOperator::Exists);
        }
        let count: i64 = tx.query_row("SELECT COUNT(*) FROM operators", [], |r| r.get(0))?;
        if count >= max {
            return Ok(AddOperator::TooMany);
        }
        tx.execute(
            "INSERT INTO operators (login, name, role, password_hash, disabled, created_at_ms) VALUES (?1,?2,?3,?4,?5,?6)",
            params![op.login, op.name, op.role.code(), password_hash, op.disabled, op.created_at_ms],
        )?;
        audit_in(&tx, audit)?;
        tx.commit()?;
        Ok(AddOperator::Added)
    }

    pub fn operators(&self) -> Result<Vec<Operator>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!("SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY login"))?;
        let rows = st.query_map([], operator_from_row)?;
        Ok(rows.map(|r| r.map(|(op, _)| op)).collect::<Result<_, _>>()?)
    }

    /// An operator and their password hash.
    pub fn operator_with_hash(&self, login: &str) -> Result<Option<(Operator, String)>, DbError> {
        let conn = self.conn()?;
        let row = conn
            .query_row(
                &format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE login = ?1"),
                [login],
                operator_from_row,
            )
            .optional()?;
        Ok(row)
    }

    /// Changes an operator; a disabled operator's sessions end, and so do all of them when
    /// the password changes. Returns the operator as changed, or `None` if there is none.
    pub fn change_operator(
        &self,
        login: &str,
        change: &OperatorChange,
        audit: &NewAudit,
    ) -> Result<Option<Operator>, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE operators SET name = COALESCE(?2, name), role = COALESCE(?3, role),
                 disabled = COALESCE(?4, disabled), password_hash = COALESCE(?5, password_hash)
             WHERE login = ?1",
            params![login, change.name, change.role.map(Role::code), change.disabled, change.password_hash],
        )?;
        if n == 0 {
            return Ok(None);
        }
        if change.disabled == Some(true) || change.password_hash.is_some() || change.role.is_some() {
            tx.execute("DELETE FROM operator_sessions WHERE login = ?1", [login])?;
        }
        audit_in(&tx, audit)?;
        let op = tx
            .query_row(
                &format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE login = ?1"),
                [login],
                operator_from_row,
            )?
            .0;
        tx.commit()?;
        Ok(Some(op))
    }

    /// Wrong-password counts of `login` from `source`.
    pub fn throttle(&self, login: &str, source: &str) -> Result<Throttle, DbError> {
        let row = self
            .conn()?
            .query_row(
                "SELECT failures, lockouts, locked_until_ms FROM operator_auth_failures WHERE login = ?1 AND source = ?2",
                params![login, source],
                |r| Ok(Throttle { failures: r.get(0)?, lockouts: r.get(1)?, locked_until_ms: r.get(2)? }),
            )
            .optional()?;
        Ok(row.unwrap_or_default())
    }

    /// Stores the counts after a wrong password (and an audit entry when it locked);
    /// past [`AUTH_FAILURE_ROWS_MAX`] pairs, those not locked now are forgotten.
    pub fn set_throttle(
        &self,
        login: &str,
        source: &str,
        t: Throttle,
        now_ms: i64,
        audit: Option<&NewAudit>,
    ) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO operator_auth_failures (login, source, failures, lockouts, locked_until_ms) VALUES (?1,?2,?3,?4,?5)
             ON CONFLICT (login, source) DO UPDATE SET failures = ?3, lockouts = ?4, locked_until_ms = ?5",
            params![login, source, t.failures, t.lockouts, t.locked_until_ms],
        )?;
        tx.execute(
            "DELETE FROM operator_auth_failures WHERE locked_until_ms <= ?1 AND NOT (login = ?2 AND source = ?3)
             AND (SELECT COUNT(*) FROM operator_auth_failures) > ?4",
            params![now_ms, login, source, AUTH_FAILURE_ROWS_MAX],
        )?;
        if let Some(a) = audit {
            audit_in(&tx, a)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn clear_throttle(&self, login: &str, source: &str) -> Result<(), DbError> {
        self.conn()?
            .execute("DELETE FROM operator_auth_failures WHERE login = ?1 AND source = ?2", params![login, source])?;
        Ok(())
    }

    /// Opens a session (its id's hash): forgets expired sessions, and the operator's
    /// oldest past `per_operator_max`.
    pub fn create_session(
        &self,
        hash: &str,
        login: &str,
        now_ms: i64,
        expires_at_ms: i64,
        per_operator_max: i64,
    ) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM operator_sessions WHERE expires_at_ms <= ?1", [now_ms])?;
        tx.execute(
            "DELETE FROM operator_sessions WHERE login = ?1 AND hash NOT IN (
                 SELECT hash FROM operator_sessions WHERE login = ?1 ORDER BY created_at_ms DESC LIMIT ?2)",
            params![login, per_operator_max - 1],
        )?;
        tx.execute(
            "INSERT INTO operator_sessions (hash, login, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![hash, login, now_ms, expires_at_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The operator of a live session (not expired, operator not disabled).
    pub fn session(&self, hash: &str, now_ms: i64) -> Result<Option<Operator>, DbError> {
        let conn = self.conn()?;
        let row = conn
            .prepare_cached(
                "SELECT o.login, o.name, o.role, o.disabled, o.created_at_ms, o.password_hash
                 FROM operator_sessions s JOIN operators o ON o.login = s.login
                 WHERE s.hash = ?1 AND s.expires_at_ms > ?2 AND o.disabled = 0",
            )?
            .query_row(params![hash, now_ms], operator_from_row)
            .optional()?;
        Ok(row.map(|(op, _)| op))
    }

    pub fn end_session(&self, hash: &str) -> Result<(), DbError> {
        self.conn()?.execute("DELETE FROM operator_sessions WHERE hash = ?1", [hash])?;
        Ok(())
    }

    /// Live sessions of `login` (for tests and the operators' list).
    pub fn session_count(&self, login: &str, now_ms: i64) -> Result<u64, DbError> {
        let n: i64 = self.conn()?.query_row(
            "SELECT COUNT(*) FROM operator_sessions WHERE login = ?1 AND expires_at_ms > ?2",
            params![login, now_ms],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Stores a new token (its hash) with its audit entry; `None` when `active_max` tokens
    /// are already in force.
    #[allow(clippy::too_many_arguments)]
    pub fn issue_token(
        &self,
        hash: &str,
        name: &str,
        scopes: Permissions,
        prefix: &str,
        created_by: &str,
        now_ms: i64,
        expires_at_ms: Option<i64>,
        active_max: i64,
        audit: &NewAudit,
    ) -> Result<Option<Token>, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let active: i64 = tx.query_row(
            "SELECT COUNT(*) FROM api_tokens WHERE revoked_at_ms IS NULL AND (expires_at_ms IS NULL OR expires_at_ms > ?1)",
            [now_ms],
            |r| r.get(0),
        )?;
        if active >= active_max {
            return Ok(None);
        }
        let id: i64 = tx.query_row(
            "INSERT INTO api_tokens (hash, name, scopes, prefix, created_by, created_at_ms, expires_at_ms)
             VALUES (?1,?2,?3,?4,?5,?6,?7) RETURNING id",
            params![hash, name, scopes.to_stored(), prefix, created_by, now_ms, expires_at_ms],
            |r| r.get(0),
        )?;
        // Bounded: the oldest revoked or expired rows go first.
        tx.execute(
            "DELETE FROM api_tokens WHERE id IN (
                 SELECT id FROM api_tokens WHERE revoked_at_ms IS NOT NULL OR (expires_at_ms IS NOT NULL AND expires_at_ms <= ?1)
                 ORDER BY id LIMIT GREATEST(0, (SELECT COUNT(*) FROM api_tokens) - ?2))",
            params![now_ms, TOKEN_ROWS_MAX],
        )?;
        let mut audit = audit.clone();
        if let Some(s) = audit.summary.as_object_mut() {
            s.insert("id".into(), id.into());
        }
        audit_in(&tx, &audit)?;
        let token =
            tx.query_row(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"), [id], token_from_row)?;
        tx.commit()?;
        Ok(Some(token))
    }

    /// The token with this hash, revoked or expired ones included (the caller decides).
    pub fn token_by_hash(&self, hash: &str) -> Result<Option<Token>, DbError> {
        let conn = self.conn()?;
        let token = conn
            .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1"))?
            .query_row([hash], token_from_row)
            .optional()?;
        Ok(token)
    }

    /// Every token, newest first.
    pub fn tokens(&self) -> Result<Vec<Token>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id DESC"))?;
        let rows = st.query_map([], token_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a token; `None` if there is no such token, the token as it is if it was
    /// revoked already (then nothing is written).
    pub fn revoke_token(&self, id: i64, now_ms: i64, audit: &NewAudit) -> Result<Option<Token>, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE api_tokens SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
            params![id, now_ms],
        )?;
        if n == 1 {
            audit_in(&tx, audit)?;
        }
        let token = tx
            .query_row(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"), [id], token_from_row)
            .optional()?;
        tx.commit()?;
        Ok(token)
    }

    /// Writes an audit entry on its own (for writes whose own transaction is elsewhere).
    pub fn record_audit(&self, entry: &NewAudit) -> Result<(), DbError> {
        audit_in(&*self.conn()?, entry)
    }

    /// Audit entries, newest first, older than `before_id` if given; at most `limit`
    /// (itself at most [`AUDIT_PAGE_ENTRIES_MAX`]).
    pub fn audit(&self, before_id: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT id, at_ms, actor_kind, actor, action, summary FROM audit
             WHERE CAST(?1 AS BIGINT) IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![before_id, limit.min(AUDIT_PAGE_ENTRIES_MAX) as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<String>(5)?))
        })?;
        rows.map(|row| {
            let (id, at_ms, actor_kind, actor, action, summary) = row?;
            let summary =
                serde_json::from_str(&summary).map_err(|e| DbError::Corrupt(format!("audit entry {id}: {e}")))?;
            Ok(AuditEntry { id, at_ms, actor_kind, actor, action, summary })
        })
        .collect()
    }

    /// Audit entries in all (for tests: "nothing was written").
    pub fn audit_count(&self) -> Result<u64, DbError> {
        let n: i64 = self.conn()?.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))?;
        Ok(n as u64)
    }
}
