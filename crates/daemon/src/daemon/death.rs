//! vigild's `OnFailure=`: a job killed by a signal or unable to run records
//! no outcome, so `vigil-notify unit-failed` queues the alert.

use super::Live;
use std::process::ExitStatus;

/// What systemd's `$MONITOR_*` would say about a job that exited with `st`;
/// `None` for exit 0 and 1 (the job ran to its end and reported itself).
fn death_env(st: &ExitStatus) -> Option<[(&'static str, String); 3]> {
    use std::os::unix::process::ExitStatusExt;
    let (result, code, status) = match (st.code(), st.signal()) {
        (Some(0 | 1), _) => return None,
        (Some(c), _) => ("exit-code", "exited", c.to_string()),
        (None, Some(sig)) => {
            let name = match sig {
                6 => "ABRT".to_string(),
                9 => "KILL".to_string(),
                11 => "SEGV".to_string(),
                15 => "TERM".to_string(),
                n => n.to_string(),
            };
            ("signal", "killed", name)
        }
        (None, None) => return None,
    };
    Some([
        ("MONITOR_SERVICE_RESULT", result.to_string()),
        ("MONITOR_EXIT_CODE", code.to_string()),
        ("MONITOR_EXIT_STATUS", status),
    ])
}

/// Raises `job_unit_failed` for `job` (its unit `unit`, without `.service`)
/// that died. The reporter is not tied to vigild: it is short, and if vigild
/// dies meanwhile it is what still tells.
pub async fn report(live: &Live, job: &str, unit: &str, st: &ExitStatus) {
    let Some(env) = death_env(st) else {
        return;
    };
    let r = tokio::process::Command::new(live.bin("vigil-notify"))
        .arg("--config")
        .arg(&live.config_path)
        .arg("unit-failed")
        .arg(format!("{unit}.service"))
        .envs(env)
        .stdin(std::process::Stdio::null())
        .status()
        .await;
    match r {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::error!(
            job,
            "vigil-notify unit-failed exited {s}: the death is not alerted"
        ),
        Err(e) => tracing::error!(
            job,
            "cannot run vigil-notify unit-failed: {e}; the death is not alerted"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn deaths_map_to_what_systemd_would_say() {
        assert!(death_env(&ExitStatus::from_raw(0)).is_none());
        assert!(death_env(&ExitStatus::from_raw(1 << 8)).is_none());
        let e = death_env(&ExitStatus::from_raw(2 << 8)).unwrap();
        assert_eq!(e[0].1, "exit-code");
        assert_eq!(e[2].1, "2");
        let k = death_env(&ExitStatus::from_raw(9)).unwrap();
        assert_eq!((k[0].1.as_str(), k[2].1.as_str()), ("signal", "KILL"));
    }
}
