//! Helpers shared by the tests that run `lanpeer` processes in Linux network namespaces
//! (`tests/netns*.rs`, and the other builds of lanpeer: `tests/wine.rs`, `tests/musl.rs`). A
//! directory module: included by each test file with `mod support;`, never compiled as a test
//! of its own. Not every test uses every helper.
#![allow(dead_code)]

pub mod cross;
pub mod netns;
