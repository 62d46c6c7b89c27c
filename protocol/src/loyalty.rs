//! Loyalty points: customers and their cards.

mod customer;

pub use customer::{Customer, CustomerError, CustomerId, Phone, NAME_LEN_MAX_CHARS};
