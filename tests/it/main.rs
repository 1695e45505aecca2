//! kdstore's integration tests: one binary, each test in its own temporary directory, running the
//! real `kdstore` executable from the repository root (where `make test` has fetched the datasets).

mod common;

mod binaries;
mod build;
mod errors;
mod export;
mod image_folder;
mod integrity;
mod losses;
mod objectives;
mod older_stores;
mod pacing;
mod python;
mod query;
mod report;
mod schemas;
mod show;
mod sources;
mod study;
mod teachers;
mod topk;
mod train;
