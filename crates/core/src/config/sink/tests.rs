use crate::Config;
use std::path::{Path, PathBuf};

fn sinks(extra: &str) -> Result<Config, crate::config::ConfigError> {
    let text = format!(
            "[cluster]\nname = \"prod\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }}]\n[state]\ndir = \"/var/lib/vigil\"\n{extra}"
        );
    Config::parse(&text, Path::new("/etc/vigil/vigil.toml"))
}

#[test]
fn writable_paths_name_what_each_sink_writes() {
    let c = sinks(
            "[[sink]]\nname = \"ltfs\"\nkind = \"dir\"\npath = \"/srv/ltfs/vigil\"\n\
             [[sink]]\nname = \"nfs\"\nkind = \"fs\"\npath = \"/mnt/nfs/vigil\"\n\
             [[sink]]\nname = \"tsm\"\nkind = \"tape-dsmc\"\n\
             [[sink]]\nname = \"tsm2\"\nkind = \"tape-dsmc\"\nerror_log = \"/var/log/vigil-tsm/dsmerror.log\"\npassword_dir = \"/etc/vigil/tsm\"\n\
             [[sink]]\nname = \"rgw\"\nkind = \"s3\"\nbucket = \"b\"\naccess_key_id = \"a\"\nsecret_access_key = \"s\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let state = Path::new("/var/lib/vigil");
    let got: Vec<Vec<PathBuf>> = c.sinks().map(|s| s.writable_paths(state)).collect();
    let p = |s: &str| PathBuf::from(s);
    assert_eq!(
        got,
        vec![
            vec![p("/srv/ltfs/vigil")],
            vec![p("/mnt/nfs/vigil")],
            vec![
                p("/var/lib/vigil/tape/tsm"),
                p("/var/lib/vigil/tape/password")
            ],
            vec![p("/var/log/vigil-tsm"), p("/etc/vigil/tsm")],
            vec![],
        ]
    );
    let keys: Vec<&str> = c
        .sinks()
        .flat_map(|s| s.writable_paths_by_key(state))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [
            "path",
            "path",
            "error_log",
            "password_dir",
            "error_log",
            "password_dir"
        ]
    );
    let tsm = c.sinks().nth(2).unwrap();
    let crate::config::SinkSettings::TapeDsmc(t) = &tsm.settings else {
        panic!("{tsm:?}")
    };
    assert_eq!(
        t.error_log(&tsm.name, state),
        p("/var/lib/vigil/tape/tsm/dsmerror.log")
    );
}

#[test]
fn dsmc_paths_are_checked_by_key() {
    for (extra, key, msg) in [
        (
            "error_log = \"dsmerror.log\"",
            "sink[0].error_log",
            "absolute",
        ),
        (
            "error_log = \"/var/log/tsm/\"",
            "sink[0].error_log",
            "not a directory",
        ),
        (
            "error_log = \"/dsmerror.log\"",
            "sink[0].error_log",
            "root directory",
        ),
        ("password_dir = \"tsm\"", "sink[0].password_dir", "absolute"),
        (
            "extra_args = [\"-ERRORLOGNAME=/tmp/x\"]",
            "sink[0].extra_args",
            "error_log",
        ),
        (
            "password_dir = \"/x\"\nbucket = \"b\"",
            "sink[0].bucket",
            "does not apply",
        ),
        ("passworddir = \"/x\"", "passworddir", "unknown field"),
    ] {
        let e = sinks(&format!(
            "[[sink]]\nname = \"tsm\"\nkind = \"tape-dsmc\"\n{extra}\n"
        ))
        .err()
        .unwrap_or_else(|| panic!("{extra}: accepted"))
        .to_string();
        assert!(e.contains(key) && e.contains(msg), "{extra}: {e}");
    }
    let e = sinks("[[sink]]\nname = \"d\"\nkind = \"dir\"\npath = \"/x\"\npassword_dir = \"/y\"\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("sink[0].password_dir") && e.contains("does not apply"),
        "{e}"
    );
}
