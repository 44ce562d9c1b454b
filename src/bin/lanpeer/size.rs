//! Sizes as people type them on the command line (`--max-file 500M`, `--max-files 20G`): a
//! number, whole or with a fraction, and a unit of powers of 1024 (as lanpeer prints sizes: 1 KB is
//! 1024 bytes). `K`, `KB`, `KiB` and the lower-case forms all mean the same; no unit means bytes.

use std::str::FromStr;

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// What a mistake is told.
const HOW: &str = "write a number with K, M, G or T after it (powers of 1024), like 500M or 2G";

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        let t = s.trim();
        let at = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (number, unit) = t.split_at(at);
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            _ => return Err(format!("{s:?} is not a size; {HOW}")),
        };
        let n: f64 = match number.parse() {
            Ok(n) if number.chars().any(|c| c.is_ascii_digit()) => n,
            _ => return Err(format!("{s:?} is not a size; {HOW}")),
        };
        let bytes = n * (1u64 << shift) as f64;
        // 2^63 and more do not fit; no disk holds that much anyway.
        if bytes >= 9.2e18 {
            return Err(format!("{s:?} is too large; {HOW}"));
        }
        Ok(Size(bytes.round() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_people_type_them() {
        for (s, want) in [
            ("0", 0),
            ("1000", 1000),
            ("1K", 1024),
            ("1k", 1024),
            ("500M", 500 << 20),
            ("500 MB", 500 << 20),
            ("2G", 2 << 30),
            ("2GiB", 2 << 30),
            ("1.5G", 3 << 29),
            ("20g", 20 << 30),
            ("1T", 1 << 40),
            ("12b", 12),
        ] {
            assert_eq!(s.parse::<Size>(), Ok(Size(want)), "{s}");
        }
        for bad in ["", "G", "-1G", "2X", "1..5M", "two", "1e3", "9999999T"] {
            let e = bad.parse::<Size>().unwrap_err();
            assert!(e.contains("like 500M or 2G"), "{bad}: {e}");
        }
    }
}
