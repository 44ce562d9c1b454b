//! The other builds of lanpeer that the tests run: the Windows exe (tests/wine.rs, under Wine)
//! and the static Linux binary (tests/musl.rs). `cargo test` cannot build them itself (cargo
//! holds the target folder while the tests run), so `.ci/run` builds them first, into the
//! target folder where cargo keeps them between runs.
//!
//! Without one of them (or Wine, or root) such a test is skipped with one line: a newcomer's
//! `cargo test` passes. `LANPEER_REQUIRE_CROSS`, which `.ci/run` sets to the targets it built
//! (space-separated; `all` for every one), makes a missing piece fail the test of such a target
//! instead, so that CI cannot pass without having run it. A binary older than the sources
//! counts as missing: it would test other code.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::netns::BIN;

/// The targets whose tests must run (`.ci/run`): space-separated, or `all`.
pub const REQUIRE: &str = "LANPEER_REQUIRE_CROSS";

/// The cargo target folder, from the path of this build's own lanpeer binary.
pub fn target_dir() -> PathBuf {
    Path::new(BIN).parent().and_then(Path::parent).expect("the binary is in target/<profile>/").to_path_buf()
}

/// `file` as built for `triple` in this build's profile (`target/<triple>/debug/<file>`).
pub fn built(triple: &str, file: &str) -> PathBuf {
    let profile = Path::new(BIN).parent().and_then(Path::file_name).expect("a profile folder");
    target_dir().join(triple).join(profile).join(file)
}

/// The cargo command that builds lanpeer for `triple` in this build's profile.
pub fn build_command(triple: &str) -> String {
    let release = Path::new(BIN).parent().and_then(Path::file_name).is_some_and(|p| p == "release");
    format!("cargo build --locked{} --target {triple} --bin lanpeer", if release { " --release" } else { "" })
}

fn newest(p: &Path, newest_seen: &mut SystemTime) {
    let Ok(meta) = fs::metadata(p) else { return };
    if meta.is_dir() {
        for entry in fs::read_dir(p).into_iter().flatten().flatten() {
            newest(&entry.path(), newest_seen);
        }
    } else if let Ok(m) = meta.modified() {
        *newest_seen = (*newest_seen).max(m);
    }
}

/// Ok when `bin` exists and is newer than every source of the crate (src/, Cargo.toml,
/// Cargo.lock); otherwise why not, with the command that builds it.
pub fn fresh(bin: &Path, triple: &str) -> Result<(), String> {
    let build = build_command(triple);
    let built = fs::metadata(bin)
        .and_then(|m| m.modified())
        .map_err(|_| format!("{} is not built (`{build}` builds it)", bin.display()))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = SystemTime::UNIX_EPOCH;
    for p in ["src", "Cargo.toml", "Cargo.lock"] {
        newest(&root.join(p), &mut sources);
    }
    if built < sources {
        return Err(format!("{} is older than the sources (`{build}` builds it again)", bin.display()));
    }
    Ok(())
}

/// A test of the build for `triple` that cannot run here: one line saying why, or a failure
/// when [`REQUIRE`] names that target.
pub fn skip(test: &str, triple: &str, why: &str) {
    let required = std::env::var(REQUIRE).unwrap_or_default();
    if required.split_whitespace().any(|t| t == triple || t == "all") {
        panic!("{test} cannot run, and {REQUIRE} asks for it ({required}): {why}");
    }
    super::skip_note(&format!("{test} skipped: {why}"));
}

/// Does the ELF file at `path` name a program interpreter (a dynamic loader, so a C library of
/// the system it runs on)? Err when it is not a 64-bit little-endian ELF file.
pub fn elf_interpreter(path: &Path) -> Result<bool, String> {
    const PT_INTERP: u32 = 3;
    let b = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err(format!("{} is not a 64-bit little-endian ELF file", path.display()));
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    for i in 0..count {
        let at = phoff + i * size;
        let kind = b.get(at..at + 4).ok_or("program headers beyond the end of the file")?;
        if u32::from_le_bytes(kind.try_into().unwrap()) == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}
