//! Progress for the terminal: indicatif bars on a terminal (stderr), one summary line per finished
//! task that took a second or more otherwise, nothing at all with `--quiet`.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use kdstore_core::progress::{Progress, Task};

pub struct Bars {
    terminal: bool,
    quiet: bool,
}

impl Bars {
    pub fn new(quiet: bool) -> Bars {
        Bars { terminal: std::io::stderr().is_terminal(), quiet }
    }
}

struct BarTask {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    started: Instant,
    announce: bool,
}

impl Progress for Bars {
    fn task(&self, label: &str, total: u64) -> Box<dyn Task> {
        let bar = (self.terminal && !self.quiet).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} {elapsed} (eta {eta}) {msg}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Box::new(BarTask {
            bar,
            label: label.into(),
            total,
            started: Instant::now(),
            announce: !self.terminal && !self.quiet,
        })
    }

    fn note(&self, message: &str) {
        if !self.quiet {
            tracing::debug!("{message}");
        }
    }
}

impl Task for BarTask {
    fn advance(&self, units: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(units);
        }
    }

    fn set_message(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        // Off a terminal, long tasks leave one line with their duration (short ones stay quiet).
        if self.announce && self.started.elapsed().as_secs_f64() >= 1.0 {
            eprintln!("{}: {} done in {:.1}s", self.label, self.total, self.started.elapsed().as_secs_f64());
        }
    }
}
