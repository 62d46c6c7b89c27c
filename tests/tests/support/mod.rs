//! Harnesses shared by the tests in this directory. Each test crate that declares
//! `mod support` uses part of it; the rest is not dead code, only another test's.
#![allow(dead_code)]

pub mod browser;
