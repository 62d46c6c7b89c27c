//! HQ's SQL on either backend: the embedded SQLite file or PostgreSQL (issue #17).
//!
//! A small facade shaped like the part of `rusqlite` HQ uses (`Connection`,
//! `Transaction`, prepared statements, `params!`, `.optional()`), so each query is
//! written once. Statements are written in SQLite's dialect restricted to what both
//! speak (`?N` placeholders, `ON CONFLICT (…) DO …` with a target, `RETURNING`,
//! `GREATEST` for the scalar max); [`pg_statement`] and [`lite_statement`] make the few
//! spelling changes each needs, and [`pg_ddl`] turns the schema's SQLite DDL into
//! PostgreSQL's (one schema history, two spellings). Values cross as [`Value`]: integers
//! (`i64`), text, bytes and NULL; PostgreSQL's columns are `BIGINT`, `TEXT` and `BYTEA`.
//!
//! On PostgreSQL every transaction takes one transaction-scoped advisory lock
//! ([`WRITE_LOCK`]): writes from every HQ node are serialised as they are on the one
//! SQLite connection, so the read-then-write steps (loyalty grants, return claims, order
//! numbers) need no other care; single statements outside a transaction are atomic by
//! themselves. Batches of plain sales hold it shared
//! ([`Connection::transaction_shared`]): they only add rows and max-merge counters, so
//! they run side by side, and a batch that reads to decide (a return, an order's
//! payment) waits for them and they for it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The advisory lock every PostgreSQL transaction of HQ's holds (an arbitrary constant,
/// "KASSA" in ASCII).
pub const WRITE_LOCK: i64 = 0x4b_41_53_53_41;

/// Prepared statements kept per PostgreSQL connection, at most.
pub const PG_STATEMENTS_CACHED_MAX: usize = 256;

/// An error from either backend, or a value that did not fit the Rust type asked for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error("PostgreSQL refused {sql:?}: {source}")]
    Prepare { sql: String, source: postgres::Error },
    #[error("no row")]
    NoRows,
    #[error("column {column}: {detail}")]
    Conversion { column: usize, detail: String },
}

impl Error {
    /// A value read from column `column` that is not what the record needs.
    pub fn conversion(column: usize, detail: impl std::fmt::Display) -> Error {
        Error::Conversion { column, detail: detail.to_string() }
    }

    /// The database could not be reached or its connection broke: HQ stops
    /// acknowledging until it is back (nothing written).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Pool(_) => true,
            Error::Postgres(e) | Error::Prepare { source: e, .. } => e.is_closed() || e.code().is_none(),
            _ => false,
        }
    }

    /// SQLite's disk (or PostgreSQL's) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => f.code == rusqlite::ErrorCode::DiskFull,
            Error::Postgres(e) => e.code() == Some(&postgres::error::SqlState::DISK_FULL),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `.optional()` on a single-row query, as in `rusqlite`.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) | Err(Error::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Text(Cow<'a, str>),
    Blob(Cow<'a, [u8]>),
}

impl Value<'_> {
    /// The same value, borrowing what it holds.
    pub fn borrowed(&self) -> Value<'_> {
        match self {
            Value::Null => Value::Null,
            Value::Int(i) => Value::Int(*i),
            Value::Text(t) => Value::Text(Cow::Borrowed(t)),
            Value::Blob(b) => Value::Blob(Cow::Borrowed(b)),
        }
    }
}

/// What can be bound to a statement.
pub trait ToValue {
    fn to_value(&self) -> Result<Value<'_>>;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Result<Value<'_>> {
                i64::try_from(*self).map(Value::Int).map_err(|_| Error::conversion(0, format!("{self} does not fit a 64-bit integer")))
            }
        }
    )*};
}
int_to_value!(i64, i32, i16, u32, u16, u8, u64, usize);

impl ToValue for bool {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Int(i64::from(*self)))
    }
}
impl ToValue for str {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(Cow::Borrowed(self)))
    }
}
impl ToValue for String {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(Cow::Borrowed(self)))
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Blob(Cow::Borrowed(self)))
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Blob(Cow::Borrowed(self)))
    }
}
impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Blob(Cow::Borrowed(self)))
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Result<Value<'_>> {
        match self {
            Some(v) => v.to_value(),
            None => Ok(Value::Null),
        }
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Result<Value<'_>> {
        (**self).to_value()
    }
}

/// A statement's parameters: `params![a, b]`, `[a, b]` or `[]`.
pub trait Params {
    fn values(&self) -> Result<Vec<Value<'_>>>;
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Result<Vec<Value<'_>>> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

impl Params for &[Value<'_>] {
    fn values(&self) -> Result<Vec<Value<'_>>> {
        Ok(self.iter().map(Value::borrowed).collect())
    }
}

impl Params for [&dyn ToValue; 0] {
    fn values(&self) -> Result<Vec<Value<'_>>> {
        Ok(Vec::new())
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(&self) -> Result<Vec<Value<'_>>> {
                self.iter().map(|p| p.to_value()).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4);

/// `params![a, b, …]`: a statement's parameters of mixed types.
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        &[$(&$p as &dyn $crate::db::sql::ToValue),*] as &[&dyn $crate::db::sql::ToValue]
    };
}
pub(crate) use params;

/// A value read from a row, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// What a column can be read as.
pub trait FromValue: Sized {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String>;
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
                match v {
                    ValueRef::Int(i) => <$t>::try_from(i).map_err(|_| format!("{i} does not fit {}", stringify!($t))),
                    other => Err(format!("expected an integer, found {other:?}")),
                }
            }
        }
    )*};
}
int_from_value!(i64, i32, u32, u16, u8, u64, usize);

impl FromValue for bool {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        i64::from_value(v).map(|i| i != 0)
    }
}
impl FromValue for String {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Text(s) => Ok(s.to_owned()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a result.
pub enum Row<'r> {
    Lite(&'r rusqlite::Row<'r>),
    Pg(&'r postgres::Row),
}

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Row::Lite(_) => "Row(SQLite)",
            Row::Pg(_) => "Row(PostgreSQL)",
        })
    }
}

impl Row<'_> {
    /// Column `i` as `T`.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = match self {
            Row::Lite(r) => match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => ValueRef::Null,
                rusqlite::types::ValueRef::Integer(n) => ValueRef::Int(n),
                rusqlite::types::ValueRef::Text(t) => {
                    ValueRef::Text(std::str::from_utf8(t).map_err(|e| Error::conversion(i, e))?)
                }
                rusqlite::types::ValueRef::Blob(b) => ValueRef::Blob(b),
                rusqlite::types::ValueRef::Real(f) => {
                    return Err(Error::conversion(i, format!("unexpected real number {f}")))
                }
            },
            Row::Pg(r) => r.try_get::<_, PgRef<'_>>(i)?.0,
        };
        T::from_value(v).map_err(|detail| Error::Conversion { column: i, detail })
    }
}

/// Which database a connection is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One connection, to either backend.
pub struct Connection(Inner);

enum Inner {
    Lite(rusqlite::Connection),
    Pg(Box<RefCell<PgSession>>),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({:?})", self.backend())
    }
}

/// Runs `f`, which blocks on PostgreSQL (the `postgres` crate drives its own runtime), so
/// that it may be called from a task of HQ's multi-threaded runtime as from a blocking
/// thread: on a runtime worker the worker is handed over for the call
/// (`block_in_place`). A current-thread runtime cannot do that: call HQ's database from
/// `spawn_blocking` there.
fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A PostgreSQL client and the statements it has prepared.
pub struct PgSession {
    /// Always `Some` until dropped (taken to be closed off the runtime).
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
}

impl PgSession {
    fn client(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("a session's client is there until it is dropped")
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        // Closing the client blocks on its runtime too (a pool dropped inside a task).
        if let Some(client) = self.client.take() {
            off_runtime(|| drop(client));
        }
    }
}

impl std::fmt::Debug for PgSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgSession({} statements)", self.statements.len())
    }
}

impl Connection {
    pub fn sqlite(conn: rusqlite::Connection) -> Connection {
        Connection(Inner::Lite(conn))
    }

    pub fn postgres(client: postgres::Client) -> Connection {
        Connection(Inner::Pg(Box::new(RefCell::new(PgSession { client: Some(client), statements: HashMap::new() }))))
    }

    pub fn backend(&self) -> Backend {
        match &self.0 {
            Inner::Lite(_) => Backend::Sqlite,
            Inner::Pg(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection underneath, for what only SQLite has (pragmas, files).
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.0 {
            Inner::Lite(c) => Some(c),
            Inner::Pg(_) => None,
        }
    }

    /// Runs statements without parameters, as written (DDL, transaction control).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.0 {
            Inner::Lite(c) => Ok(c.execute_batch(sql)?),
            Inner::Pg(s) => Ok(off_runtime(|| s.borrow_mut().client().batch_execute(sql))?),
        }
    }

    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare_cached(sql)
    }

    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        match &self.0 {
            Inner::Lite(c) => Ok(Statement::Lite(c.prepare_cached(&lite_statement(sql))?)),
            Inner::Pg(s) => {
                let statement = {
                    let mut session = s.borrow_mut();
                    match session.statements.get(sql) {
                        Some(st) => st.clone(),
                        None => {
                            let st = off_runtime(|| session.client().prepare(&pg_statement(sql)))
                                .map_err(|source| Error::Prepare { sql: sql.chars().take(300).collect(), source })?;
                            if session.statements.len() >= PG_STATEMENTS_CACHED_MAX {
                                session.statements.clear();
                            }
                            session.statements.insert(sql.to_owned(), st.clone());
                            st
                        }
                    }
                };
                Ok(Statement::Pg(s, statement))
            }
        }
    }

    /// PostgreSQL only: a statement with whole arrays (and other values PostgreSQL takes
    /// as they are) for parameters, e.g. an `UPDATE … FROM UNNEST(…)` of many rows.
    pub fn execute_arrays(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<()> {
        let Statement::Pg(session, st) = self.prepare_cached(sql)? else {
            return Err(Error::conversion(0, "array parameters are PostgreSQL's"));
        };
        off_runtime(|| session.borrow_mut().client().execute(&st, params))?;
        Ok(())
    }

    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<T>(&self, sql: &str, params: impl Params, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Begins a transaction; it rolls back unless committed. On PostgreSQL it first takes
    /// [`WRITE_LOCK`], so HQ's transactions run one at a time across every node.
    pub fn transaction(&mut self) -> Result<Transaction<'_>> {
        self.begin("pg_advisory_xact_lock")
    }

    /// A transaction that only adds what no other transaction reads to decide (a store's
    /// plain sales: its records and lines, max-merged counters): on PostgreSQL it holds
    /// [`WRITE_LOCK`] shared, so such transactions run side by side (their commits flushed
    /// together) and the others still each alone.
    pub fn transaction_shared(&mut self) -> Result<Transaction<'_>> {
        self.begin("pg_advisory_xact_lock_shared")
    }

    fn begin(&mut self, lock: &str) -> Result<Transaction<'_>> {
        match &self.0 {
            Inner::Lite(c) => c.execute_batch("BEGIN")?,
            Inner::Pg(s) => {
                let begin = format!("BEGIN; SELECT {lock}({WRITE_LOCK})");
                off_runtime(|| s.borrow_mut().client().batch_execute(&begin))?
            }
        }
        Ok(Transaction { conn: self, done: false })
    }
}

/// An open transaction; dereferences to its connection.
#[derive(Debug)]
pub struct Transaction<'c> {
    conn: &'c mut Connection,
    done: bool,
}

impl Transaction<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.conn.execute_batch("COMMIT")
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            // A broken connection has rolled back already; the pool drops it.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A prepared statement.
pub enum Statement<'c> {
    Lite(rusqlite::CachedStatement<'c>),
    Pg(&'c RefCell<PgSession>, postgres::Statement),
}

impl std::fmt::Debug for Statement<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Statement::Lite(_) => "Statement(SQLite)",
            Statement::Pg(..) => "Statement(PostgreSQL)",
        })
    }
}

impl Statement<'_> {
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        let values = params.values()?;
        match self {
            Statement::Lite(st) => Ok(st.execute(rusqlite::params_from_iter(values.iter()))?),
            Statement::Pg(s, st) => {
                let pg = pg_values(&values);
                let n = off_runtime(|| s.borrow_mut().client().execute(st, &pg_refs(&pg)))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Every row, each through `f` (read whole before `f` runs on PostgreSQL).
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let values = params.values()?;
        let mut out = Vec::new();
        match self {
            Statement::Lite(st) => {
                let mut rows = st.query(rusqlite::params_from_iter(values.iter()))?;
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Lite(r)));
                }
            }
            Statement::Pg(s, st) => {
                let pg = pg_values(&values);
                let rows = off_runtime(|| s.borrow_mut().client().query(st, &pg_refs(&pg)))?;
                out.extend(rows.iter().map(|r| f(&Row::Pg(r))));
            }
        }
        Ok(out.into_iter())
    }

    /// The first row through `f`; [`Error::NoRows`] if there is none.
    pub fn query_row<T>(&mut self, params: impl Params, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        let values = params.values()?;
        match self {
            Statement::Lite(st) => {
                let mut rows = st.query(rusqlite::params_from_iter(values.iter()))?;
                match rows.next()? {
                    Some(r) => f(&Row::Lite(r)),
                    None => Err(Error::NoRows),
                }
            }
            Statement::Pg(s, st) => {
                let pg = pg_values(&values);
                let rows = off_runtime(|| s.borrow_mut().client().query(st, &pg_refs(&pg)))?;
                match rows.first() {
                    Some(r) => f(&Row::Pg(r)),
                    None => Err(Error::NoRows),
                }
            }
        }
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as V};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => V::Null,
            Value::Int(i) => V::Integer(*i),
            Value::Text(t) => V::Text(t.as_bytes()),
            Value::Blob(b) => V::Blob(b),
        }))
    }
}

/// A [`Value`] as PostgreSQL takes it: an integer fits whichever integer type the
/// server inferred for the parameter.
#[derive(Debug)]
struct PgValue<'a>(&'a Value<'a>);

fn pg_values<'a>(values: &'a [Value<'a>]) -> Vec<PgValue<'a>> {
    values.iter().map(PgValue).collect()
}

fn pg_refs<'a>(values: &'a [PgValue<'a>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)).collect()
}

impl postgres::types::ToSql for PgValue<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        match self.0 {
            Value::Null => Ok(postgres::types::IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => Err(format!("an integer for a parameter of type {ty}").into()),
            },
            Value::Text(t) => t.as_ref().to_sql(ty, out),
            Value::Blob(b) => b.as_ref().to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A column as PostgreSQL sends it, read as a [`ValueRef`]: integers of every width,
/// booleans as 0/1, text, bytes, and integral `NUMERIC` (what `SUM` of a `BIGINT` is).
struct PgRef<'a>(ValueRef<'a>);

impl<'a> postgres::types::FromSql<'a> for PgRef<'a> {
    fn from_sql(ty: &postgres::types::Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        Ok(PgRef(match *ty {
            Type::INT8 => ValueRef::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => ValueRef::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => ValueRef::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => ValueRef::Int(bool::from_sql(ty, raw)?.into()),
            Type::NUMERIC => ValueRef::Int(numeric_integer(raw)?),
            Type::BYTEA => ValueRef::Blob(raw),
            _ => ValueRef::Text(<&str>::from_sql(ty, raw)?),
        }))
    }

    fn from_sql_null(_: &postgres::types::Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgRef(ValueRef::Null))
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
}

/// An integral `NUMERIC` in PostgreSQL's binary form (digit count, weight, sign, scale,
/// then base-10,000 digits) as an `i64`.
fn numeric_integer(raw: &[u8]) -> Result<i64, String> {
    let word = |i: usize| -> Result<i16, String> {
        raw.get(i * 2..i * 2 + 2).map(|b| i16::from_be_bytes([b[0], b[1]])).ok_or_else(|| "short NUMERIC".to_owned())
    };
    let (ndigits, weight, sign) = (word(0)?, word(1)?, word(2)? as u16);
    let mut value: i64 = 0;
    for i in 0..usize::try_from(ndigits).map_err(|_| "bad NUMERIC")? {
        let power = i64::from(weight) - i as i64;
        if power < 0 {
            if word(4 + i)? != 0 {
                return Err("a NUMERIC with a fraction where an integer was expected".into());
            }
            continue;
        }
        let digit = i64::from(word(4 + i)?);
        let scale = 10_000i64.checked_pow(u32::try_from(power).map_err(|_| "bad NUMERIC")?);
        let term = scale.and_then(|s| digit.checked_mul(s)).ok_or("NUMERIC beyond 64 bits")?;
        value = value.checked_add(term).ok_or("NUMERIC beyond 64 bits")?;
    }
    match sign {
        0x0000 => Ok(value),
        0x4000 => Ok(-value),
        _ => Err("NUMERIC is not a number".into()),
    }
}

/// Rows of one statement at most on SQLite (a power of two: a run of rows goes in
/// statements of 256, 128, … 1 rows, so that few distinct statements are prepared).
pub const ROWS_PER_STATEMENT_MAX: usize = 256;

/// Inserts `rows` (each of the same number of columns) with as few statements as it
/// takes: `head` up to `VALUES`, the rows, then `tail` (an `ON CONFLICT` clause, a
/// `RETURNING`); what `RETURNING` gives, through `f`. The rows may as well be a named
/// relation to query: `head` `WITH t (a, b) AS (`, `tail` `) SELECT … FROM t …`. One statement a row is a round trip
/// a row on PostgreSQL: there the rows go as one array a column (`UNNEST`), one statement
/// whatever their number; on SQLite as multi-row `VALUES`.
pub fn insert_rows<T>(
    conn: &Connection,
    head: &str,
    rows: &[Vec<Value<'_>>],
    tail: &str,
    mut f: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    if let (Inner::Pg(_), Some(columns)) = (&conn.0, PgColumn::of(rows)) {
        let types: Vec<String> =
            columns.iter().enumerate().map(|(i, c)| format!("?{}::{}[]", i + 1, c.array_type())).collect();
        let sql = format!("{head} SELECT * FROM UNNEST({}) {tail}", types.join(", "));
        let Statement::Pg(session, st) = conn.prepare_cached(&sql)? else { unreachable!("a PostgreSQL statement") };
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = columns.iter().map(PgColumn::as_param).collect();
        let found = off_runtime(|| session.borrow_mut().client().query(&st, &refs))?;
        return found.iter().map(|r| f(&Row::Pg(r))).collect();
    }
    let mut out = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let n = if rest.len() >= ROWS_PER_STATEMENT_MAX { ROWS_PER_STATEMENT_MAX } else { 1 << rest.len().ilog2() };
        let (chunk, after) = rest.split_at(n);
        rest = after;
        let columns = chunk[0].len();
        let mut sql = String::with_capacity(head.len() + tail.len() + n * columns * 5);
        sql.push_str(head);
        sql.push_str(" VALUES ");
        for r in 0..n {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..columns {
                if c > 0 {
                    sql.push(',');
                }
                let _ = write!(sql, "?{}", r * columns + c + 1);
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(tail);
        let values: Vec<Value<'_>> = chunk.iter().flatten().map(Value::borrowed).collect();
        out.extend(conn.prepare_cached(&sql)?.query_map(values.as_slice(), &mut f)?.collect::<Result<Vec<T>>>()?);
    }
    Ok(out)
}

/// One column of rows, as a PostgreSQL array.
enum PgColumn<'a> {
    Int(Vec<i64>),
    Text(Vec<&'a str>),
    Blob(Vec<&'a [u8]>),
}

impl<'a> PgColumn<'a> {
    /// The rows' columns, if every value of each column is of one type (no NULL).
    fn of(rows: &'a [Vec<Value<'a>>]) -> Option<Vec<PgColumn<'a>>> {
        let mut columns: Vec<PgColumn<'a>> = rows[0]
            .iter()
            .map(|v| match v {
                Value::Int(_) => Some(PgColumn::Int(Vec::with_capacity(rows.len()))),
                Value::Text(_) => Some(PgColumn::Text(Vec::with_capacity(rows.len()))),
                Value::Blob(_) => Some(PgColumn::Blob(Vec::with_capacity(rows.len()))),
                Value::Null => None,
            })
            .collect::<Option<_>>()?;
        for row in rows {
            if row.len() != columns.len() {
                return None;
            }
            for (column, value) in columns.iter_mut().zip(row) {
                match (column, value) {
                    (PgColumn::Int(c), Value::Int(i)) => c.push(*i),
                    (PgColumn::Text(c), Value::Text(t)) => c.push(t.as_ref()),
                    (PgColumn::Blob(c), Value::Blob(b)) => c.push(b.as_ref()),
                    _ => return None,
                }
            }
        }
        Some(columns)
    }

    fn array_type(&self) -> &'static str {
        match self {
            PgColumn::Int(_) => "bigint",
            PgColumn::Text(_) => "text",
            PgColumn::Blob(_) => "bytea",
        }
    }

    fn as_param(&self) -> &(dyn postgres::types::ToSql + Sync) {
        match self {
            PgColumn::Int(c) => c,
            PgColumn::Text(c) => c,
            PgColumn::Blob(c) => c,
        }
    }
}

/// A statement as PostgreSQL spells it: `?N` placeholders become `$N` (outside quotes).
pub fn pg_statement(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

/// A statement as SQLite spells it: the scalar `GREATEST(a, b)` is SQLite's `MAX(a, b)`.
pub fn lite_statement(sql: &str) -> Cow<'_, str> {
    if sql.contains("GREATEST(") {
        Cow::Owned(sql.replace("GREATEST(", "MAX("))
    } else {
        Cow::Borrowed(sql)
    }
}

/// The schema's SQLite DDL as PostgreSQL's: 64-bit integers, `BYTEA` for blobs, an
/// identity for SQLite's row-id keys, text compared byte by byte as SQLite does (`COLLATE
/// "C"`, whatever the database's locale), no `STRICT`/`WITHOUT ROWID` (PostgreSQL's
/// tables are strict and have no row ids).
pub fn pg_ddl(sql: &str) -> String {
    let mut out = sql
        .replace(") STRICT, WITHOUT ROWID;", ");")
        .replace(") STRICT;", ");")
        .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER PRIMARY KEY");
    out = replace_word(&out, "INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY");
    out = replace_word(&out, "INTEGER", "BIGINT");
    out = replace_word(&out, "TEXT", "TEXT COLLATE \"C\"");
    replace_word(&out, "BLOB", "BYTEA")
}

/// Replaces `word` where it stands alone (not inside an identifier).
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        out.push_str(&rest[..at]);
        let after = rest[at + word.len()..].chars().next();
        out.push_str(if ident(out.chars().last()) || ident(after) { word } else { with });
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// Opens PostgreSQL connections for the pool, each ready for HQ's statements.
#[derive(Debug, Clone)]
pub struct PgManager {
    config: postgres::Config,
}

impl PgManager {
    pub fn new(url: &str, connect_timeout: Duration) -> Result<PgManager, String> {
        let mut config: postgres::Config = url.parse().map_err(|e| format!("database URL: {e}"))?;
        config.connect_timeout(connect_timeout);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        config.application_name("kassa-hq");
        Ok(PgManager { config })
    }
}

impl PgManager {
    /// A client outside the pool (for `LISTEN`).
    pub fn client(&self) -> Result<postgres::Client> {
        Ok(off_runtime(|| self.config.connect(postgres::NoTls))?)
    }
}

impl r2d2::ManageConnection for PgManager {
    type Connection = Connection;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Connection, postgres::Error> {
        Ok(Connection::postgres(off_runtime(|| self.config.connect(postgres::NoTls))?))
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), postgres::Error> {
        match &conn.0 {
            Inner::Pg(s) => off_runtime(|| s.borrow_mut().client().simple_query("").map(|_| ())),
            Inner::Lite(_) => Ok(()),
        }
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        match &conn.0 {
            Inner::Pg(s) => s.borrow_mut().client().is_closed(),
            Inner::Lite(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_spelled_for_each_backend() {
        assert_eq!(
            pg_statement("SELECT a FROM t WHERE b = ?1 AND c = '?x' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?x' AND d = $12"
        );
        assert_eq!(lite_statement("UPDATE s SET a = GREATEST(a, ?2)"), "UPDATE s SET a = MAX(a, ?2)");
        assert!(matches!(lite_statement("SELECT 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_schema_is_spelled_for_postgres() {
        let ddl = "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, b BLOB, INTEGERS TEXT) STRICT;
                   CREATE TABLE k (seq INTEGER PRIMARY KEY AUTOINCREMENT, x INTEGER) STRICT, WITHOUT ROWID;";
        assert_eq!(
            pg_ddl(ddl),
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, b BYTEA, INTEGERS TEXT COLLATE \"C\");
                   CREATE TABLE k (seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, x BIGINT);"
        );
    }

    #[test]
    fn integral_numerics_are_read_exactly() {
        // 123456789 = 1·10000² + 2345·10000 + 6789, weight 2; negative sign 0x4000.
        let numeric = |sign: u16, digits: &[i16], weight: i16| {
            let mut raw = Vec::new();
            for w in [digits.len() as i16, weight, sign as i16, 0] {
                raw.extend_from_slice(&w.to_be_bytes());
            }
            for d in digits {
                raw.extend_from_slice(&d.to_be_bytes());
            }
            raw
        };
        assert_eq!(numeric_integer(&numeric(0, &[1, 2345, 6789], 2)), Ok(123_456_789));
        assert_eq!(numeric_integer(&numeric(0x4000, &[5], 0)), Ok(-5));
        assert_eq!(numeric_integer(&numeric(0, &[], 0)), Ok(0));
        assert_eq!(numeric_integer(&numeric(0, &[7], 1)), Ok(70_000), "trailing zero digits are left out");
        assert!(numeric_integer(&numeric(0, &[1, 5], 0)).is_err(), "1.0005 is not an integer");
        assert!(numeric_integer(&numeric(0, &[1, 0, 0, 0, 0, 0], 5)).is_err(), "10^20 does not fit");
        assert!(numeric_integer(&[0, 1]).is_err());
    }
}
