//! The one reading of `scheme://host:port` that every part of vigil uses:
//! config validation, the restore's port checks and peer URLs, the health
//! checks' hosts.

/// `host:port` of `https://10.0.0.11:2379`, `http://[::1]:2380/` or
/// `10.0.0.11:6443`: the scheme is optional, anything after the first `/`
/// is ignored, and an IPv6 host comes without its brackets.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let u = url.trim();
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let hp = rest.split('/').next()?;
    let (h, p) = hp.rsplit_once(':')?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    Some((h.to_string(), p.parse().ok()?))
}

/// True for exactly `http(s)://host:port` with an optional trailing `/`: a
/// host, a port above 0, and no path.
pub fn is_http_host_port(url: &str) -> bool {
    let u = url.trim();
    u.strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .map(|r| r.trim_end_matches('/'))
        .is_some_and(|hp| {
            !hp.contains('/') && host_port(hp).is_some_and(|(h, p)| !h.is_empty() && p > 0)
        })
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
}
