//! Who may do what at HQ: operators and their roles, passwords, console sessions, API
//! tokens and their scopes, lockouts after wrong passwords.
//!
//! An operator has one [`Role`]; a role is a set of [`Permission`]s. An API token has
//! scopes, which are permissions too (an integration gets a role's set, or fewer). Every
//! route of the HTTP API names the one permission it needs (`api::ROUTES`); a caller —
//! a console session or a token — either holds it or is refused.
//!
//! Secrets are never stored: passwords as Argon2id hashes (OWASP's parameters, see
//! [`argon2_params`]), session ids and tokens as SHA-256 ([`sha256_hex`]) — they are
//! 256 random bits, so a fast hash is enough, and a leaked database gives nobody a way
//! in. A console write must also carry the session's CSRF token ([`csrf_token`]),
//! derived from the session id, which a page of another origin cannot read.
//!
//! Wrong passwords are counted per login and source address, as the store's PIN
//! lockouts are: someone guessing elsewhere on the network locks out only themselves;
//! lockouts grow from [`LOCKOUT_MS`], doubling, to [`LOCKOUT_MAX_MS`].
//!
//! Argon2 is slow on purpose: [`hash_password`] and [`verify_password`] run off the
//! async executor (through `sync_server::blocking`).

use std::fmt;
use std::path::Path;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::db::{AddOperator, Db, DbError, NewAudit, Operator, OperatorChange, Token};

/// Wrong passwords in a row, for one login from one source, before that source is locked out.
pub const PASSWORD_ATTEMPTS_MAX: i64 = 5;
/// The first lockout's length; each further one of the same login and source doubles it.
pub const LOCKOUT_MS: i64 = 30 * 1000;
/// The longest lockout.
pub const LOCKOUT_MAX_MS: i64 = 15 * 60 * 1000;
/// Lockouts in a row counted for the backoff at most.
pub const LOCKOUTS_COUNTED_MAX: i64 = 16;
/// (login, source) pairs with failures kept at most; beyond it the pairs not locked now
/// are forgotten, so a flood of sources cannot grow the table without bound.
pub const AUTH_FAILURE_ROWS_MAX: i64 = 10_000;
/// How long a console session lasts from its login: a working day, then log in again.
pub const SESSION_MS: i64 = 12 * 60 * 60 * 1000;
/// Console sessions one operator may hold at once (browsers, tablets); a new login past
/// it ends the oldest.
pub const SESSIONS_PER_OPERATOR_MAX: i64 = 20;
/// Operators HQ keeps at most (disabled ones included).
pub const OPERATORS_MAX: i64 = 1_000;
/// API tokens in force (neither revoked nor expired) at most.
pub const TOKENS_ACTIVE_MAX: i64 = 1_000;
/// Token rows kept at most; past it the oldest revoked or expired ones are forgotten.
pub const TOKEN_ROWS_MAX: i64 = 10_000;
/// Longest a token may be issued for, in days (about ten years).
pub const TOKEN_DAYS_MAX: u32 = 3_660;
/// Shortest and longest password, in characters. Long passphrases welcome; the upper
/// bound keeps Argon2's input (and a hostile request's work) bounded.
pub const PASSWORD_CHARS_MIN: usize = 10;
pub const PASSWORD_CHARS_MAX: usize = 128;
/// Longest login, in characters (`a–z 0–9 . _ -`).
pub const LOGIN_CHARS_MAX: usize = 32;
/// Longest operator's or token's display name, in characters.
pub const NAME_CHARS_MAX: usize = 64;
/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "kassa_hq_session";
/// The header that carries a console write's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// What an API token starts with, so that one pasted in a chat or a log is recognisable.
pub const TOKEN_PREFIX: &str = "khq_";
/// The first administrator's login, created when HQ starts with no operators.
pub const FIRST_ADMIN: &str = "admin";
/// Where HQ writes the first administrator's password (mode 0600), in its data dir.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// An operator's role. One spelling everywhere: [`Role::code`] (snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything, operators and tokens included.
    Administrator,
    /// Catalog, prices and promotions.
    Merchandiser,
    /// Stores, stock, parked records, neighbours.
    Operations,
    /// Customers and loyalty.
    Support,
    /// Reads business data and the audit log; writes nothing.
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 5] =
        [Role::Administrator, Role::Merchandiser, Role::Operations, Role::Support, Role::ReadOnly];

    pub fn code(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Merchandiser => "merchandiser",
            Role::Operations => "operations",
            Role::Support => "support",
            Role::ReadOnly => "read_only",
        }
    }

    /// The role of its [`code`](Role::code); any other word is refused, naming the roles.
    pub fn parse(s: &str) -> Result<Role, UnknownWord> {
        Role::ALL
            .into_iter()
            .find(|r| r.code() == s)
            .ok_or_else(|| UnknownWord::new("role", s, Role::ALL.map(Role::code)))
    }

    pub fn permissions(self) -> Permissions {
        use Permission::*;
        match self {
            Role::Administrator => Permissions::ALL,
            Role::Merchandiser => {
                Permissions::of(&[CatalogRead, CatalogWrite, PromotionsRead, PromotionsWrite, StockRead, LoyaltyRead])
            }
            Role::Operations => Permissions::of(&[
                StoresRead,
                StoresWrite,
                StockRead,
                StockWrite,
                ParkedRead,
                CatalogRead,
                PromotionsRead,
                OrdersRead,
                OrdersWrite,
            ]),
            Role::Support => Permissions::of(&[CustomersRead, LoyaltyRead, LoyaltyWrite, CatalogRead, OrdersRead]),
            Role::ReadOnly => Permissions::of(&[
                CatalogRead,
                PromotionsRead,
                LoyaltyRead,
                CustomersRead,
                StoresRead,
                StockRead,
                ParkedRead,
                AuditRead,
                OrdersRead,
            ]),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Role::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A word that is not one of the known ones (a role, a scope).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{word}`: one of {}", known.join(", "))]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
    pub known: Vec<&'static str>,
}

impl UnknownWord {
    fn new(what: &'static str, word: &str, known: impl IntoIterator<Item = &'static str>) -> Self {
        let word: String = word.chars().take(64).collect();
        UnknownWord { what, word, known: known.into_iter().collect() }
    }
}

/// What a route needs: one permission. An API token's scopes are permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    CatalogRead,
    CatalogWrite,
    PromotionsRead,
    PromotionsWrite,
    LoyaltyRead,
    LoyaltyWrite,
    CustomersRead,
    StoresRead,
    StoresWrite,
    StockRead,
    ParkedRead,
    AuditRead,
    /// Operators and API tokens: list, add, disable, issue, revoke.
    Operators,
    /// `/metrics` when HQ is configured to require a token for it.
    Metrics,
    /// Announce deliveries to stores (appended: a permission's bit is its position).
    StockWrite,
    /// Orders for pickup: read them and where items are available (appended).
    OrdersRead,
    /// Place and cancel orders for pickup: the online shop's token (appended).
    OrdersWrite,
}

impl Permission {
    pub const ALL: [Permission; 17] = [
        Permission::CatalogRead,
        Permission::CatalogWrite,
        Permission::PromotionsRead,
        Permission::PromotionsWrite,
        Permission::LoyaltyRead,
        Permission::LoyaltyWrite,
        Permission::CustomersRead,
        Permission::StoresRead,
        Permission::StoresWrite,
        Permission::StockRead,
        Permission::ParkedRead,
        Permission::AuditRead,
        Permission::Operators,
        Permission::Metrics,
        Permission::StockWrite,
        Permission::OrdersRead,
        Permission::OrdersWrite,
    ];

    /// The scope's name, as tokens list it and as `--scope` takes it.
    pub fn code(self) -> &'static str {
        match self {
            Permission::CatalogRead => "catalog:read",
            Permission::CatalogWrite => "catalog:write",
            Permission::PromotionsRead => "promotions:read",
            Permission::PromotionsWrite => "promotions:write",
            Permission::LoyaltyRead => "loyalty:read",
            Permission::LoyaltyWrite => "loyalty:write",
            Permission::CustomersRead => "customers:read",
            Permission::StoresRead => "stores:read",
            Permission::StoresWrite => "stores:write",
            Permission::StockRead => "stock:read",
            Permission::ParkedRead => "parked:read",
            Permission::AuditRead => "audit:read",
            Permission::Operators => "operators",
            Permission::Metrics => "metrics",
            Permission::StockWrite => "stock:write",
            Permission::OrdersRead => "orders:read",
            Permission::OrdersWrite => "orders:write",
        }
    }

    pub fn parse(s: &str) -> Result<Permission, UnknownWord> {
        Permission::ALL
            .into_iter()
            .find(|p| p.code() == s)
            .ok_or_else(|| UnknownWord::new("scope", s, Permission::ALL.map(Permission::code)))
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A set of permissions (a role's, or a token's scopes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u32);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);
    pub const ALL: Permissions = Permissions((1 << Permission::ALL.len() as u32) - 1);

    pub fn of(list: &[Permission]) -> Permissions {
        Permissions(list.iter().fold(0, |bits, p| bits | p.bit()))
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// The scopes' names, in [`Permission::ALL`] order.
    pub fn codes(self) -> Vec<&'static str> {
        self.iter().map(Permission::code).collect()
    }

    /// Parses scope names (each refused if unknown; duplicates are harmless).
    pub fn parse<'a>(codes: impl IntoIterator<Item = &'a str>) -> Result<Permissions, UnknownWord> {
        let list = codes.into_iter().map(Permission::parse).collect::<Result<Vec<_>, _>>()?;
        Ok(Permissions::of(&list))
    }

    /// As stored: the codes, space-separated.
    pub fn to_stored(self) -> String {
        self.codes().join(" ")
    }
}

impl Serialize for Permissions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.codes().serialize(s)
    }
}

/// Who is calling, once their credentials are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub who: Who,
    pub permissions: Permissions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A console session.
    Operator { login: String, role: Role },
    /// An API token.
    Token { id: i64, name: String },
}

impl Caller {
    /// As the audit log names them: the login, or `token N (name)`.
    pub fn actor(&self) -> String {
        match &self.who {
            Who::Operator { login, .. } => login.clone(),
            Who::Token { id, name } => format!("token {id} ({name})"),
        }
    }

    pub fn actor_kind(&self) -> &'static str {
        match self.who {
            Who::Operator { .. } => "operator",
            Who::Token { .. } => "token",
        }
    }
}

/// A refused login, password or name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("a login is 1 to {LOGIN_CHARS_MAX} of a–z, 0–9, `.`, `_`, `-`")]
    BadLogin,
    #[error("a password is {PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters, with no control characters")]
    BadPassword,
    #[error("a name is 1 to {NAME_CHARS_MAX} printable characters")]
    BadName,
}

pub fn check_login(login: &str) -> Result<(), CredentialError> {
    let ok = !login.is_empty()
        && login.len() <= LOGIN_CHARS_MAX
        && login.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CredentialError::BadLogin)
    }
}

pub fn check_password(password: &str) -> Result<(), CredentialError> {
    let n = password.chars().count();
    if (PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(&n) && !password.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(CredentialError::BadPassword)
    }
}

pub fn check_name(name: &str) -> Result<(), CredentialError> {
    let n = name.trim().chars().count();
    if (1..=NAME_CHARS_MAX).contains(&n) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(CredentialError::BadName)
    }
}

/// Argon2id with OWASP's recommended minimum: 19 MiB of memory, 2 passes, 1 lane.
/// Stated here rather than taken from the crate's defaults, which may move.
pub fn argon2_params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("OWASP's Argon2id parameters are valid")
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params())
}

#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// The PHC string of `password` (Argon2id, a fresh random salt). Slow: off the executor.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    argon2().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the stored PHC string (its own parameters are used, so
/// hashes made with older parameters still verify). Slow: off the executor.
pub fn verify_password(password: &str, stored: &str) -> bool {
    argon2().verify_password(password.as_bytes(), stored).is_ok()
}

/// A hash to check a password against when the login does not exist, so that a wrong
/// login takes as long as a wrong password and does not say which logins exist.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("not anybody's password").unwrap_or_default())
}

/// `n` bytes from the operating system's random source, as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// SHA-256 of a secret, as stored (sessions, tokens).
pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A new session id (256 random bits); the cookie carries it, the database its hash.
pub fn new_session_id() -> String {
    random_hex(32)
}

/// A new API token: `khq_` and 256 random bits.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_hex(32))
}

/// The CSRF token of a session: derived from its id, so it needs no storage and dies
/// with the session, and a page of another origin (which cannot read the cookie) cannot
/// know it.
pub fn csrf_token(session_id: &str) -> String {
    sha256_hex(&format!("kassa-hq csrf\n{session_id}"))
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A random password for a new operator: 20 characters from an alphabet without look-alikes
/// (no 0/O, 1/l/I), about 115 bits.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    // 256 is not a multiple of the alphabet's 57 letters: the bias (a few letters 1/256
    // likelier) costs well under a bit of the ~115.
    bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// The length of lockout number `n` (1-based) in a row.
pub fn lockout_ms(n: i64) -> i64 {
    let doublings = (n - 1).clamp(0, LOCKOUTS_COUNTED_MAX) as u32;
    LOCKOUT_MS.saturating_mul(1i64 << doublings.min(20)).min(LOCKOUT_MAX_MS)
}

/// Wrong passwords of one login from one source: how many in a row since the last
/// lockout, how many lockouts in a row, and until when it is locked (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttle {
    pub failures: i64,
    pub lockouts: i64,
    pub locked_until_ms: i64,
}

impl Throttle {
    /// Seconds left of a lockout in force at `now_ms`.
    pub fn locked_for_s(&self, now_ms: i64) -> Option<i64> {
        (self.locked_until_ms > now_ms).then(|| (self.locked_until_ms - now_ms + 999) / 1000)
    }

    /// After one more wrong password at `now_ms`: the new state, which is a new lockout
    /// when it reaches [`PASSWORD_ATTEMPTS_MAX`].
    pub fn after_failure(self, now_ms: i64) -> Throttle {
        let failures = self.failures + 1;
        if failures >= PASSWORD_ATTEMPTS_MAX {
            let lockouts = (self.lockouts + 1).min(LOCKOUTS_COUNTED_MAX);
            Throttle { failures: 0, lockouts, locked_until_ms: now_ms.saturating_add(lockout_ms(lockouts)) }
        } else {
            Throttle { failures, ..self }
        }
    }

    pub fn attempts_left(&self) -> i64 {
        PASSWORD_ATTEMPTS_MAX - self.failures
    }
}

/// Who did something, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `operator`, `token` or `system`.
    pub kind: &'static str,
    pub name: String,
}

impl Actor {
    /// Someone at HQ's machine (the `kassa-hq` command line, HQ's own start).
    pub fn system(what: &str) -> Actor {
        Actor { kind: "system", name: what.to_owned() }
    }

    pub fn audit(&self, at_ms: i64, action: &'static str, summary: serde_json::Value) -> NewAudit {
        NewAudit { at_ms, actor_kind: self.kind, actor: self.name.clone(), action, summary }
    }
}

impl Caller {
    pub fn as_actor(&self) -> Actor {
        Actor { kind: self.actor_kind(), name: self.actor() }
    }
}

/// A refused login. Whether the login exists is never said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("wrong login or password; {attempts_left} attempt(s) left before this login locks")]
    BadCredentials { attempts_left: i64 },
    #[error("too many wrong passwords: locked for {seconds_left} more seconds")]
    Locked { seconds_left: i64 },
    #[error("this operator is disabled; ask an administrator")]
    Disabled,
}

/// A console session just opened: its id goes in the cookie, never anywhere else.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub csrf: String,
    pub operator: Operator,
    pub expires_at_ms: i64,
}

/// Checks a password typed at `source` (the client's address) and opens a session.
/// Slow by design (Argon2id): run it off the executor.
pub fn login(
    db: &Db,
    login: &str,
    password: &str,
    source: &str,
    now_ms: i64,
) -> Result<Result<NewSession, LoginError>, DbError> {
    // Bounded before anything is hashed or stored: a login that cannot exist is counted
    // under one name, a password that cannot be one is simply wrong.
    let key = if check_login(login).is_ok() { login } else { "?" };
    let throttle = db.throttle(key, source)?;
    if let Some(seconds_left) = throttle.locked_for_s(now_ms) {
        return Ok(Err(LoginError::Locked { seconds_left }));
    }
    let found = if key == "?" { None } else { db.operator_with_hash(key)? };
    let plausible = password.chars().count() <= PASSWORD_CHARS_MAX;
    let ok = match &found {
        Some((_, hash)) if plausible => verify_password(password, hash),
        _ => {
            // As slow as a real check, so that timing does not tell which logins exist;
            // on at most a password's worth of characters.
            let bounded: String = password.chars().take(PASSWORD_CHARS_MAX).collect();
            let _ = verify_password(&bounded, decoy_hash());
            false
        }
    };
    match found {
        Some((operator, _)) if ok => {
            if operator.disabled {
                return Ok(Err(LoginError::Disabled));
            }
            if throttle != Throttle::default() {
                db.clear_throttle(key, source)?;
            }
            let id = new_session_id();
            let expires_at_ms = now_ms.saturating_add(SESSION_MS);
            db.create_session(&sha256_hex(&id), &operator.login, now_ms, expires_at_ms, SESSIONS_PER_OPERATOR_MAX)?;
            tracing::info!(login = %operator.login, %source, "operator logged in");
            Ok(Ok(NewSession { csrf: csrf_token(&id), id, operator, expires_at_ms }))
        }
        _ => {
            let after = throttle.after_failure(now_ms);
            let locked = after.locked_for_s(now_ms);
            let audit = locked.map(|seconds| {
                Actor::system("login").audit(
                    now_ms,
                    "login.locked",
                    json!({ "login": key, "source": source, "seconds": seconds }),
                )
            });
            db.set_throttle(key, source, after, now_ms, audit.as_ref())?;
            Ok(Err(match locked {
                Some(seconds_left) => {
                    tracing::warn!(login = %key, %source, seconds_left, "console login locked after wrong passwords");
                    LoginError::Locked { seconds_left }
                }
                None => LoginError::BadCredentials { attempts_left: after.attempts_left() },
            }))
        }
    }
}

/// The caller behind a session id (from the cookie), if the session is live.
pub fn session_caller(db: &Db, session_id: &str, now_ms: i64) -> Result<Option<Caller>, DbError> {
    let operator = db.session(&sha256_hex(session_id), now_ms)?;
    Ok(operator
        .map(|o| Caller { permissions: o.role.permissions(), who: Who::Operator { login: o.login, role: o.role } }))
}

/// A bearer token refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    #[error("unknown API token")]
    Unknown,
    #[error("this API token was revoked")]
    Revoked,
    #[error("this API token has expired")]
    Expired,
}

/// The caller behind a bearer token.
pub fn token_caller(db: &Db, token: &str, now_ms: i64) -> Result<Result<Caller, TokenRefused>, DbError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() != TOKEN_PREFIX.len() + 64 {
        return Ok(Err(TokenRefused::Unknown));
    }
    let Some(t) = db.token_by_hash(&sha256_hex(token))? else { return Ok(Err(TokenRefused::Unknown)) };
    if t.revoked_at_ms.is_some() {
        return Ok(Err(TokenRefused::Revoked));
    }
    if t.expires_at_ms.is_some_and(|at| at <= now_ms) {
        return Ok(Err(TokenRefused::Expired));
    }
    Ok(Ok(Caller { permissions: t.scopes, who: Who::Token { id: t.id, name: t.name } }))
}

/// An operator or a token refused.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("operator `{0}` already exists")]
    Exists(String),
    #[error("no operator `{0}`")]
    NoSuchOperator(String),
    #[error("HQ keeps at most {OPERATORS_MAX} operators")]
    TooManyOperators,
    #[error("at most {TOKENS_ACTIVE_MAX} API tokens may be in force; revoke some first")]
    TooManyTokens,
    #[error("a token needs at least one scope")]
    NoScopes,
    #[error("a token lasts 1 to {TOKEN_DAYS_MAX} days")]
    Days,
    #[error("no API token {0}")]
    NoSuchToken(i64),
    #[error("the last administrator cannot be disabled or lose the role")]
    LastAdministrator,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ManageError {
    /// The API's code for it.
    pub fn code(&self) -> &'static str {
        match self {
            ManageError::Credential(CredentialError::BadLogin) => "bad_login",
            ManageError::Credential(CredentialError::BadPassword) => "bad_password",
            ManageError::Credential(CredentialError::BadName) => "bad_name",
            ManageError::Exists(_) => "operator_exists",
            ManageError::NoSuchOperator(_) => "no_such_operator",
            ManageError::TooManyOperators => "too_many_operators",
            ManageError::TooManyTokens => "too_many_tokens",
            ManageError::NoScopes => "no_scopes",
            ManageError::Days => "bad_days",
            ManageError::NoSuchToken(_) => "no_such_token",
            ManageError::LastAdministrator => "last_administrator",
            ManageError::Hash(_) | ManageError::Db(_) => "internal",
        }
    }
}

/// Adds an operator (password hashed here: run off the executor), audited.
pub fn add_operator(
    db: &Db,
    login: &str,
    name: &str,
    role: Role,
    password: &str,
    by: &Actor,
    now_ms: i64,
) -> Result<Operator, ManageError> {
    check_login(login)?;
    check_name(name)?;
    check_password(password)?;
    let hash = hash_password(password)?;
    let op = Operator { login: login.into(), name: name.trim().into(), role, disabled: false, created_at_ms: now_ms };
    let audit = by.audit(now_ms, "operator.add", json!({ "login": login, "name": op.name, "role": role }));
    match db.add_operator(&op, &hash, OPERATORS_MAX, &audit)? {
        AddOperator::Added => Ok(op),
        AddOperator::Exists => Err(ManageError::Exists(login.into())),
        AddOperator::TooMany => Err(ManageError::TooManyOperators),
    }
}

/// What to change of an operator; `None` leaves it as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct OperatorEdit<'a> {
    pub name: Option<&'a str>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password: Option<&'a str>,
}

/// Changes an operator (name, role, disabled, password), audited; the last enabled
/// administrator keeps the role. A disabled operator's sessions end at once, and so do
/// all of an operator's sessions when the role or password changes. Hashes a new
/// password: run it off the executor.
pub fn change_operator(
    db: &Db,
    login: &str,
    edit: OperatorEdit<'_>,
    by: &Actor,
    now_ms: i64,
) -> Result<Operator, ManageError> {
    let OperatorEdit { name, role, disabled, password } = edit;
    if let Some(n) = name {
        check_name(n)?;
    }
    if let Some(p) = password {
        check_password(p)?;
    }
    let operators = db.operators()?;
    let Some(current) = operators.iter().find(|o| o.login == login) else {
        return Err(ManageError::NoSuchOperator(login.into()));
    };
    let loses_admin = current.role == Role::Administrator
        && !current.disabled
        && (disabled == Some(true) || role.is_some_and(|r| r != Role::Administrator));
    let admins = operators.iter().filter(|o| o.role == Role::Administrator && !o.disabled).count();
    if loses_admin && admins <= 1 {
        return Err(ManageError::LastAdministrator);
    }
    let password_hash = password.map(hash_password).transpose()?;
    let change = OperatorChange { name: name.map(|n| n.trim().to_owned()), role, disabled, password_hash };
    let audit = by.audit(
        now_ms,
        "operator.change",
        json!({ "login": login, "name": change.name, "role": role, "disabled": disabled, "password_changed": password.is_some() }),
    );
    db.change_operator(login, &change, &audit)?.ok_or_else(|| ManageError::NoSuchOperator(login.into()))
}

/// A token just issued: the secret is shown once, here, and never again.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: Token,
}

/// Issues an API token with `scopes`, for `days` (none: until revoked), audited.
pub fn issue_token(
    db: &Db,
    name: &str,
    scopes: Permissions,
    days: Option<u32>,
    by: &Actor,
    now_ms: i64,
) -> Result<IssuedToken, ManageError> {
    check_name(name)?;
    if scopes.is_empty() {
        return Err(ManageError::NoScopes);
    }
    if days.is_some_and(|d| d == 0 || d > TOKEN_DAYS_MAX) {
        return Err(ManageError::Days);
    }
    let token = new_token();
    let prefix = &token[..TOKEN_PREFIX.len() + 6];
    let expires = days.map(|d| now_ms.saturating_add(i64::from(d) * 24 * 60 * 60 * 1000));
    let audit =
        by.audit(now_ms, "token.issue", json!({ "name": name.trim(), "scopes": scopes, "expires_at_ms": expires }));
    let info = db
        .issue_token(
            &sha256_hex(&token),
            name.trim(),
            scopes,
            prefix,
            &by.name,
            now_ms,
            expires,
            TOKENS_ACTIVE_MAX,
            &audit,
        )?
        .ok_or(ManageError::TooManyTokens)?;
    Ok(IssuedToken { token, info })
}

/// Revokes a token, audited; revoking a revoked token changes nothing.
pub fn revoke_token(db: &Db, id: i64, by: &Actor, now_ms: i64) -> Result<Token, ManageError> {
    let audit = by.audit(now_ms, "token.revoke", json!({ "id": id }));
    db.revoke_token(id, now_ms, &audit)?.ok_or(ManageError::NoSuchToken(id))
}

/// When HQ has no operators (a new install, or an HQ upgraded from before operators
/// existed): creates [`FIRST_ADMIN`] with a random password, writes the password to
/// `data_dir/`[`INITIAL_PASSWORD_FILE`] (mode 0600) and logs it once. Returns the
/// password when it created the administrator.
pub fn ensure_first_admin(db: &Db, data_dir: &Path, now_ms: i64) -> Result<Option<String>, FirstAdminError> {
    if db.operator_count()? > 0 {
        return Ok(None);
    }
    let password = random_password();
    let path = data_dir.join(INITIAL_PASSWORD_FILE);
    write_secret(&path, &format!("{password}\n"))
        .map_err(|source| FirstAdminError::Io { path: path.clone(), source })?;
    add_operator(db, FIRST_ADMIN, "Administrator", Role::Administrator, &password, &Actor::system("install"), now_ms)?;
    tracing::warn!(
        login = FIRST_ADMIN,
        %password,
        file = %path.display(),
        "created the first administrator; log in to the console and keep or change this password"
    );
    Ok(Some(password))
}

#[derive(Debug, thiserror::Error)]
pub enum FirstAdminError {
    #[error("cannot write the first administrator's password to {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot create the first administrator: {0}")]
    Manage(#[from] ManageError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Writes a file only its owner can read (created with mode 0600, never widened).
fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_have_one_spelling_and_unknown_words_are_refused() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.code()), Ok(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.code()));
        }
        for bad in ["Administrator", "admin", "read-only", "readonly", "", "merchandiser "] {
            let e = Role::parse(bad).unwrap_err();
            assert!(e.to_string().contains("read_only"), "{e}");
        }
        assert!(serde_json::from_str::<Role>("\"root\"").is_err());
    }

    #[test]
    fn scopes_parse_and_print_the_same_and_roles_hold_what_they_should() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.code()), Ok(p));
        }
        assert!(Permission::parse("catalog").is_err());
        let all = Permissions::parse(Permission::ALL.map(Permission::code)).unwrap();
        assert_eq!(all, Permissions::ALL);
        assert_eq!(Permissions::parse(all.to_stored().split(' ')).unwrap(), all);
        use Permission::*;
        assert!(Role::Merchandiser.permissions().contains(CatalogWrite));
        assert!(!Role::Merchandiser.permissions().contains(StoresWrite));
        assert!(!Role::Operations.permissions().contains(CatalogWrite));
        assert!(Role::Support.permissions().contains(CustomersRead));
        assert!(!Role::Support.permissions().contains(PromotionsWrite));
        // Read-only writes nothing and reads the audit log.
        let ro = Role::ReadOnly.permissions();
        assert!(ro.contains(AuditRead));
        for write in [CatalogWrite, PromotionsWrite, LoyaltyWrite, StoresWrite, Operators] {
            assert!(!ro.contains(write), "{write}");
        }
        // Only administrators manage operators and tokens.
        for r in Role::ALL {
            assert_eq!(r.permissions().contains(Operators), r == Role::Administrator, "{r}");
        }
    }

    #[test]
    fn passwords_hash_with_argon2id_at_owasp_parameters_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        // A fresh salt each time.
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
        assert!(!verify_password("anything at all", decoy_hash()));
    }

    #[test]
    fn logins_and_passwords_are_checked() {
        assert!(check_login("anna.k_2-x").is_ok());
        for bad in ["", "Anna", "anna k", "анна", &"a".repeat(LOGIN_CHARS_MAX + 1)] {
            assert_eq!(check_login(bad), Err(CredentialError::BadLogin), "{bad}");
        }
        assert!(check_password("ten chars!").is_ok());
        for bad in ["short", "has a\nnewline", &"x".repeat(PASSWORD_CHARS_MAX + 1)] {
            assert_eq!(check_password(bad), Err(CredentialError::BadPassword), "{bad:?}");
        }
        let p = random_password();
        assert!(check_password(&p).is_ok() && p.len() == 20, "{p}");
    }

    #[test]
    fn tokens_are_random_and_stored_as_sha256() {
        let t = new_token();
        assert!(t.starts_with(TOKEN_PREFIX) && t.len() == TOKEN_PREFIX.len() + 64, "{t}");
        assert_ne!(t, new_token());
        let h = sha256_hex(&t);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&t[TOKEN_PREFIX.len()..]));
        // SHA-256 of "abc", the standard test vector.
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let s = new_session_id();
        assert_ne!(csrf_token(&s), csrf_token(&new_session_id()));
        assert!(same_secret(&csrf_token(&s), &csrf_token(&s)));
        assert!(!same_secret(&csrf_token(&s), &csrf_token(&s)[1..]));
    }

    #[test]
    fn five_wrong_passwords_lock_and_each_lockout_in_a_row_doubles() {
        let mut t = Throttle::default();
        for left in (1..PASSWORD_ATTEMPTS_MAX).rev() {
            t = t.after_failure(1_000);
            assert_eq!((t.attempts_left(), t.locked_for_s(1_000)), (left, None));
        }
        t = t.after_failure(1_000);
        assert_eq!(t.locked_for_s(1_000), Some(30));
        assert_eq!(t.locked_for_s(1_000 + LOCKOUT_MS), None);
        let mut now = 1_000 + LOCKOUT_MS;
        for _ in 0..PASSWORD_ATTEMPTS_MAX {
            t = t.after_failure(now);
        }
        assert_eq!(t.locked_for_s(now), Some(60));
        for _ in 0..40 {
            now = t.locked_until_ms;
            for _ in 0..PASSWORD_ATTEMPTS_MAX {
                t = t.after_failure(now);
            }
        }
        assert_eq!(t.locked_for_s(now), Some(LOCKOUT_MAX_MS / 1000));
        assert_eq!(lockout_ms(i64::MAX), LOCKOUT_MAX_MS);
    }
}
