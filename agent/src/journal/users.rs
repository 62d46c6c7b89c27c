//! Cashiers and managers. PINs are stored as Argon2id hashes (salted, slow on purpose);
//! too many wrong PINs lock the login for a while.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use rusqlite::{params, OptionalExtension};

use super::chain;
use super::types::Record;
use super::types::{Role, User};
use super::{Journal, JournalError, WriteError};

/// Wrong PINs in a row, from one source, before that source is locked out.
pub const PIN_ATTEMPTS_MAX: i64 = 5;
/// The first lockout's length; each further lockout of the same user and source (with
/// no right PIN in between) doubles it, up to [`LOCKOUT_MAX_MS`].
pub const LOCKOUT_MS: i64 = 30 * 1000;
/// The longest lockout.
pub const LOCKOUT_MAX_MS: i64 = 15 * 60 * 1000;
/// Lockouts of one user and source in a row counted for the backoff at most.
const LOCKOUTS_COUNTED_MAX: i64 = 16;
/// Distinct (user, source) pairs with failures kept at most; beyond it those not locked
/// now are forgotten, so a flood of sources cannot grow the table without bound.
pub const AUTH_FAILURE_ROWS_MAX: i64 = 10_000;

/// The length of lockout number `n` (1-based) in a row.
pub fn lockout_ms(n: i64) -> i64 {
    let doublings = (n - 1).clamp(0, LOCKOUTS_COUNTED_MAX) as u32;
    LOCKOUT_MS.saturating_mul(1i64 << doublings.min(20)).min(LOCKOUT_MAX_MS)
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no such user")]
    NoSuchUser,
    #[error("wrong PIN; {attempts_left} attempt(s) left before the login locks")]
    WrongPin { attempts_left: i64 },
    #[error("too many wrong PINs: locked for {seconds_left} more seconds")]
    Locked { seconds_left: i64 },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

super::refusal_codes! {
    AuthError {
        AuthError::NoSuchUser => "no_such_user",
        AuthError::WrongPin { .. } => "wrong_pin",
        AuthError::Locked { .. } => "locked",
    }
    delegate {
        AuthError::Journal => JournalError,
    }
}

impl From<rusqlite::Error> for AuthError {
    fn from(e: rusqlite::Error) -> Self {
        AuthError::Journal(e.into())
    }
}

fn valid_pin(pin: &str) -> bool {
    (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

impl Journal {
    /// Adds a user (recorded in the chain). The PIN is 4 to 8 digits.
    pub fn add_user(&self, user: &User, pin: &str, now_ms: i64) -> Result<(), WriteError> {
        let id_ok = !user.id.is_empty()
            && user.id.len() <= 32
            && user.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(WriteError::BadUserId);
        }
        if user.name.trim().is_empty() || user.name.chars().count() > 64 {
            return Err(WriteError::BadUserName);
        }
        if !valid_pin(pin) {
            return Err(WriteError::BadPin);
        }
        let hash = Argon2::default()
            .hash_password(pin.as_bytes())
            .map_err(|e| WriteError::PinHash(e.to_string()))?
            .to_string();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: Option<String> =
            tx.query_row("SELECT id FROM users WHERE id = ?1", [&user.id], |r| r.get(0)).optional()?;
        if exists.is_some() {
            return Err(WriteError::UserExists(user.id.clone()));
        }
        tx.execute(
            "INSERT INTO users (id, name, role, pin_hash) VALUES (?1, ?2, ?3, ?4)",
            params![user.id, user.name, user.role.code(), hash],
        )?;
        let record = Record::UserAdded { id: user.id.clone(), name: user.name.clone(), role: user.role };
        chain::append(&tx, 0, "system", now_ms, &record)?;
        tx.commit()?;
        Ok(())
    }

    pub fn users(&self) -> Result<Vec<User>, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id, name, role FROM users ORDER BY role, name")?;
        let rows =
            st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        rows.map(|row| {
            let (id, name, role) = row?;
            let role = Role::parse(&role).ok_or_else(|| JournalError::Corrupt(format!("role of {id}")))?;
            Ok(User { id, name, role })
        })
        .collect()
    }

    /// Checks a PIN typed at `source` (the page's address: the till's own screen, or a
    /// machine on the network). Wrong PINs are counted per user and source, so a
    /// stranger guessing a manager's PIN locks out only themselves, never the manager at
    /// the till; each lockout is longer than the last and is recorded. Slow by design
    /// (Argon2id): call it off the async executor.
    pub fn authenticate(&self, id: &str, pin: &str, source: &str, now_ms: i64) -> Result<User, AuthError> {
        let row: Option<(String, String, String)> = self
            .conn()
            .query_row("SELECT name, role, pin_hash FROM users WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((name, role, hash)) = row else { return Err(AuthError::NoSuchUser) };
        let throttle: Option<(i64, i64, i64)> = self
            .conn()
            .query_row(
                "SELECT failures, lockouts, locked_until_ms FROM auth_failures WHERE user_id = ?1 AND source = ?2",
                params![id, source],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (failures, lockouts, locked_until) = throttle.unwrap_or((0, 0, 0));
        if locked_until > now_ms {
            return Err(AuthError::Locked { seconds_left: (locked_until - now_ms + 999) / 1000 });
        }
        // The hash check runs without holding the connection: it takes tens of ms.
        let ok = Argon2::default().verify_password(pin.as_bytes(), hash.as_str()).is_ok();
        let mut conn = self.conn();
        if ok {
            if throttle.is_some() {
                conn.execute("DELETE FROM auth_failures WHERE user_id = ?1 AND source = ?2", params![id, source])?;
            }
            let role = Role::parse(&role).ok_or_else(|| JournalError::Corrupt(format!("role of {id}")))?;
            return Ok(User { id: id.to_owned(), name, role });
        }
        let tx = conn.transaction()?;
        let failures = failures + 1;
        let result = if failures >= PIN_ATTEMPTS_MAX {
            let lockouts = (lockouts + 1).min(LOCKOUTS_COUNTED_MAX);
            let until = now_ms.saturating_add(lockout_ms(lockouts));
            tx.execute(
                "INSERT INTO auth_failures (user_id, source, failures, lockouts, locked_until_ms) VALUES (?1,?2,0,?3,?4)
                 ON CONFLICT DO UPDATE SET failures = 0, lockouts = ?3, locked_until_ms = ?4",
                params![id, source, lockouts, until],
            )?;
            tx.execute(
                "INSERT INTO lockouts (user_id, source, at_ms, until_ms) VALUES (?1, ?2, ?3, ?4)",
                params![id, source, now_ms, until],
            )?;
            tracing::warn!(user = %id, %source, seconds = (until - now_ms) / 1000, "login locked after wrong PINs");
            Err(AuthError::Locked { seconds_left: (until - now_ms + 999) / 1000 })
        } else {
            tx.execute(
                "INSERT INTO auth_failures (user_id, source, failures, lockouts, locked_until_ms) VALUES (?1,?2,?3,?4,0)
                 ON CONFLICT DO UPDATE SET failures = ?3",
                params![id, source, failures, lockouts],
            )?;
            Err(AuthError::WrongPin { attempts_left: PIN_ATTEMPTS_MAX - failures })
        };
        // Bounded: past the cap, the pairs not locked now are forgotten.
        tx.execute(
            "DELETE FROM auth_failures WHERE locked_until_ms <= ?1 AND NOT (user_id = ?2 AND source = ?3)
             AND (SELECT COUNT(*) FROM auth_failures) > ?4",
            params![now_ms, id, source, AUTH_FAILURE_ROWS_MAX],
        )?;
        tx.commit()?;
        result
    }

    /// Lockouts recorded, newest first: (user, source, at, until) in Unix ms.
    pub fn lockouts(&self, limit: usize) -> Result<Vec<(String, String, i64, i64)>, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT user_id, source, at_ms, until_ms FROM lockouts ORDER BY id DESC LIMIT ?1")?;
        let rows = st.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
