//! The one reading of `scheme://host:port` that every part of vigil uses:
//! config validation, the restore's port checks and peer URLs, the health
//! checks' hosts and metrics URLs, and the redaction of userinfo.

/// A URL taken apart: the scheme (empty when there is none), the authority
/// (`user:pass@host:port`) and the rest (path, query, fragment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub rest: &'a str,
}

pub fn split(url: &str) -> Parts<'_> {
    let u = url.trim();
    let (scheme, after) = u.split_once("://").unwrap_or(("", u));
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Parts {
        scheme,
        authority: &after[..end],
        rest: &after[end..],
    }
}

/// `host:port` of `https://10.0.0.11:2379`, `http://[::1]:2380/` or
/// `10.0.0.11:6443`: the scheme is optional, anything after the authority
/// is ignored, and an IPv6 host comes without its brackets.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let hp = split(url).authority;
    let hp = hp.rsplit_once('@').map_or(hp, |(_, h)| h);
    let (h, p) = hp.rsplit_once(':')?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    Some((h.to_string(), p.parse().ok()?))
}

/// Whether there is a path (or query) beyond an optional trailing `/`.
pub fn has_path(url: &str) -> bool {
    !split(url.trim().trim_end_matches('/')).rest.is_empty()
}

/// True for `http://` or `https://` followed by a host.
pub fn is_http_url(url: &str) -> bool {
    let p = split(url);
    matches!(p.scheme, "http" | "https") && !p.authority.is_empty()
}

/// True for exactly `http(s)://host:port` with an optional trailing `/`: a
/// host, a port above 0, and no path.
pub fn is_http_host_port(url: &str) -> bool {
    is_http_url(url)
        && !has_path(url)
        && host_port(url).is_some_and(|(h, p)| !h.is_empty() && p > 0)
}

/// The same scheme (`http` when there is none) and host with `port`:
/// a member's peer URL from its client URL.
pub fn with_port(url: &str, port: u16) -> String {
    let p = split(url);
    let scheme = if p.scheme.is_empty() {
        "http"
    } else {
        p.scheme
    };
    let host = p.authority.rsplit_once(':').map_or(p.authority, |(h, _)| h);
    format!("{scheme}://{host}:{port}")
}

/// The `user:password` part of a URL, if any.
pub fn userinfo(url: &str) -> Option<&str> {
    split(url).authority.rsplit_once('@').map(|(info, _)| info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_bare_host_ports() {
        let hp = |u: &str| host_port(u);
        assert_eq!(
            hp("https://10.0.0.1:2379/"),
            Some(("10.0.0.1".into(), 2379))
        );
        assert_eq!(hp("http://[::1]:2380"), Some(("::1".into(), 2380)));
        assert_eq!(hp("10.0.0.5:6443"), Some(("10.0.0.5".into(), 6443)));
        assert_eq!(
            hp("https://api.example:6443/healthz"),
            Some(("api.example".into(), 6443))
        );
        assert_eq!(hp("https://10.0.0.1"), None);
        assert_eq!(hp("https://10.0.0.1:x"), None);
        assert!(is_http_host_port("https://10.0.0.11:2379"));
        assert!(is_http_host_port(" http://[::1]:2380/ "));
        for bad in [
            "10.0.0.11:2379",
            "ftp://10.0.0.11:2379",
            "https://10.0.0.11:2379/x",
            "https://:2379",
            "https://10.0.0.11:0",
            "https://10.0.0.11",
        ] {
            assert!(!is_http_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn parts_peer_urls_paths_and_userinfo() {
        let p = split("https://u:p@h.example:443/x?y");
        assert_eq!(
            (p.scheme, p.authority, p.rest),
            ("https", "u:p@h.example:443", "/x?y")
        );
        assert_eq!(
            with_port("https://10.0.0.11:2379/", 2380),
            "https://10.0.0.11:2380"
        );
        assert_eq!(with_port("10.0.0.11:2379", 2380), "http://10.0.0.11:2380");
        assert_eq!(with_port("http://[::1]:2379", 2380), "http://[::1]:2380");
        assert!(!has_path("http://127.0.0.1:9100/"));
        assert!(has_path("http://127.0.0.1:9100/metrics"));
        assert!(is_http_url("http://h") && !is_http_url("http://") && !is_http_url("h:1"));
        assert_eq!(userinfo("https://am:secret@h:9093/"), Some("am:secret"));
        assert_eq!(userinfo("https://h:9093/a@b"), None);
    }
}
