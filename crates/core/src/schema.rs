//! The generated schemas kept in `schemas/`: the pipeline file's JSON Schema (from the config
//! types) and the store's tables and columns (from `store::columns`). A test fails when the files
//! drift from the code; `KDSTORE_UPDATE_SCHEMAS=1 cargo test` rewrites them.

use crate::pipeline::config::PipelineFile;
use crate::store::columns as c;
use crate::store::manifest::SCHEMA_VERSION;

/// JSON Schema of a pipeline file.
pub fn pipeline_schema() -> String {
    let schema = schemars::schema_for!(PipelineFile);
    serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n"
}

/// The store's layout, tables and columns.
pub fn store_schema() -> String {
    let schema = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "layout": {
            "_manifest/NNNNNNNN.json": "one manifest per committed version; the highest number is current",
            "samples/part-<key>.parquet": "the samples table",
            "views/part-<recipe>-r<replica>-<key>.parquet": "the views table, one file per (recipe, replica)",
            "logits/teacher=<name>/part-<recipe>-r<replica>-<key>.parquet": "one logits partition per teacher",
            "embeddings/teacher=<name>/part-<recipe>-r<replica>-<key>.parquet": "optional: a teacher's penultimate features, one partition per teacher that stores them",
            "subsets/teacher=<name>/part-<key>.parquet": "the training samples of each subset teacher",
            "models/<teacher>-<key>.safetensors": "weights of built-in teachers",
            "models/<teacher>-<key>.training.json": "the record of the training run that made a built-in teacher (and its checkpoints)",
        },
        "tables": {
            c::SAMPLES: c::SAMPLES_COLUMNS,
            "samples (an image_folder source)": c::SAMPLES_BY_REFERENCE_COLUMNS,
            c::VIEWS: c::views_columns(),
            c::LOGITS: c::LOGITS_COLUMNS,
            "logits (a top-k teacher's files)": c::TOPK_LOGITS_COLUMNS,
            c::EMBEDDINGS: c::EMBEDDINGS_COLUMNS,
            c::SUBSETS: c::SUBSETS_COLUMNS,
        },
        "views": {
            c::LABELS: "views JOIN samples (sample_id, split, label, group) USING (sample_id) JOIN logits USING (view_id): one row per (view, teacher)",
        },
    });
    serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n"
}
