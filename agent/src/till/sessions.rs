//! Who is logged in at this terminal: sessions by token, each ending after
//! [`SESSION_IDLE_MS`] unused, at most [`SESSIONS_MAX`] of them; and a manager's
//! approval of what a cashier may not do alone.

use std::collections::HashMap;

use super::{now_ms, Till, TillError};
use crate::journal::{Role, User};

/// Logged-in sessions per terminal; the oldest is dropped beyond this.
pub const SESSIONS_MAX: usize = 16;
/// A session ends after this long without being used.
pub const SESSION_IDLE_MS: i64 = 12 * 60 * 60 * 1000;

#[derive(Debug, Clone)]
struct Session {
    user: User,
    last_used_ms: i64,
}

/// The logged-in sessions by token.
#[derive(Debug, Default)]
pub(super) struct Sessions(std::sync::Mutex<HashMap<String, Session>>);

impl Sessions {
    /// Opens a session for `user` (dropping idle ones, and the oldest beyond
    /// [`SESSIONS_MAX`]); returns its token.
    fn open(&self, user: &User) -> String {
        let token = token();
        let mut sessions = self.0.lock().expect("sessions lock");
        let now = now_ms();
        sessions.retain(|_, s| now - s.last_used_ms < SESSION_IDLE_MS);
        if sessions.len() >= SESSIONS_MAX {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.last_used_ms).map(|(t, _)| t.clone()) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(token.clone(), Session { user: user.clone(), last_used_ms: now });
        token
    }

    fn end(&self, token: &str) {
        self.0.lock().expect("sessions lock").remove(token);
    }

    /// The user of a session still in use (which counts as a use).
    fn user(&self, token: &str) -> Option<User> {
        let mut sessions = self.0.lock().expect("sessions lock");
        let now = now_ms();
        match sessions.get_mut(token) {
            Some(s) if now - s.last_used_ms < SESSION_IDLE_MS => {
                s.last_used_ms = now;
                Some(s.user.clone())
            }
            _ => None,
        }
    }
}

fn token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Till {
    /// Checks the PIN typed at `source` (the page's address) and opens a session;
    /// returns its token.
    pub async fn login(&self, id: String, pin: String, source: String) -> Result<(String, User), TillError> {
        let user = self.journal(move |j| j.authenticate(&id, &pin, &source, now_ms())).await?;
        let token = self.sessions.open(&user);
        tracing::info!(user = %user.id, terminal = self.terminal, "login");
        Ok((token, user))
    }

    pub fn logout(&self, token: &str) {
        self.sessions.end(token);
    }

    /// The user of a session token.
    pub fn session(&self, token: &str) -> Result<User, TillError> {
        self.sessions.user(token).ok_or(TillError::NotLoggedIn)
    }

    /// The approving manager: the logged-in user if a manager, else the one whose
    /// user id and PIN came with the request (typed at `source`).
    pub async fn manager(
        &self,
        user: &User,
        approval: Option<(String, String)>,
        source: String,
    ) -> Result<User, TillError> {
        if user.role == Role::Manager {
            return Ok(user.clone());
        }
        let (id, pin) = approval.ok_or(TillError::NeedsManager)?;
        let approver = self.journal(move |j| j.authenticate(&id, &pin, &source, now_ms())).await?;
        if approver.role != Role::Manager {
            return Err(TillError::NeedsManager);
        }
        Ok(approver)
    }
}
