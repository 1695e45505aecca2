//! The files in schemas/ are generated from the code; this fails with a diff when they drift.
//! `KDSTORE_UPDATE_SCHEMAS=1 cargo test` rewrites them.

use crate::common::repo;

fn check(name: &str, generated: String) {
    let path = repo().join("schemas").join(name);
    if std::env::var_os("KDSTORE_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let diff: Vec<String> = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  - {a}\n  + {b}", i + 1))
            .collect();
        panic!(
            "schemas/{name} drifted from the code ({} vs {} lines); run KDSTORE_UPDATE_SCHEMAS=1 cargo test\n{}",
            committed.lines().count(),
            generated.lines().count(),
            diff.join("\n")
        );
    }
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
