//! Harnesses shared by the tests in this directory.

pub mod browser;
