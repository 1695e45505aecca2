//! kdstore-core: the soft-label store without libtorch. Everything a reader of a kdstore store
//! needs — and everything the torch crate builds on — lives here:
//!
//! - [`store`]: the format (column names, the versioned manifest, Parquet writer and reader) and
//!   [`store::Store`], an opened version of a store directory;
//! - [`query`]: SQL over a store (`samples`, `views`, `logits`, `embeddings` and the joined
//!   `labels` view) with DuckDB's names for unaliased columns;
//! - [`augment`]: the ops, seed derivation and view rendering, so that any view can be replayed;
//! - [`select`]: views chosen with SQL and replayed against their stored hash;
//! - [`view_file`]: a training selection kept on disk, read back a batch at a time, sorted on
//!   the way in with [`sorted_runs`] (an external sort in bounded memory);
//! - [`export`] and [`show`]: replayed views as `.npy`/Parquet files and as SVG figures, drawn
//!   with [`figure`], which the study plots share;
//! - [`pipeline`]: the pipeline file, its validation into a plan, the parts a plan names and the
//!   stages that need no model (samples, views);
//! - [`source`]: dataset readers (HAPT, IDX, UEA/UCR `.ts`, `.npy`);
//! - [`calibration`]: reliability bins and expected calibration error;
//! - [`arch`]: names and shapes of the built-in networks (the networks are in the torch crate);
//! - [`study`]: study files, their plans, claims, the runner of `kdstore train` children, the
//!   statistics, tables and report;
//! - [`interrupt`]: stopping cleanly on a scheduler's SIGTERM or SIGUSR1;
//! - [`verify`]: a whole store checked against its manifest, and with `deep` its contents.
//!
//! Typical use, the whole of what a reader needs:
//!
//! ```no_run
//! let store = kdstore_core::Store::open(std::path::Path::new("runs/hapt"))?;
//! let frame = kdstore_core::run_query(&store, "SELECT recipe, COUNT(*) FROM labels GROUP BY recipe")?;
//! println!("{frame}");
//! # Ok::<(), kdstore_core::QueryError>(())
//! ```
//!
//! Dependencies point one way: `export`, `show` → `select` → `query`, `store`, `augment`;
//! `pipeline` → `source`, `store`, `augment`. Only `store` and `query` touch Parquet; nothing here
//! prints — progress goes through [`progress::Progress`] — and nothing here links libtorch.

pub mod arch;
pub mod augment;
pub mod calibration;
pub mod channels;
pub mod export;
pub mod figure;
pub mod heap;
pub mod interrupt;
pub mod pacing;
pub mod panics;
pub mod pipeline;
pub mod progress;
pub mod query;
pub mod schema;
pub mod select;
pub mod show;
pub mod sorted_frames;
pub mod sorted_runs;
pub mod source;
pub mod store;
pub mod study;
pub mod verify;
pub mod view_file;

pub use query::{run as run_query, QueryError};
pub use store::{PartFilter, Split, Store, StoreError};
