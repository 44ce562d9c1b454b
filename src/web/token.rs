//! The secret of a page served off loopback.
//!
//! On loopback the page is for the person at this computer. On any other address everyone who
//! can reach it could read the private quiz answers kept by this peer and write as it, so the
//! server then asks every request for a secret [`Token`] (random, 192 bits), as Jupyter does:
//! the address it prints carries it (`http://IP:PORT/?token=...`); the first visit with it gets it
//! back as an `HttpOnly`, `SameSite=Strict` cookie and is sent on to the address without it, so
//! the token does not stay in the address bar, and the page's own requests (its script, styles,
//! WebSocket) carry the cookie. A program may give `?token=` on any request instead.
//!
//! Tokens are compared in constant time (their length is public: always [`TOKEN_HEX_LEN`]).

use axum::http::{HeaderMap, header};

/// Random bytes of a token.
const TOKEN_BYTES: usize = 24;
/// Characters of a token as written (lowercase hex).
pub const TOKEN_HEX_LEN: usize = 2 * TOKEN_BYTES;
// At least 128 bits.
const _: () = assert!(TOKEN_BYTES * 8 >= 128);

/// A page's secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// What a request shows of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The right token, in the query (`?token=`).
    InQuery,
    /// The right token, in the cookie only.
    InCookie,
    /// A token, but not this page's (say, from an earlier start of the peer).
    Wrong,
    /// None at all.
    Missing,
}

impl Token {
    /// A fresh token from the operating system's random source (through `rand`'s thread RNG, a
    /// CSPRNG seeded by it).
    pub fn new() -> Token {
        Token(hex::encode(rand::random::<[u8; TOKEN_BYTES]>()))
    }

    /// The token as written in the address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Is `given` this token? In time that does not depend on where they differ.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
    }

    /// What the query (the part after `?`) and the `Cookie` headers of a request show of this
    /// token; the cookie is `cookie` (see [`cookie_name`]).
    pub fn shown(&self, query: Option<&str>, headers: &HeaderMap, cookie: &str) -> Shown {
        let in_query = query_token(query);
        if in_query.is_some_and(|t| self.matches(t)) {
            return Shown::InQuery;
        }
        let mut any = in_query.is_some();
        for value in cookie_values(headers, cookie) {
            if self.matches(value) {
                return Shown::InCookie;
            }
            any = true;
        }
        if any { Shown::Wrong } else { Shown::Missing }
    }

    /// The `Set-Cookie` value that keeps this token for the page on `port`.
    pub fn set_cookie(&self, port: u16) -> String {
        format!("{}={}; Path=/; HttpOnly; SameSite=Strict", cookie_name(port), self.0)
    }
}

impl Default for Token {
    fn default() -> Self {
        Token::new()
    }
}

/// The cookie's name for the page on `port`. Cookies do not tell ports apart, so two peers'
/// pages on one computer need two names.
pub fn cookie_name(port: u16) -> String {
    format!("lanpeer_token_{port}")
}

/// The value of `token=` in a query string, if any (the first one).
fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| pair.strip_prefix("token="))
}

/// Every value of the cookie `name` in the request's `Cookie` headers.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).filter_map(
        move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v.trim())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn cookies(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn tokens_are_long_random_and_compared_whole() {
        let t = Token::new();
        assert_eq!(t.as_str().len(), TOKEN_HEX_LEN);
        assert!(t.as_str().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(Token::new(), t, "each start has its own");
        assert!(t.matches(t.as_str()));
        assert!(!t.matches(""));
        assert!(!t.matches(&t.as_str()[1..]), "a prefix is not the token");
        let mut last = t.as_str().to_string();
        let flipped = if last.ends_with('0') { '1' } else { '0' };
        last.pop();
        last.push(flipped);
        assert!(!t.matches(&last), "one character off");
        assert_eq!(format!("{t:?}"), "Token(..)", "never logged");
    }

    #[test]
    fn a_request_shows_the_token_in_its_query_or_its_cookie() {
        let t = Token::new();
        let name = cookie_name(8080);
        let none = HeaderMap::new();
        let q = format!("token={}", t.as_str());
        assert_eq!(t.shown(Some(&q), &none, &name), Shown::InQuery);
        assert_eq!(t.shown(Some(&format!("a=1&{q}")), &none, &name), Shown::InQuery);
        assert_eq!(t.shown(None, &none, &name), Shown::Missing);
        assert_eq!(t.shown(Some("a=1"), &none, &name), Shown::Missing);
        assert_eq!(t.shown(Some("token=abc"), &none, &name), Shown::Wrong);

        let good = cookies(&[&format!("other=1; {name}={}", t.as_str())]);
        assert_eq!(t.shown(None, &good, &name), Shown::InCookie);
        assert_eq!(t.shown(Some("token=abc"), &good, &name), Shown::InCookie, "a stale link, a good cookie");
        let two = cookies(&["x=y", &format!("{name}={}", t.as_str())]);
        assert_eq!(t.shown(None, &two, &name), Shown::InCookie, "cookies in two headers");
        let stale = cookies(&[&format!("{name}={}", Token::new().as_str())]);
        assert_eq!(t.shown(None, &stale, &name), Shown::Wrong);
        let other_port = cookies(&[&format!("{}={}", cookie_name(8081), t.as_str())]);
        assert_eq!(t.shown(None, &other_port, &name), Shown::Missing, "another page's cookie");

        let set = t.set_cookie(8080);
        assert!(set.starts_with(&format!("{name}={};", t.as_str())), "{set}");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"), "{set}");
    }
}
