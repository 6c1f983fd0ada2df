//! A real InfluxDB 1.x (Debian's `influxdb`) on loopback, its directories in
//! the test's temporary dir, and InfluxQL queries over its HTTP API (curl).

use crate::proc::{wait_for, Proc};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// An `influxd` with HTTP on 127.0.0.1:`port`; killed when dropped.
#[derive(Debug)]
pub struct Influx {
    pub port: u16,
    /// The admin user, when started with auth.
    pub admin: Option<(String, String)>,
    _proc: Proc,
}

impl Influx {
    /// Starts influxd; with `auth`, creates the admin user `admin`/`adminpw`
    /// (InfluxDB lets the first user be created without credentials).
    pub fn start(dir: &Path, auth: bool) -> Influx {
        std::fs::create_dir_all(dir).unwrap();
        let port = crate::free_port();
        let rpc = crate::free_port();
        let conf = dir.join("influxdb.conf");
        std::fs::write(
            &conf,
            format!(
                r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"

[meta]
  dir = "{d}/meta"

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {auth}
  log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
"#,
                d = dir.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("influxd.log")).unwrap();
        let proc = Proc::spawn(
            "influxd",
            Command::new("influxd")
                .arg("-config")
                .arg(&conf)
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        );
        let mut db = Influx {
            port,
            admin: None,
            _proc: proc,
        };
        wait_for("influxd /ping", 30, || {
            Command::new("curl")
                .args(["-sf", "-o", "/dev/null"])
                .arg(format!("{}/ping", db.url()))
                .status()
                .is_ok_and(|s| s.success())
        });
        if auth {
            db.query(
                "CREATE USER admin WITH PASSWORD 'adminpw' WITH ALL PRIVILEGES",
                None,
            );
            db.admin = Some(("admin".into(), "adminpw".into()));
        }
        db
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs InfluxQL (POST /query) and returns the JSON answer; panics on an
    /// HTTP error.
    pub fn query(&self, q: &str, db: Option<&str>) -> Value {
        let mut c = Command::new("curl");
        c.args(["-sS", "--fail-with-body", "-XPOST"]);
        if let Some((u, p)) = &self.admin {
            c.arg("-u").arg(format!("{u}:{p}"));
        }
        let mut url = format!("{}/query", self.url());
        if let Some(db) = db {
            url.push_str(&format!("?db={db}"));
        }
        let o = c
            .arg("--data-urlencode")
            .arg(format!("q={q}"))
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "influx query {q}: {}", crate::text(&o));
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{q}: {e}: {}", crate::text(&o)))
    }

    /// The rows of the first series of a query: column name → value, per row.
    pub fn series(&self, q: &str, db: &str) -> Vec<Value> {
        let v = self.query(q, Some(db));
        let mut out = Vec::new();
        for s in v["results"][0]["series"].as_array().into_iter().flatten() {
            let cols: Vec<&str> = s["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            for row in s["values"].as_array().into_iter().flatten() {
                let mut m = serde_json::Map::new();
                for (c, v) in cols.iter().zip(row.as_array().unwrap()) {
                    m.insert(c.to_string(), v.clone());
                }
                for (k, v) in s["tags"].as_object().into_iter().flatten() {
                    m.insert(k.clone(), v.clone());
                }
                out.push(Value::Object(m));
            }
        }
        out
    }
}
