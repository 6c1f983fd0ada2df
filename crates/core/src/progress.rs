//! Progress of long work: on a terminal, one bar per task (a member, a
//! store) with its stage, bytes, rate and ETA; off a terminal (the journal,
//! a pipe, CI) a log line per task every [`LOG_EVERY`] instead. Log lines
//! written while bars are drawn go above them ([`LogWriter`]), not through.

use crate::units::human_bytes;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a task logs its progress off a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The terminal's bars, once a board with bars exists.
static BARS: OnceLock<indicatif::MultiProgress> = OnceLock::new();

/// Where a program's tasks report. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Board {
    bars: Option<indicatif::MultiProgress>,
}

impl Board {
    /// Bars when stderr is a terminal, log lines otherwise.
    pub fn new() -> Board {
        if std::io::stderr().is_terminal() {
            let m = BARS
                .get_or_init(|| {
                    indicatif::MultiProgress::with_draw_target(
                        indicatif::ProgressDrawTarget::stderr(),
                    )
                })
                .clone();
            Board { bars: Some(m) }
        } else {
            Board::logs()
        }
    }

    /// Log lines only (tests, and what `new` gives off a terminal).
    pub fn logs() -> Board {
        Board { bars: None }
    }

    /// One task: `name` (a member, a store), `total` bytes when known.
    pub fn task(&self, name: &str, total: Option<u64>) -> Task {
        let bar = self.bars.as_ref().map(|m| {
            let b = m.add(indicatif::ProgressBar::new(total.unwrap_or(0)));
            set_style(&b, total.is_some());
            b.set_prefix(name.to_string());
            b.enable_steady_tick(Duration::from_millis(500));
            b
        });
        let now = Instant::now();
        Task {
            bar,
            inner: Arc::new(Mutex::new(Inner {
                name: name.to_string(),
                stage: String::new(),
                total,
                done: 0,
                start: now,
                last_log: now,
            })),
        }
    }
}

/// A bar when the size is known, else bytes and rate only. The bar takes
/// what the terminal has left, so an 80-column SSH session keeps the rate
/// and ETA (the text around it is about 64 columns).
fn set_style(b: &indicatif::ProgressBar, sized: bool) {
    let template = if sized {
        "{prefix:<12} {msg:<8} [{wide_bar}] {bytes:>9}/{total_bytes:<9} {binary_bytes_per_sec:>11} ETA {eta}"
    } else {
        "{prefix:<12} {msg:<8} {bytes:>9} {binary_bytes_per_sec:>11} {elapsed}"
    };
    if let Ok(s) = indicatif::ProgressStyle::with_template(template) {
        b.set_style(s.progress_chars("=> "));
    }
}

impl Default for Board {
    fn default() -> Self {
        Board::new()
    }
}

#[derive(Debug)]
struct Inner {
    name: String,
    stage: String,
    total: Option<u64>,
    done: u64,
    start: Instant,
    last_log: Instant,
}

/// One member's or store's progress. Clones report to the same bar.
#[derive(Debug, Clone)]
pub struct Task {
    bar: Option<indicatif::ProgressBar>,
    inner: Arc<Mutex<Inner>>,
}

impl Task {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// The stage the task is in (`stream`, `proof`, `ship`, …).
    pub fn stage(&self, stage: &str) {
        if let Some(b) = &self.bar {
            b.set_message(stage.to_string());
            self.with(|i| i.stage = stage.to_string());
            return;
        }
        // Off a terminal a new stage is a line too, as often as progress.
        self.update_and_log(|i| i.stage = stage.to_string());
    }

    /// The byte count once it is known (a member's database size).
    pub fn set_total(&self, total: u64) {
        if let Some(b) = &self.bar {
            b.set_length(total);
            set_style(b, true);
        }
        self.with(|i| i.total = Some(total));
    }

    /// `n` more bytes done; off a terminal, a log line every [`LOG_EVERY`].
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
            self.with(|i| i.done += n);
            return;
        }
        self.update_and_log(|i| i.done += n);
    }

    /// Off a terminal: applies `f`, then logs the task's line if
    /// [`LOG_EVERY`] has passed since the last one.
    fn update_and_log(&self, f: impl FnOnce(&mut Inner)) {
        let line = self.with(|i| {
            f(i);
            (i.last_log.elapsed() >= LOG_EVERY).then(|| {
                i.last_log = Instant::now();
                i.line()
            })
        });
        if let Some(l) = line {
            tracing::info!("{l}");
        }
    }

    /// Counts `n` bytes when the guard drops: at the end of a loop's turn,
    /// however it ends (`continue` included).
    pub fn counts_when_done(&self, n: u64) -> DoneGuard<'_> {
        DoneGuard { task: self, n }
    }

    /// Bytes done so far.
    pub fn done(&self) -> u64 {
        self.with(|i| i.done)
    }

    /// The task ended: its bar stays with `outcome` (`done`, `FAILED`).
    pub fn finish(&self, outcome: &str) {
        if let Some(b) = &self.bar {
            b.set_message(outcome.to_string());
            b.abandon();
        }
    }
}

impl Inner {
    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let of = match self.total {
            Some(t) if t > 0 => {
                let eta = if rate > 0.0 && t > self.done {
                    format!(", ETA {:.0} s", (t - self.done) as f64 / rate)
                } else {
                    String::new()
                };
                format!(
                    " of {} ({:.0}%){eta}",
                    human_bytes(t),
                    self.done as f64 * 100.0 / t as f64
                )
            }
            _ => String::new(),
        };
        format!(
            "{}: {} {}{of}, {}/s",
            self.name,
            if self.stage.is_empty() {
                "at"
            } else {
                &self.stage
            },
            human_bytes(self.done),
            human_bytes(rate as u64)
        )
    }
}

/// See [`Task::counts_when_done`].
#[derive(Debug)]
pub struct DoneGuard<'a> {
    task: &'a Task,
    n: u64,
}

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        self.task.inc(self.n);
    }
}

/// stderr for the log: a line written while bars are drawn is printed
/// above them instead of through them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BARS.get() {
            Some(m) => m
                .suspend(|| std::io::stderr().write_all(buf))
                .map(|_| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn off_a_terminal_a_task_counts_and_says_where_it_is() {
        let t = Board::logs().task("cp-1", Some(4 << 20));
        t.stage("stream");
        t.inc(1 << 20);
        t.clone().inc(1 << 20);
        assert_eq!(t.done(), 2 << 20);
        let line = t.with(|i| i.line());
        let want = format!(
            "cp-1: stream {} of {} (50%)",
            human_bytes(2 << 20),
            human_bytes(4 << 20)
        );
        assert!(line.starts_with(&want), "{line}");
        let open = Board::logs().task("local", None);
        open.inc(10);
        let line = open.with(|i| i.line());
        assert!(
            line.starts_with(&format!("local: at {},", human_bytes(10))),
            "{line}"
        );
        t.finish("done");
    }
}
