//! Kassa's shared language, written without I/O.
//!
//! # Layout
//! - [`money`]: [`Kopecks`], the only money type — an `i64`, never a float.
//! - [`ids`]: store, actor, sale and SKU identities.
//! - [`lww`]: HQ-versioned last-writer-wins registers (catalog, prices, rules).
//! - [`gtin`]: GTIN-8/12/13/14 with check-digit validation.
//! - [`catalog`]: catalog items, VAT rates, units, and the CSV format HQ imports.
//! - [`pricing`]: line amounts and VAT, computed in integers with documented rounding.
//! - [`promotions`]: the promotion engine every channel prices baskets with.
//! - [`basket`]: an open basket at the till.
//! - [`sale`]: committed sales — immutable records replicated to HQ.
//! - [`orders`]: orders for pickup at a store: their states, merge, reservations and handover.
//! - [`receipt_proof`]: the signed code on a receipt that another store's till verifies offline.
//! - [`returns`]: returns, and the rules that keep them within what was sold.
//! - [`seeded`]: a deterministic generator for simulations and tests.
//! - [`stock`]: stock as a PN-counter of per-actor running totals.
//! - [`loyalty`]: customers, loyalty rules, and points as a bounded counter (escrow).
//! - [`format`](mod@format): the boundary types: what is stored and sent, by format version, and
//!   their conversions to and from the types the code reasons with.
//! - [`wire`]: the messages stores and HQ exchange and their length-prefixed codec.
//! - [`sync`]: the sans-IO sync state machines of a store and of HQ.
//! - `fuzzing` (hidden): the bodies of the fuzz targets in `protocol/fuzz`, run by the
//!   unit tests too.
//! - `testing` (hidden): fixtures for tests — a basket line, a sale — with defaults to
//!   override.
//!
//! **Architecture invariant:** nothing here reads a clock, a socket or a file. Time is
//! passed in as [`std::time::Instant`] by the caller, which makes the sync core
//! deterministic under test.

pub mod basket;
pub mod catalog;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod gtin;
pub mod history;
pub mod ids;
pub mod loyalty;
pub mod lww;
pub mod money;
pub mod movements;
pub mod orders;
pub mod price_schedule;
pub mod pricing;
pub mod promotions;
pub mod receipt_proof;
pub mod returns;
pub mod sale;
pub mod seeded;
pub mod stock;
pub mod sync;
#[doc(hidden)]
pub mod testing;
pub mod wire;
pub use ids::{ActorId, SaleId, Sku, StoreId};
pub use money::Kopecks;
