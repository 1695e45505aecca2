//! Pipelines: the file format (`config`), validation into a plan (`plan`), the samples stage
//! (`samples`) and the stage executor (`build`), which caches every stage by content and commits
//! the store after each finished part so an interrupted build resumes where it stopped.

pub mod bench;
pub mod build;
pub mod config;
pub mod plan;
pub mod samples;

use std::path::PathBuf;

pub use build::{build, BuildOptions, BuildReport};
pub use plan::{load, PipelineError, Plan};

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
        source: Box<crate::teacher::TeacherError>,
    },
    #[error("stage teacher.{teacher}: {detail}")]
    TeacherSetup { teacher: String, detail: String },
    #[error("stage teacher.{teacher}: training failed: {source}")]
    Training {
        teacher: String,
        #[source]
        source: Box<tch::TchError>,
    },
    #[error("store {store} was built from other samples (samples key {found}, this pipeline gives {expected}): the source, split or normalisation changed; build into a new --store or delete the old one")]
    DifferentSamples { store: PathBuf, expected: String, found: String },
    #[error("stage logits.{teacher}: view {view_id} (recipe {recipe}): replayed input hash {replayed:016x} differs from the stored {stored:016x}")]
    Replay { teacher: String, view_id: i64, recipe: String, stored: u64, replayed: u64 },
    #[error(
        "stage logits.{teacher}: the teacher returned {got} logits per input but the dataset has {expected} classes"
    )]
    LabelSpace { teacher: String, got: usize, expected: usize },
}
