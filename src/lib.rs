//! kdstore: run a teacher once under many augmentations, keep raw logits, replayable views and
//! difficulty scores in a versioned Parquet store, query it with SQL, and train students from it.
//!
//! Dependencies point one way: `cli` (in the binary) → `pipeline`, `train`, `export`, `show`,
//! `query` → `select` → `store`, `teacher`, `augment`, `losses`, `source`. Only `store` and `query`
//! touch Parquet (the others write theirs through `query::write`); only `teacher`, `losses`, `train`
//! and the build's labelling stage touch tch; nothing here prints — progress goes through
//! [`progress::Progress`].

pub mod augment;
pub mod export;
pub mod losses;
pub mod pipeline;
pub mod progress;
pub mod query;
pub mod schema;
pub mod select;
pub mod show;
pub mod source;
pub mod store;
pub mod teacher;
pub mod train;
