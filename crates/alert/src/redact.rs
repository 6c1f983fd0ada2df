//! Scrubbing what came back from a server before vigil stores or shows it.
//!
//! A webhook server that rejects a request may echo the request in its error
//! body: the whole URL, its path JSON-escaped (`\/services\/T0...`), the
//! token alone, or a slice of it. That text goes to the log, to `alerts.db`
//! (`last_error`), to `vigil-notify status`, and into the
//! `notify_channel_failing` message every other channel receives. So every
//! remote reply is cleaned first: read at most [`MAX_READ`] bytes, invalid
//! UTF-8 replaced, control and bidi characters (which forge log lines or
//! drive a terminal) turned into spaces, every configured secret removed
//! (also any run of [`MIN_RUN`] or more characters taken from one), and cut
//! to [`MAX_CHARS`] characters.

use vigil_core::secret::Secret;

/// Bytes of a reply body read at most; the rest is not even received.
pub const MAX_READ: usize = 64 * 1024;
/// Characters of a reply kept in messages.
pub const MAX_CHARS: usize = 300;
/// A run of this many characters that also occurs in a secret is redacted:
/// long enough not to hit ordinary words by chance, short enough that no
/// useful slice of a token survives.
pub const MIN_RUN: usize = 8;
/// Characters of a reply looked at for secrets (after cleaning), before
/// the cut to [`MAX_CHARS`]: a secret that straddles the cut is still found.
const SCAN_CHARS: usize = 4 * 1024;
const MARK: &str = "<redacted>";

/// Every secret vigil knows, for scrubbing. Debug shows only how many.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Whole secret values, replaced wherever they occur.
    whole: Vec<String>,
    /// The secret parts (a URL's path, query and user info; a password),
    /// as given and percent-decoded: runs of [`MIN_RUN`] characters from
    /// these are redacted.
    parts: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.whole.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for one secret.
    pub fn of(secrets: &[&Secret]) -> Redactor {
        let mut r = Redactor::default();
        for s in secrets {
            r.add(s.expose());
        }
        r
    }

    /// Adds one secret value: a URL (whose scheme and host are not secret)
    /// or a password.
    pub fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.len() < 4 {
            return;
        }
        self.whole.push(secret.to_string());
        let mut parts = Vec::new();
        let url = vigil_core::endpoint::split(secret);
        if url.scheme.is_empty() {
            parts.push(secret.to_string());
        } else {
            if let Some(info) = vigil_core::endpoint::userinfo(secret) {
                parts.push(info.to_string());
            }
            if url.rest.len() > 1 {
                parts.push(url.rest.to_string());
            }
        }
        for p in parts {
            let d = percent_decode(&p);
            if d != p {
                self.parts.push(d);
            }
            self.parts.push(p);
        }
        self.whole.sort_by_key(|w| std::cmp::Reverse(w.len()));
        self.whole.dedup();
    }

    /// Adds the base64 of `raw`, as an SMTP or HTTP client sends credentials.
    pub fn add_encoded(&mut self, raw: &[u8]) {
        let e = base64(raw);
        if e.len() >= 4 {
            self.parts.push(e.trim_end_matches('=').to_string());
            self.whole.push(e);
            self.whole.sort_by_key(|w| std::cmp::Reverse(w.len()));
            self.whole.dedup();
        }
    }

    /// Cleans a reply from a remote server for messages and storage.
    pub fn remote(&self, raw: &[u8]) -> String {
        let text = String::from_utf8_lossy(&raw[..raw.len().min(MAX_READ)]);
        let mut clean = String::with_capacity(text.len().min(SCAN_CHARS));
        let mut space = false;
        for c in text.chars().take(SCAN_CHARS) {
            if c.is_whitespace() || c.is_control() || is_format(c) {
                space = true;
                continue;
            }
            if space && !clean.is_empty() {
                clean.push(' ');
            }
            space = false;
            clean.push(c);
        }
        let red = self.scrub(&clean);
        let mut out: String = red.chars().take(MAX_CHARS).collect();
        if red.chars().nth(MAX_CHARS).is_some() {
            out.push_str(" [...]");
        }
        out
    }

    /// Removes every secret, and every run of [`MIN_RUN`] or more characters
    /// taken from one, from a message.
    pub fn scrub(&self, msg: &str) -> String {
        let mut m = msg.to_string();
        for w in &self.whole {
            m = m.replace(w.as_str(), MARK);
        }
        if self.parts.is_empty() {
            return m;
        }
        let idx: Vec<usize> = m.char_indices().map(|(i, _)| i).chain([m.len()]).collect();
        let mut out = String::with_capacity(m.len());
        let mut i = 0;
        while i + 1 < idx.len() {
            // The longest run from here that occurs in some secret part.
            let mut j = i;
            while j + 1 < idx.len() && self.in_part(&m[idx[i]..idx[j + 1]]) {
                j += 1;
            }
            if j - i >= MIN_RUN {
                if !out.ends_with(MARK) {
                    out.push_str(MARK);
                }
                i = j;
            } else {
                out.push_str(&m[idx[i]..idx[i + 1]]);
                i += 1;
            }
        }
        out
    }

    fn in_part(&self, s: &str) -> bool {
        self.parts.iter().any(|p| p.contains(s))
    }
}

/// Zero-width and bidi controls: invisible, and they reorder what a
/// terminal shows.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Standard base64 with padding (RFC 4648), as AUTH PLAIN/LOGIN and HTTP
/// basic auth use it.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, x)| n | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str =
        "https://hooks.slack.com/services/T0AAAA1/B0BBBB2/tokentokentoken42?x=%2Fsig%3Dqqq123";

    fn r() -> Redactor {
        let mut r = Redactor::default();
        r.add(URL);
        r.add("hunter2pw");
        r
    }

    #[test]
    fn every_form_of_an_echoed_secret_is_removed() {
        let r = r();
        for echo in [
            URL,
            "/services/T0AAAA1/B0BBBB2/tokentokentoken42",
            "\\/services\\/T0AAAA1\\/B0BBBB2\\/tokentokentoken42",
            "token=tokentokentoken42",
            "part=kentoken4",
            "sig=qqq123 /sig=qqq123",
            "password hunter2pw",
        ] {
            let out = r.remote(format!("error: {echo} end").as_bytes());
            for leak in [
                "T0AAAA1", "B0BBBB2", "tokentok", "kentoken", "hunter2", "sig=qqq1",
            ] {
                assert!(!out.contains(leak), "{echo:?} -> {out:?}");
            }
            assert!(
                out.starts_with("error: ") && out.ends_with(" end"),
                "{out:?}"
            );
        }
        // The host is not secret, and ordinary words survive.
        assert_eq!(
            r.remote(b"invalid_payload at hooks.slack.com"),
            "invalid_payload at hooks.slack.com"
        );
    }

    #[test]
    fn replies_are_cleaned_and_capped() {
        let r = Redactor::default();
        assert_eq!(
            r.remote(b"a\r\nINFO forged\x1b[31m red \xff\xfe"),
            "a INFO forged [31m red \u{fffd}\u{fffd}"
        );
        assert_eq!(r.remote("x\u{202e}y".as_bytes()), "x y");
        let big = vec![b'a'; 10 * MAX_READ];
        let out = r.remote(&big);
        assert_eq!(out.chars().count(), MAX_CHARS + " [...]".len());
    }

    #[test]
    fn base64_forms_are_removed() {
        assert_eq!(base64(b"\0vigil\0pw"), "AHZpZ2lsAHB3");
        assert_eq!(base64(b"ab"), "YWI=");
        let mut r = Redactor::default();
        r.add("pw-secret-1");
        r.add_encoded(b"\0vigil\0pw-secret-1");
        let out = r.remote(b"535 bad credentials AHZpZ2lsAHB3LXNlY3JldC0x here");
        assert_eq!(out, "535 bad credentials <redacted> here");
    }

    #[test]
    fn url_user_info_and_its_basic_auth_are_removed() {
        let mut r = Redactor::default();
        let url = "http://amuser:am%40pass99@127.0.0.1:9093";
        let info = vigil_core::endpoint::userinfo(url).unwrap();
        assert_eq!(info, "amuser:am%40pass99");
        r.add(info);
        r.add_encoded(percent_decode(info).as_bytes());
        let basic = base64(b"amuser:am@pass99");
        let out = r.remote(format!("401 for Basic {basic} (amuser:am@pass99)").as_bytes());
        assert!(!out.contains(&basic) && !out.contains("pass99"), "{out}");
    }

    #[test]
    fn debug_shows_no_secret() {
        assert!(!format!("{:?}", r()).contains("token"));
    }
}
