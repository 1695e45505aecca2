//! Pipelines: the file format (`config`), validation into a plan (`plan`), the parts a plan names
//! and their content keys (`parts`), the teachers and who learns from whom (`teachers`), and the stages that need no model — reading and splitting the
//! samples (`samples`) and rendering views (`views`, over `parallel` chunks). The executor that
//! also trains and runs teachers lives in the torch crate; [`BuildError`] is the error of a build.

pub mod config;
pub mod parallel;
pub mod parts;
pub mod plan;
pub mod samples;
pub mod teachers;
pub mod views;

use std::path::PathBuf;

pub use plan::{load, FileError, Plan};

/// The cause of a teacher's failure, from the code that runs models (the torch crate).
pub type TeacherCause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stage samples: {0}")]
    Source(#[from] crate::source::SourceError),
    #[error("stage samples: {0}")]
    Split(String),
    #[error("stage views: {0}")]
    Recipe(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("stage teacher.{teacher}: {source}")]
    Teacher {
        teacher: String,
        #[source]
        source: TeacherCause,
    },
    #[error("stage teacher.{teacher}: {detail}")]
    TeacherSetup { teacher: String, detail: String },
    #[error("stage teacher.{teacher}: training failed: {source}")]
    Training {
        teacher: String,
        #[source]
        source: TeacherCause,
    },
    #[error("store {store} was built from other samples (samples key {found}, this pipeline gives {expected}): the source, split or normalisation changed; build into a new --store or delete the old one")]
    DifferentSamples { store: PathBuf, expected: String, found: String },
    #[error("stage logits.{teacher}: view {view_id} (recipe {recipe}): replayed input hash {replayed:016x} differs from the stored {stored:016x}")]
    Replay { teacher: String, view_id: i64, recipe: String, stored: u64, replayed: u64 },
    #[error(
        "stage logits.{teacher}: the teacher returned {got} logits per input but the dataset has {expected} classes"
    )]
    LabelSpace { teacher: String, got: usize, expected: usize },
    #[error("stage logits.{teacher}: {part}: the teacher's {what} are not finite for {count} views (view ids {view_ids}); nothing of this part was committed")]
    NonFinite { teacher: String, part: String, what: String, count: usize, view_ids: String },
}
