//! Download progress: a bar (bytes, rate, ETA) on a terminal, plain periodic
//! log lines otherwise (journal, CI, pipes).

use std::io::IsTerminal;
use std::time::{Duration, Instant};
use vigil_core::units::human_bytes;

const LOG_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) enum Progress {
    Bar(indicatif::ProgressBar),
    Log {
        what: String,
        total: u64,
        done: u64,
        start: Instant,
        last: Instant,
    },
}

impl Progress {
    pub(crate) fn new(what: &str, total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.to_string());
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            tracing::info!("fetching {what}: {}", human_bytes(total));
            Progress::Log {
                what: what.to_string(),
                total,
                done: 0,
                start: now,
                last: now,
            }
        }
    }

    pub(crate) fn inc(&mut self, n: u64) {
        match self {
            Progress::Bar(b) => b.inc(n),
            Progress::Log {
                what,
                total,
                done,
                start,
                last,
            } => {
                *done += n;
                if last.elapsed() >= LOG_EVERY {
                    *last = Instant::now();
                    let secs = start.elapsed().as_secs_f64().max(0.001);
                    let rate = *done as f64 / secs;
                    let eta = if rate > 0.0 && *total > *done {
                        format!("{:.0}s", (*total - *done) as f64 / rate)
                    } else {
                        "?".into()
                    };
                    tracing::info!(
                        "fetching {what}: {} of {} ({:.0}%), {}/s, ETA {eta}",
                        human_bytes(*done),
                        human_bytes(*total),
                        if *total > 0 {
                            *done as f64 * 100.0 / *total as f64
                        } else {
                            0.0
                        },
                        human_bytes(rate as u64),
                    );
                }
            }
        }
    }

    pub(crate) fn finish(&self) {
        match self {
            Progress::Bar(b) => b.finish_and_clear(),
            Progress::Log {
                what, done, start, ..
            } => tracing::info!(
                "fetched {what}: {} in {:.1}s",
                human_bytes(*done),
                start.elapsed().as_secs_f64()
            ),
        }
    }
}
