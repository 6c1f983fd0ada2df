//! The HTTP/1.1 framing the loopback receivers share: enough of the protocol
//! for webhook clients, nothing more.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

/// One request read off a keep-alive connection.
#[derive(Debug)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// The next request, or `None` once the client closed or sent less than it
/// announced.
pub fn read_request(rd: &mut impl BufRead) -> Option<HttpRequest> {
    let mut line = String::new();
    if rd.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if rd.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    rd.read_exact(&mut body).ok()?;
    Some(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}

/// Writes a whole response with its content length and `extra` headers.
pub fn write_response(
    w: &mut impl Write,
    status: u16,
    content_type: &str,
    extra: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: {content_type}\r\n",
        body.len()
    );
    for (k, v) in extra {
        resp.push_str(&format!("{k}: {v}\r\n"));
    }
    resp.push_str("\r\n");
    let mut out = resp.into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)
}
