//! Helpers shared by the tests that run `lanpeer` processes in Linux network namespaces
//! (`tests/netns*.rs`, and the other builds of lanpeer: `tests/wine.rs`, `tests/musl.rs`). A
//! directory module: included by each test file with `mod support;`, never compiled as a test
//! of its own. Not every test uses every helper.
#![allow(dead_code)]

pub mod cross;
pub mod netns;

/// Say that a test is skipped, and why, in one line that shows even though the test passes
/// (written to the process's stderr, past the test harness's capture of `eprintln!`).
pub fn skip_note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
