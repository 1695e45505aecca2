//! `kdstore info STORE [--json]`: versions, tables and row counts, teachers and their accuracy,
//! the size of the current version's files and bytes per stored (view, teacher) row. Everything
//! comes from the manifest (and the teachers' model files), so it takes milliseconds whatever the
//! store's size: nothing walks the store's directories.

use kdstore_core::store::columns as c;
use kdstore_core::store::history::history;
use kdstore_core::store::{manifest, Store, StoreError};

use std::fmt::Write as _;

use super::{classify_store, print_stdout, StoreAt};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreAt,
    /// Print the facts as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// List every committed version: when, what it changed, its files and rows.
    #[arg(long)]
    versions: bool,
}

/// `info --versions`: one line per version, newest last.
fn versions(args: &Args) -> anyhow::Result<()> {
    let entries = history(&args.store.store).map_err(classify_store)?;
    if entries.is_empty() {
        return Err(classify_store(StoreError::NotAStore { path: args.store.store.clone() }));
    }
    if args.json {
        return print_stdout(&(serde_json::to_string_pretty(&entries)? + "\n"));
    }
    let mut out = String::from("version  committed             files  (view, teacher) rows  change\n");
    for entry in &entries {
        writeln!(
            out,
            "{:>7}  {:<20}  {:>5}  {:>20}  {}",
            entry.version, entry.committed_at, entry.files, entry.logits_rows, entry.change
        )?;
    }
    print_stdout(&out)
}

/// Bytes of the current version: its data files (as the manifest records them) and the built-in
/// teachers' weights.
fn version_bytes(store: &Store) -> u64 {
    let data: u64 = store.manifest.files.iter().map(|f| f.bytes).sum();
    let models: u64 = store
        .manifest
        .teachers
        .iter()
        .filter(|t| t.kind == "builtin")
        .filter_map(|t| std::fs::metadata(store.root.join(&t.model_path)).ok())
        .map(|m| m.len())
        .sum();
    data + models
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.versions {
        return versions(&args);
    }
    let store = args.store.open()?;
    let versions = manifest::versions(&store.root).map_err(classify_store)?;
    let m = &store.manifest;
    let rows = |table: &str| m.files_of(table).map(|f| f.rows).sum::<usize>();
    let bytes = |table: &str| m.files_of(table).map(|f| f.bytes).sum::<u64>();
    let logits_rows = rows(c::LOGITS);
    let per_row = if logits_rows > 0 { (bytes(c::VIEWS) + bytes(c::LOGITS)) as f64 / logits_rows as f64 } else { 0.0 };
    let size = version_bytes(&store);
    let teacher_files = |t: &kdstore_core::store::TeacherInfo| {
        m.files_of(c::LOGITS).filter(|f| f.teacher.as_deref() == Some(&t.name)).collect::<Vec<_>>()
    };
    let teacher_rows = |t| teacher_files(t).iter().map(|f| f.rows).sum::<usize>();
    let teacher_bytes_per_row = |t| {
        let files = teacher_files(t);
        let rows: usize = files.iter().map(|f| f.rows).sum();
        files.iter().map(|f| f.bytes).sum::<u64>() as f64 / rows.max(1) as f64
    };
    if args.json {
        let facts = serde_json::json!({
            "store": store.root,
            "version": m.version,
            "versions": versions.len(),
            "pipeline": m.pipeline.get("name"),
            "pipeline_hash": m.pipeline_hash,
            "tables": {
                c::SAMPLES: { "rows": rows(c::SAMPLES), "bytes": bytes(c::SAMPLES), "files": m.files_of(c::SAMPLES).count() },
                c::VIEWS: { "rows": rows(c::VIEWS), "bytes": bytes(c::VIEWS), "files": m.files_of(c::VIEWS).count() },
                c::LOGITS: { "rows": logits_rows, "bytes": bytes(c::LOGITS), "files": m.files_of(c::LOGITS).count() },
            },
            "dataset": m.dataset,
            "teachers": m.teachers.iter().map(|t| serde_json::json!({
                "name": t.name, "kind": t.kind, "architecture": t.architecture, "logits_dtype": t.logits_dtype,
                "logits_format": t.logits_layout(), "logits_bytes_per_row": teacher_bytes_per_row(t),
                "accuracy": t.accuracy, "model_sha256": t.model_sha256,
            })).collect::<Vec<_>>(),
            "bytes_in_version": size,
            "bytes_per_view_teacher_row": per_row,
        });
        return print_stdout(&(serde_json::to_string_pretty(&facts)? + "\n"));
    }
    let mut out = String::new();
    let d = &m.dataset;
    let splits: Vec<String> = d.split_counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(out, "store     {}", store.root.display())?;
    writeln!(out, "version   {} ({} committed)", m.version, versions.len())?;
    writeln!(
        out,
        "pipeline  {} ({})",
        m.pipeline.get("name").and_then(|v| v.as_str()).unwrap_or("?"),
        &m.pipeline_hash[..16]
    )?;
    writeln!(
        out,
        "samples   {} rows ({}), shape {:?}, {} classes",
        rows(c::SAMPLES),
        splits.join(", "),
        d.sample_shape,
        d.class_names.len()
    )?;
    writeln!(out, "          split: {}", d.split_rule)?;
    writeln!(out, "          normalisation: {}", d.normalization.mode)?;
    if let Some(folder) = &d.files {
        writeln!(out, "          inputs: image files under {}, decoded on every read", folder.root.display())?;
    }
    // One entry per recipe, in pipeline order: its rows, and its replicas when there are several.
    let mut recipes: Vec<(String, usize, usize)> = Vec::new();
    for file in m.files_of(c::VIEWS) {
        let recipe = file.recipe.as_deref().unwrap_or("?");
        match recipes.iter_mut().find(|(name, _, _)| name == recipe) {
            Some((_, rows, parts)) => {
                *rows += file.rows;
                *parts += 1;
            }
            None => recipes.push((recipe.to_string(), file.rows, 1)),
        }
    }
    let recipes: Vec<String> = recipes
        .into_iter()
        .map(
            |(name, rows, parts)| {
                if parts == 1 {
                    format!("{name} {rows}")
                } else {
                    format!("{name} {rows} ({parts} replicas)")
                }
            },
        )
        .collect();
    writeln!(
        out,
        "views     {} rows in {} parts: {}",
        rows(c::VIEWS),
        m.files_of(c::VIEWS).count(),
        recipes.join(", ")
    )?;
    writeln!(out, "logits    {} rows in {} parts", logits_rows, m.files_of(c::LOGITS).count())?;
    writeln!(out, "teachers")?;
    for t in &m.teachers {
        let accuracy: Vec<String> = t.accuracy.iter().map(|(split, a)| format!("{split} {:.2}%", a * 100.0)).collect();
        let subset_rows: usize =
            m.files_of(c::SUBSETS).filter(|f| f.teacher.as_deref() == Some(&t.name)).map(|f| f.rows).sum();
        writeln!(
            out,
            "  {:<12} {:<26} {:>7} params  {:<32} {:<16} {} {:>7} rows {:>6.1} B/row  accuracy: {}",
            t.name,
            t.architecture,
            t.parameters.map_or("?".to_string(), short_count),
            learnt_from(t, subset_rows),
            match &t.input_channels {
                Some(channels) =>
                    format!("channels {}", channels.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")),
                None => "all channels".to_string(),
            },
            t.logits_layout(),
            teacher_rows(t),
            teacher_bytes_per_row(t),
            accuracy.join(", ")
        )?;
    }
    writeln!(
        out,
        "size      {:.1} MiB in this version's files; {:.1} bytes per (view, teacher) row (views + logits)",
        size as f64 / (1 << 20) as f64,
        per_row
    )?;
    print_stdout(&out)
}

/// What a teacher learnt from: the labels or another teacher, on which subset, until which epoch.
fn learnt_from(t: &kdstore_core::store::TeacherInfo, subset_rows: usize) -> String {
    let mut text = match (t.kind.as_str(), &t.distilled_from) {
        ("torchscript", _) => "a TorchScript file".to_string(),
        (_, Some(teacher)) => format!("teacher {teacher}"),
        (_, None) => "labels".to_string(),
    };
    if let Some(k) = t.subset {
        text.push_str(&format!(", subset {k} ({subset_rows} samples)"));
    }
    if let Some(epoch) = t.epoch {
        text.push_str(&format!(", epoch {epoch}"));
    }
    text
}

/// 1234 → 1.2k, 2_500_000 → 2.5M.
fn short_count(n: i64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}
