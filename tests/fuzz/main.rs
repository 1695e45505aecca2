//! Fuzz tests: every parser fed mutated real inputs must answer with one clear error or a valid
//! result, never a panic or a hang (see `harness` for the rules and the environment variables,
//! and docs/benchmarks.md for the long runs). Each target runs for `KDSTORE_FUZZ_SECONDS`.

mod harness;
mod mutate;
mod targets;

use harness::{assert_clean, fuzz, seconds};

#[test]
fn pipeline_toml() {
    assert_clean(&fuzz(targets::pipeline_toml(), seconds()));
}

#[test]
fn study_toml() {
    assert_clean(&fuzz(targets::study_toml(), seconds()));
}

#[test]
fn idx() {
    assert_clean(&fuzz(targets::idx(), seconds()));
}

#[test]
fn ts() {
    assert_clean(&fuzz(targets::ts(), seconds()));
}

#[test]
fn npy() {
    assert_clean(&fuzz(targets::npy(), seconds()));
}

#[test]
fn hapt_pickle() {
    assert_clean(&fuzz(targets::hapt_pickle(seconds()), seconds()));
}

#[test]
fn manifest() {
    assert_clean(&fuzz(targets::manifest_json(), seconds()));
}

#[test]
fn store_parquet() {
    assert_clean(&fuzz(targets::store_parquet(), seconds()));
}
