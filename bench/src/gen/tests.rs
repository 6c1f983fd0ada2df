use super::*;

#[test]
fn sizes() {
    assert_eq!(parse_size("5MB").unwrap(), 5_000_000);
    assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
    assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
    assert!(parse_size("5 furlongs").is_err());
}

#[test]
fn same_seed_same_objects() {
    let mut a = World::new(0, 7);
    let mut b = World::new(0, 7);
    for _ in 0..500 {
        assert_eq!(a.next_op(), b.next_op());
    }
    let mut c = World::new(1, 7);
    assert_ne!(a.next_op(), c.next_op());
}

#[test]
fn objects_are_json() {
    let mut w = World::new(0, 1);
    for _ in 0..300 {
        let (k, v) = w.next_op();
        if let Some(v) = v {
            if !k.starts_with("/registry/secrets/") {
                serde_json::from_slice::<serde_json::Value>(&v)
                    .unwrap_or_else(|e| panic!("{k}: {e}: {}", String::from_utf8_lossy(&v)));
            }
        }
    }
}
