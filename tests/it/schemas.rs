//! The files in schemas/ are generated from the code; this fails with a diff when they drift.
//! `KDSTORE_UPDATE_SCHEMAS=1 cargo test` rewrites them.

use crate::common::{check_snapshot, repo};

fn check(name: &str, generated: String) {
    check_snapshot(&repo().join("schemas").join(name), &generated, "KDSTORE_UPDATE_SCHEMAS");
}

#[test]
fn pipeline_schema_is_up_to_date() {
    check("pipeline.json", kdstore_core::schema::pipeline_schema());
}

#[test]
fn store_schema_is_up_to_date() {
    check("store.json", kdstore_core::schema::store_schema());
}

#[test]
fn study_schema_is_up_to_date() {
    check("study.json", kdstore_core::study::study_schema());
}
