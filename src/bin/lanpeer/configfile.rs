//! `--config FILE`: settings from a small file, one `key = value` per line, so that a class can
//! share one file (e.g. the seed peers of the school's network) instead of long command lines.
//!
//! ```text
//! # lanpeer.conf
//! room = 5B
//! peer = teacher-pc.school.lan      # a seed peer, HOST[:PORT]; repeat the line for more
//! peer = 10.0.4.17:5681
//! iface = wlan0
//! ```
//!
//! Keys are the long flags without `--`: `name`, `room`, `iface`, `port`, `tcp-port`, `peer`,
//! `data-dir`, `role`, `teacher`, `passphrase-file`, `downloads`, `max-file`, `max-files` (`_` may
//! stand for `-`). `#` starts a comment; blank
//! lines are skipped; a value may be quoted ("..."). Flags on the command line win over the file;
//! `peer` and `iface` lines add to the flags' list. The passphrase itself never goes in the
//! file: use `passphrase-file`.
//!
//! The file is turned into flags placed before the command line's, so clap checks every value
//! exactly as it checks a flag.

use std::ffi::OsString;

/// Keys a config file may set (the long flag names).
const KEYS: [&str; 13] = [
    "name",
    "room",
    "iface",
    "port",
    "tcp-port",
    "peer",
    "data-dir",
    "role",
    "teacher",
    "passphrase-file",
    "downloads",
    "max-file",
    "max-files",
];

/// Parse the text of a config file into flags (`--key=value`).
pub fn parse(text: &str, file: &str) -> Result<Vec<OsString>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = match raw.find(" #").or_else(|| raw.trim_start().starts_with('#').then_some(0)) {
            Some(i) if !in_quotes(raw, i) => &raw[..i],
            _ => raw,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{file}, line {}", n + 1);
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("{}: expected `key = value`, found {line:?}", at()));
        };
        let key = k.trim().replace('_', "-");
        if key == "passphrase" {
            return Err(format!(
                "{}: the passphrase does not go in the config file; use passphrase-file = FILE or LANPEER_PASSPHRASE",
                at()
            ));
        }
        if !KEYS.contains(&key.as_str()) {
            return Err(format!("{}: unknown setting {key:?}; the settings are: {}", at(), KEYS.join(", ")));
        }
        let mut value = v.trim();
        if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            value = &value[1..value.len() - 1];
        }
        if value.is_empty() {
            return Err(format!("{}: {key} has no value", at()));
        }
        out.push(OsString::from(format!("--{key}={value}")));
    }
    Ok(out)
}

fn in_quotes(line: &str, i: usize) -> bool {
    line[..i].matches('"').count() % 2 == 1
}

/// The command line with the settings of `--config FILE` (if given) inserted before the other
/// flags, so that flags given on the command line win.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut path = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else { continue };
        if s == "--" {
            break;
        }
        if s == "--config" {
            path = it.next().cloned();
        } else if let Some(p) = s.strip_prefix("--config=") {
            path = Some(OsString::from(p));
        }
    }
    let Some(path) = path else { return Ok(args) };
    let shown = std::path::Path::new(&path).display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read the config file {shown}: {e}"))?;
    let flags = parse(&text, &shown)?;
    let mut out = Vec::with_capacity(args.len() + flags.len());
    out.extend(args.iter().take(1).cloned());
    out.extend(flags);
    out.extend(args.into_iter().skip(1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn parses_settings() {
        let text = "# a class\nroom = 5B\n\npeer = teacher.lan # the teacher\npeer=10.0.0.1:4000\nname = \"Ms Rivera\"\ntcp_port = 5681\n";
        assert_eq!(
            strs(parse(text, "f").unwrap()),
            ["--room=5B", "--peer=teacher.lan", "--peer=10.0.0.1:4000", "--name=Ms Rivera", "--tcp-port=5681"]
        );
        let files = "downloads = \"/srv/class files\"\nmax_file = 500M\nmax-files = 20G\n";
        assert_eq!(
            strs(parse(files, "f").unwrap()),
            ["--downloads=/srv/class files", "--max-file=500M", "--max-files=20G"]
        );
        assert_eq!(strs(parse("name = \"a # b\"", "f").unwrap()), ["--name=a # b"]);
        assert!(parse("colour = red", "f").unwrap_err().contains("line 1: unknown setting"));
        assert!(parse("room", "f").unwrap_err().contains("key = value"));
        assert!(parse("room = ", "f").unwrap_err().contains("no value"));
        assert!(parse("passphrase = x", "f").unwrap_err().contains("passphrase-file"));
    }

    #[test]
    fn command_line_flags_come_last() {
        let dir = std::env::temp_dir().join(format!("lanpeer-conf-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.conf");
        std::fs::write(&f, "room = 5B\npeer = a\n").unwrap();
        let args: Vec<OsString> =
            ["lanpeer", "--config", f.to_str().unwrap(), "--room", "6C"].iter().map(OsString::from).collect();
        let got = strs(expand(args).unwrap());
        assert_eq!(got[..3], ["lanpeer", "--room=5B", "--peer=a"]);
        assert_eq!(got[got.len() - 2..], ["--room", "6C"]);
        let none: Vec<OsString> = ["lanpeer", "--room", "x"].iter().map(OsString::from).collect();
        assert_eq!(expand(none.clone()).unwrap(), none);
        let missing: Vec<OsString> = ["lanpeer", "--config=/nonexistent/x"].iter().map(OsString::from).collect();
        assert!(expand(missing).unwrap_err().contains("cannot read the config file"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
