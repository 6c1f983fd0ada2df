//! Which jobs the config schedules, and the command each one runs.

use anyhow::anyhow;
use tokio_cron_scheduler::Job;
use vigil_core::jobs::Task;
use vigil_core::Config;

/// One scheduled job.
#[derive(Debug, Clone)]
pub struct Planned {
    pub task: Task,
    /// As written in the config.
    pub cron: String,
    /// As the scheduler takes it (seconds first).
    pub six: String,
}

impl Planned {
    pub fn name(&self) -> &'static str {
        self.task.name()
    }

    /// The binary it runs, in `daemon.bin_dir`.
    pub fn program(&self) -> &'static str {
        self.task.command().0
    }

    pub fn args(&self) -> &'static [&'static str] {
        self.task.command().1
    }
}

/// The jobs the config schedules, each checked by the scheduler's own parser.
pub fn plan(cfg: &Config) -> anyhow::Result<Vec<Planned>> {
    let d = cfg.daemon_config();
    let mut out = Vec::new();
    for task in Task::ALL {
        let name = task.name();
        let Some(cron) = d.schedule(task) else {
            continue;
        };
        let six = vigil_core::config::to_six_field(cron)
            .map_err(|e| anyhow!("{}: daemon.{name}: {e}", cfg.path.display()))?;
        Job::new_async(six.as_str(), |_, _| Box::pin(async {})).map_err(|e| {
            anyhow!(
                "{}: daemon.{name}: {cron:?} is not a schedule the scheduler accepts ({e:?})",
                cfg.path.display()
            )
        })?;
        out.push(Planned {
            task,
            cron: cron.to_string(),
            six,
        });
    }
    Ok(out)
}
