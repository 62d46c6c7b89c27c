//! Cashiers and managers. PINs are stored as Argon2id hashes (salted, slow on purpose);
//! too many wrong PINs lock the login for a while.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::chain::{self, Record};
use super::{Journal, JournalError, WriteError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Cashier,
    Manager,
}

impl Role {
    pub fn code(self) -> &'static str {
        match self {
            Role::Cashier => "cashier",
            Role::Manager => "manager",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "cashier" => Some(Role::Cashier),
            "manager" => Some(Role::Manager),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// Wrong PINs in a row before the login locks.
pub const PIN_ATTEMPTS_MAX: i64 = 5;
/// How long a locked login stays locked.
pub const LOCKOUT_MS: i64 = 5 * 60 * 1000;

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
            return Err(WriteError::Invalid("a user id is 1 to 32 letters, digits, - or _".into()));
        }
        if user.name.trim().is_empty() || user.name.chars().count() > 64 {
            return Err(WriteError::Invalid("a name is 1 to 64 characters".into()));
        }
        if !valid_pin(pin) {
            return Err(WriteError::Invalid("a PIN is 4 to 8 digits".into()));
        }
        let hash = Argon2::default()
            .hash_password(pin.as_bytes())
            .map_err(|e| WriteError::Invalid(format!("cannot hash the PIN: {e}")))?
            .to_string();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: Option<String> =
            tx.query_row("SELECT id FROM users WHERE id = ?1", [&user.id], |r| r.get(0)).optional()?;
        if exists.is_some() {
            return Err(WriteError::Invalid(format!("user {} exists", user.id)));
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

    /// Checks a PIN. Slow by design (Argon2id): call it off the async executor.
    pub fn authenticate(&self, id: &str, pin: &str, now_ms: i64) -> Result<User, AuthError> {
        let row: Option<(String, String, String, i64, i64)> = self
            .conn()
            .query_row(
                "SELECT name, role, pin_hash, failed_attempts, locked_until_ms FROM users WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((name, role, hash, failed, locked_until)) = row else { return Err(AuthError::NoSuchUser) };
        if locked_until > now_ms {
            return Err(AuthError::Locked { seconds_left: (locked_until - now_ms + 999) / 1000 });
        }
        // The hash check runs without holding the connection: it takes tens of ms.
        let ok = Argon2::default().verify_password(pin.as_bytes(), hash.as_str()).is_ok();
        let conn = self.conn();
        if ok {
            conn.execute("UPDATE users SET failed_attempts = 0, locked_until_ms = 0 WHERE id = ?1", [id])?;
            let role = Role::parse(&role).ok_or_else(|| JournalError::Corrupt(format!("role of {id}")))?;
            return Ok(User { id: id.to_owned(), name, role });
        }
        let failed = failed + 1;
        if failed >= PIN_ATTEMPTS_MAX {
            conn.execute(
                "UPDATE users SET failed_attempts = 0, locked_until_ms = ?2 WHERE id = ?1",
                params![id, now_ms + LOCKOUT_MS],
            )?;
            return Err(AuthError::Locked { seconds_left: LOCKOUT_MS / 1000 });
        }
        conn.execute("UPDATE users SET failed_attempts = ?2 WHERE id = ?1", params![id, failed])?;
        Err(AuthError::WrongPin { attempts_left: PIN_ATTEMPTS_MAX - failed })
    }
}
