//! The stage executor. A build computes the parts the plan asks for and the current store version
//! lacks — the samples, one views part per (recipe, replica), each teacher, and one logits part per
//! (teacher, views part) — and commits a new manifest version after each part. Every part's file
//! name carries its content key, so a re-run finds finished parts in the manifest and skips them,
//! and a part interrupted before its commit is simply computed again.
//!
//! Determinism: views are rendered from seeds derived from identifiers; models run with one
//! intra-op thread each and always on the same fixed chunks of rows, so the content is identical
//! whatever `--threads` is; threads only decide how many chunks run at once.

mod label;
mod repair;
mod teacher;

use std::path::{Path, PathBuf};

use kdstore_core::pipeline::parts::{remove_temporaries, same_content, Parts};
use kdstore_core::pipeline::plan::{Plan, IDENTITY};
use kdstore_core::pipeline::samples::{samples_key, write_samples};
use kdstore_core::pipeline::views::{check_recipes, render_views, RenderContext};
use kdstore_core::pipeline::BuildError;
use kdstore_core::progress::Progress;
use kdstore_core::store::columns as c;
use kdstore_core::store::manifest;
use kdstore_core::store::reader::SampleTable;
use kdstore_core::store::writer::{self, LogitsRow};
use kdstore_core::store::{Manifest, Store, WriteLock};

pub(crate) use label::label_views;
use label::split_accuracy;
pub use teacher::load_classifier;
use teacher::prepare_teacher;

/// Settings of one build run (facts about the run, not the pipeline).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub store: PathBuf,
    pub threads: usize,
    /// Check every file first and compute the damaged or missing ones again (see `repair`).
    pub repair: bool,
}

/// What a build did.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// The current version after the build (None only if nothing was ever committed).
    pub version: Option<u64>,
    /// One line per part computed or change committed; empty when the store was up to date.
    pub steps: Vec<String>,
}

/// Runs the plan against the store in `options.store`.
pub fn build(plan: &Plan, options: &BuildOptions, progress: &dyn Progress) -> Result<BuildReport, BuildError> {
    tch::set_num_threads(1);
    let root = options.store.as_path();
    let _lock = WriteLock::acquire(root)?;
    remove_temporaries(root);
    let (current, repair) = if options.repair {
        let (current, repair) = repair::start(root)?;
        (current, Some(repair))
    } else {
        (manifest::read_latest(root)?, None)
    };
    // A repair commits once, at the end: until then the current version stays as it was.
    let commits = repair.is_none();
    let samples_key = samples_key(&plan.file)?;
    if let Some(found) = &current {
        if found.dataset.samples_key != samples_key {
            return Err(BuildError::DifferentSamples {
                store: root.to_path_buf(),
                expected: samples_key,
                found: found.dataset.samples_key.clone(),
            });
        }
    }

    let parts = Parts::of(plan, &samples_key)?;
    let mut report = BuildReport::default();
    let mut manifest = parts.next_manifest(plan, current.as_ref(), &samples_key);
    if let Some(current) = &current {
        if !same_content(current, &manifest) {
            let removed = current.files.len() - manifest.files.len() + current.teachers.len() - manifest.teachers.len();
            report.steps.push(format!(
                "pipeline changed: kept {} parts, removed {removed} it no longer names",
                manifest.files.len()
            ));
            commit(root, &mut manifest, progress, &mut report, commits)?;
        }
    }

    let mut samples: Option<SampleTable> = None;
    if manifest.files_of(c::SAMPLES).next().is_none() {
        samples = Some(write_samples(plan, root, &samples_key, &mut manifest)?);
        report.steps.push(format!("samples: {} rows", manifest.dataset.split_counts.values().sum::<usize>()));
        commit(root, &mut manifest, progress, &mut report, commits)?;
    }
    if !parts.anything_missing(&manifest) {
        return finish(root, manifest, repair.as_ref(), report, progress);
    }
    let samples = match samples {
        Some(samples) => samples,
        None => Store { root: root.to_path_buf(), manifest: manifest.clone() }.load_samples()?,
    };
    let context = RenderContext::new(&samples, &manifest);
    check_recipes(plan, &samples.sample_shape)?;
    check_channels(plan, &samples.sample_shape)?;

    let missing_views: Vec<_> = parts.views.iter().filter(|p| Parts::view_missing(&manifest, p)).collect();
    for part in missing_views {
        let rows = render_views(plan, part, &context, options.threads, progress)?;
        let mut file = writer::write_views(root, &part.path, &part.key, &rows)?;
        file.recipe = Some(part.recipe.name.clone());
        // A part of several replicas is not pruned by replica (queries read it whole).
        file.replica = (part.count == 1).then_some(part.replica);
        manifest.files.push(file);
        report.steps.push(format!("views {} {}: {} rows", part.recipe.name, part.describe(), rows.len()));
        commit(root, &mut manifest, progress, &mut report, commits)?;
    }

    // Teacher by teacher, in training order: a teacher that learns from another one trains once
    // that one's logits are committed.
    for (index, target) in parts.teachers.iter().enumerate() {
        if Parts::teacher_missing(&manifest, target) {
            let mut info = prepare_teacher(plan, root, target, &parts.teachers, &manifest, &context, progress)?;
            report.steps.push(format!("teacher {}: {}", info.name, info.architecture));
            if let Some(repair) = &repair {
                let (again, other_weights) = repair.teacher_again(info);
                if other_weights {
                    // Other weights than the damaged ones: its labels must come from them too.
                    manifest.files.retain(|f| f.teacher.as_deref() != Some(again.name.as_str()));
                }
                info = again;
            }
            manifest.teachers.retain(|t| t.name != info.name);
            manifest.teachers.push(info);
            commit(root, &mut manifest, progress, &mut report, commits)?;
        }
        let missing_subset = target.subset_part.as_ref().filter(|_| Parts::subset_missing(&manifest, target));
        if let Some(((key, path), ids)) = missing_subset.zip(teacher::subset_of(plan, &samples, target)) {
            manifest.files.push(writer::write_subset(root, path, key, &target.name, &ids)?);
            report.steps.push(format!("subset {}: {} training samples", target.name, ids.len()));
            commit(root, &mut manifest, progress, &mut report, commits)?;
        }
        let missing_logits: Vec<_> = parts
            .logits
            .iter()
            .filter(|p| p.teacher == index)
            .filter(|p| Parts::logits_missing(&manifest, p) || Parts::embeddings_missing(&manifest, p))
            .collect();
        for part in missing_logits {
            label_part(root, &parts, part, &mut manifest, &samples, &context, options.threads, progress, &mut report)?;
            commit(root, &mut manifest, progress, &mut report, commits)?;
        }
    }
    let training = root.join(teacher::TRAINING_DIR);
    if training.exists() {
        std::fs::remove_dir_all(&training).map_err(|source| BuildError::Io { path: training, source })?;
    }
    finish(root, manifest, repair.as_ref(), report, progress)
}

/// Every teacher's `input_channels` against the samples' channels, before anything trains (a
/// source whose channels `validate` cannot know without reading it).
fn check_channels(plan: &Plan, sample_shape: &[usize]) -> Result<(), BuildError> {
    let mut problems = Vec::new();
    for (index, teacher) in plan.file.teachers.iter().enumerate() {
        if let Some(channels) = teacher.input_channels() {
            let location = format!("teacher {} ('{}')", index + 1, teacher.name());
            kdstore_core::pipeline::teachers::check_channels(&location, channels, Some(sample_shape[0]), &mut problems);
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(BuildError::TeacherSetup { teacher: "input_channels".into(), detail: problems.join("; ") }),
    }
}

/// Labels one views part with one teacher (logits, and embeddings where the teacher stores them)
/// and adds the files to `manifest`; the caller commits.
#[allow(clippy::too_many_arguments)]
fn label_part(
    root: &Path,
    parts: &Parts,
    part: &kdstore_core::pipeline::parts::LogitsPart,
    manifest: &mut Manifest,
    samples: &SampleTable,
    context: &RenderContext,
    threads: usize,
    progress: &dyn Progress,
    report: &mut BuildReport,
) -> Result<(), BuildError> {
    let (need_logits, need_embeddings) =
        (Parts::logits_missing(manifest, part), Parts::embeddings_missing(manifest, part));
    let teacher = &parts.teachers[part.teacher];
    let view_part = &parts.views[part.view];
    let info = manifest.teacher(&teacher.name).expect("teacher committed above").clone();
    let views_file = manifest
        .files
        .iter()
        .find(|f| f.table == c::VIEWS && f.key == view_part.key)
        .expect("views committed above")
        .clone();
    let store = Store { root: root.to_path_buf(), manifest: manifest.clone() };
    let views = store.load_views(store.scan_files(c::VIEWS, &[&views_file])?)?;
    let label = format!("logits {} {} {}", info.name, view_part.recipe.name, view_part.label());
    let labelled =
        label_views(root, &info, &view_part.recipe.ops, &label, &views, context, threads, need_embeddings, progress)?;
    let (rows, features): (Vec<LogitsRow>, Vec<Vec<f32>>) = labelled.into_iter().unzip();
    if let (true, Some((key, path))) = (need_embeddings, &part.embeddings) {
        let dtype = teacher.config.embeddings().expect("a part with embeddings has a dtype");
        let ids: Vec<i64> = rows.iter().map(|r| r.view_id).collect();
        let mut file = writer::write_embeddings(root, path, key, &info.name, &ids, &features, dtype)?;
        file.views_key = Some(view_part.key.clone());
        manifest.files.push(file);
        report.steps.push(format!(
            "embeddings {} on {} {}: {} rows of {}",
            info.name,
            view_part.recipe.name,
            view_part.describe(),
            rows.len(),
            features.first().map_or(0, Vec::len)
        ));
    }
    if !need_logits {
        return Ok(());
    }
    let format = teacher.config.logits_format();
    let mut file = writer::write_logits(root, &part.path, &part.key, &info.name, &rows, format)?;
    file.views_key = Some(view_part.key.clone());
    manifest.files.push(file);
    if view_part.recipe.name == IDENTITY {
        let accuracy = split_accuracy(&views, &rows, samples);
        if let Some(entry) = manifest.teachers.iter_mut().find(|t| t.name == info.name) {
            entry.accuracy = accuracy;
        }
    }
    report.steps.push(format!(
        "logits {} on {} {}: {} rows",
        info.name,
        view_part.recipe.name,
        view_part.describe(),
        rows.len()
    ));
    Ok(())
}

/// Ends a build; a repair that found anything commits its one version here.
fn finish(
    root: &Path,
    mut manifest: Manifest,
    repair: Option<&repair::Repair>,
    mut report: BuildReport,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildError> {
    if let Some(repair) = repair.filter(|r| r.needs_commit()) {
        let recomputed = std::mem::take(&mut report.steps);
        report.steps = repair.found.iter().map(|problem| format!("damaged: {problem}")).collect();
        report.steps.extend(recomputed.into_iter().map(|step| format!("recomputed {step}")));
        repair.restore_order(&mut manifest);
        report.steps.push(format!(
            "repaired {} problem{}",
            repair.found.len(),
            if repair.found.len() == 1 { "" } else { "s" }
        ));
        commit(root, &mut manifest, progress, &mut report, true)?;
    }
    report.version = Some(manifest.version);
    Ok(report)
}

/// Commits `manifest` as a new version after a step, unless `commits` is false (a repair, which
/// commits once at the end).
fn commit(
    root: &Path,
    manifest: &mut Manifest,
    progress: &dyn Progress,
    report: &mut BuildReport,
    commits: bool,
) -> Result<(), BuildError> {
    if !commits {
        return Ok(());
    }
    manifest.change = report.steps.last().cloned();
    let version = manifest::commit(root, manifest)?;
    progress.note(&format!("committed version {version}: {}", report.steps.last().map_or("", String::as_str)));
    report.version = Some(version);
    Ok(())
}
