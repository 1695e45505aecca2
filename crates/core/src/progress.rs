//! How core code reports progress without drawing anything: a stage asks for a [`Task`] with a
//! total and advances it; the CLI decides whether that becomes a bar on a terminal or nothing.

/// A sink for progress reports.
pub trait Progress: Sync {
    /// Starts a task of `total` units (rows, epochs) with a short label.
    fn task(&self, label: &str, total: u64) -> Box<dyn Task>;
    /// A one-line note about what happened (a stage skipped, a commit made).
    fn note(&self, message: &str);
}

/// One running task.
pub trait Task: Send + Sync {
    fn advance(&self, units: u64);
    fn set_message(&self, message: &str);
    fn finish(&self);
}

/// Reports nothing (tests, library use).
pub struct Silent;

struct SilentTask;

impl Progress for Silent {
    fn task(&self, _label: &str, _total: u64) -> Box<dyn Task> {
        Box::new(SilentTask)
    }
    fn note(&self, _message: &str) {}
}

impl Task for SilentTask {
    fn advance(&self, _units: u64) {}
    fn set_message(&self, _message: &str) {}
    fn finish(&self) {}
}
