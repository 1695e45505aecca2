//! The stage executor. A build computes the parts the plan asks for and the current store version
//! lacks — the samples, one views part per (recipe, replica), each teacher, and one logits part per
//! (teacher, views part) — and commits a new manifest version after each part. Every part's file
//! name carries its content key, so a re-run finds finished parts in the manifest and skips them,
//! and a part interrupted before its commit is simply computed again.
//!
//! Determinism: views are rendered from seeds derived from identifiers; models run with one
//! intra-op thread each and always on the same fixed chunks of rows, so the content is identical
//! whatever `--threads` is; threads only decide how many chunks run at once.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use xxhash_rust::xxh3::xxh3_128;

use super::config::{RecipeConfig, TeacherConfig};
use super::plan::{Plan, IDENTITY};
use super::samples::{prepare, samples_key};
use super::BuildError;
use crate::augment::{render_view, seed, MixSource, Normalizer, OpConfig, RenderedView};
use crate::progress::{Progress, Task};
use crate::store::columns as c;
use crate::store::manifest::{self, SCHEMA_VERSION};
use crate::store::reader::SampleTable;
use crate::store::writer::{self, LogitsRow, SampleRows, ViewRow};
use crate::store::{DatasetInfo, Manifest, Split, Store, TeacherInfo, WriteLock};
use crate::teacher::arch::ArchSpec;
use crate::teacher::stats::{logits_row, ViewTarget};
use crate::teacher::{builtin, Classifier};

/// Rows rendered or labelled together; fixed so that results never depend on the thread count.
const CHUNK: usize = 256;

/// Settings of one build run (facts about the run, not the pipeline).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub store: PathBuf,
    pub threads: usize,
}

/// What a build did.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// The current version after the build (None only if nothing was ever committed).
    pub version: Option<u64>,
    /// One line per part computed or change committed; empty when the store was up to date.
    pub steps: Vec<String>,
}

struct ViewPart {
    recipe: RecipeConfig,
    replica: u32,
    key: String,
    path: String,
}

struct TeacherTarget {
    config: TeacherConfig,
    key: String,
}

struct LogitsPart {
    teacher: usize,
    view: usize,
    key: String,
    path: String,
    /// Key and path of the matching `embeddings` part, when the teacher stores features.
    embeddings: Option<(String, String)>,
}

fn key_of(parts: &[&str]) -> String {
    format!("{:032x}", xxh3_128(parts.join("\u{1f}").as_bytes()))
}

fn short(key: &str) -> &str {
    &key[..16]
}

/// Runs the plan against the store in `options.store`.
pub fn build(plan: &Plan, options: &BuildOptions, progress: &dyn Progress) -> Result<BuildReport, BuildError> {
    tch::set_num_threads(1);
    let root = options.store.as_path();
    let _lock = WriteLock::acquire(root)?;
    remove_temporaries(root);
    let current = manifest::read_latest(root)?;
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

    let view_parts = view_parts(plan, &samples_key);
    let teachers = teacher_targets(plan, &samples_key)?;
    let logits_parts = logits_parts(&teachers, &view_parts);

    let mut report = BuildReport::default();
    let mut manifest = next_manifest(plan, current.as_ref(), &samples_key, &view_parts, &teachers, &logits_parts);
    if let Some(current) = &current {
        if !same_content(current, &manifest) {
            let removed = current.files.len() - manifest.files.len() + current.teachers.len() - manifest.teachers.len();
            report.steps.push(format!(
                "pipeline changed: kept {} parts, removed {removed} it no longer names",
                manifest.files.len()
            ));
            commit(root, &mut manifest, progress, &mut report)?;
        }
    }

    let mut samples: Option<SampleTable> = None;
    if manifest.files_of(c::SAMPLES).next().is_none() {
        samples = Some(write_samples(plan, root, &samples_key, &mut manifest)?);
        report.steps.push(format!("samples: {} rows", manifest.dataset.split_counts.values().sum::<usize>()));
        commit(root, &mut manifest, progress, &mut report)?;
    }
    let view_missing =
        |m: &Manifest, part: &ViewPart| !m.files.iter().any(|f| f.table == c::VIEWS && f.key == part.key);
    let teacher_missing =
        |m: &Manifest, t: &TeacherTarget| !m.teachers.iter().any(|i| i.name == t.config.name() && i.key == t.key);
    let logits_missing =
        |m: &Manifest, part: &LogitsPart| !m.files.iter().any(|f| f.table == c::LOGITS && f.key == part.key);
    let embeddings_missing = |m: &Manifest, part: &LogitsPart| {
        part.embeddings
            .as_ref()
            .is_some_and(|(key, _)| !m.files.iter().any(|f| f.table == c::EMBEDDINGS && &f.key == key))
    };
    let anything_missing = view_parts.iter().any(|p| view_missing(&manifest, p))
        || teachers.iter().any(|t| teacher_missing(&manifest, t))
        || logits_parts.iter().any(|p| logits_missing(&manifest, p) || embeddings_missing(&manifest, p));
    if !anything_missing {
        report.version = Some(manifest.version);
        return Ok(report);
    }
    let samples = match samples {
        Some(samples) => samples,
        None => Store { root: root.to_path_buf(), manifest: manifest.clone() }.load_samples()?,
    };
    let context = Context::new(&samples, &manifest);
    check_recipes(plan, &samples.sample_shape)?;

    let missing_views: Vec<&ViewPart> = view_parts.iter().filter(|p| view_missing(&manifest, p)).collect();
    for part in missing_views {
        let rows = render_views(plan, part, &context, options.threads, progress)?;
        let mut frame = writer::views_frame(&rows).map_err(|e| parquet_error(root, c::VIEWS, e))?;
        let mut file = writer::write_parquet(root, &part.path, c::VIEWS, &part.key, &mut frame)?;
        file.recipe = Some(part.recipe.name.clone());
        file.replica = Some(part.replica);
        manifest.files.push(file);
        report.steps.push(format!("views {} replica {}: {} rows", part.recipe.name, part.replica, rows.len()));
        commit(root, &mut manifest, progress, &mut report)?;
    }

    let missing_teachers: Vec<&TeacherTarget> = teachers.iter().filter(|t| teacher_missing(&manifest, t)).collect();
    for target in missing_teachers {
        let info = prepare_teacher(plan, root, target, &context, progress)?;
        report.steps.push(format!("teacher {}: {}", info.name, info.architecture));
        manifest.teachers.retain(|t| t.name != info.name);
        manifest.teachers.push(info);
        commit(root, &mut manifest, progress, &mut report)?;
    }

    let missing_logits: Vec<&LogitsPart> =
        logits_parts.iter().filter(|p| logits_missing(&manifest, p) || embeddings_missing(&manifest, p)).collect();
    for part in missing_logits {
        let (need_logits, need_embeddings) = (logits_missing(&manifest, part), embeddings_missing(&manifest, part));
        let teacher = &teachers[part.teacher];
        let view_part = &view_parts[part.view];
        let info = manifest.teacher(teacher.config.name()).expect("teacher committed above").clone();
        let views_file = manifest
            .files
            .iter()
            .find(|f| f.table == c::VIEWS && f.key == view_part.key)
            .expect("views committed above")
            .clone();
        let store = Store { root: root.to_path_buf(), manifest: manifest.clone() };
        let views = store.load_views(store.scan_files(c::VIEWS, &[&views_file])?)?;
        let label = format!("logits {} {} r{}", info.name, view_part.recipe.name, view_part.replica);
        let labelled = label_views(
            root,
            &info,
            &view_part.recipe.ops,
            &label,
            &views,
            &context,
            options.threads,
            need_embeddings,
            progress,
        )?;
        let (rows, features): (Vec<LogitsRow>, Vec<Vec<f32>>) = labelled.into_iter().unzip();
        if let (true, Some((key, path))) = (need_embeddings, &part.embeddings) {
            let dtype = teacher.config.embeddings().expect("a part with embeddings has a dtype");
            let ids: Vec<i64> = rows.iter().map(|r| r.view_id).collect();
            let mut frame = writer::embeddings_frame(&info.name, &ids, &features, dtype)
                .map_err(|e| parquet_error(root, c::EMBEDDINGS, e))?;
            let mut file = writer::write_parquet(root, path, c::EMBEDDINGS, key, &mut frame)?;
            file.teacher = Some(info.name.clone());
            file.views_key = Some(view_part.key.clone());
            manifest.files.push(file);
            report.steps.push(format!(
                "embeddings {} on {} replica {}: {} rows of {}",
                info.name,
                view_part.recipe.name,
                view_part.replica,
                rows.len(),
                features.first().map_or(0, Vec::len)
            ));
        }
        if !need_logits {
            commit(root, &mut manifest, progress, &mut report)?;
            continue;
        }
        let dtype = teacher.config.logits_dtype();
        let mut frame =
            writer::logits_frame(&info.name, &rows, dtype).map_err(|e| parquet_error(root, c::LOGITS, e))?;
        let mut file = writer::write_parquet(root, &part.path, c::LOGITS, &part.key, &mut frame)?;
        file.teacher = Some(info.name.clone());
        file.views_key = Some(view_part.key.clone());
        manifest.files.push(file);
        if view_part.recipe.name == IDENTITY {
            let accuracy = split_accuracy(&views, &rows, &samples);
            if let Some(entry) = manifest.teachers.iter_mut().find(|t| t.name == info.name) {
                entry.accuracy = accuracy;
            }
        }
        report.steps.push(format!(
            "logits {} on {} replica {}: {} rows",
            info.name,
            view_part.recipe.name,
            view_part.replica,
            rows.len()
        ));
        commit(root, &mut manifest, progress, &mut report)?;
    }
    report.version = Some(manifest.version);
    Ok(report)
}

/// Every op of every recipe fits the samples' shape (only known once the source was read).
fn check_recipes(plan: &Plan, shape: &[usize]) -> Result<(), BuildError> {
    let mut problems = Vec::new();
    for recipe in &plan.recipes {
        for (index, op) in recipe.ops.iter().enumerate() {
            if let Err(problem) = op.check_shape(shape) {
                problems.push(format!("recipe {}: op {} ({}): {problem}", recipe.name, index + 1, op.name()));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BuildError::Recipe(problems.join("; ")))
    }
}

/// Deletes the temporary files (`.<name>.tmp…`) that a killed build left behind. Only called with
/// the write lock held, so no other writer can be using them.
fn remove_temporaries(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(entry.path()),
                Ok(_) if name.starts_with('.') && name.contains(".tmp") => {
                    let _ = std::fs::remove_file(entry.path());
                }
                _ => {}
            }
        }
    }
}

fn commit(
    root: &Path,
    manifest: &mut Manifest,
    progress: &dyn Progress,
    report: &mut BuildReport,
) -> Result<(), BuildError> {
    let version = manifest::commit(root, manifest)?;
    progress.note(&format!("committed version {version}: {}", report.steps.last().map_or("", String::as_str)));
    report.version = Some(version);
    Ok(())
}

fn parquet_error(root: &Path, table: &str, source: polars::error::PolarsError) -> BuildError {
    BuildError::Store(crate::store::StoreError::Parquet { path: root.to_path_buf(), table: table.into(), source })
}

fn view_parts(plan: &Plan, samples_key: &str) -> Vec<ViewPart> {
    let mut parts = Vec::new();
    for recipe in &plan.recipes {
        let recipe_json =
            serde_json::to_string(&serde_json::to_value(recipe).expect("recipe serialises")).expect("json");
        for replica in 0..recipe.replicas {
            let key = key_of(&["views", samples_key, &recipe_json, &replica.to_string(), &plan.file.seed.to_string()]);
            let path = format!("views/part-{}-r{replica}-{}.parquet", recipe.name, short(&key));
            parts.push(ViewPart { recipe: RecipeConfig { replicas: 1, ..recipe.clone() }, replica, key, path });
        }
    }
    parts
}

fn teacher_targets(plan: &Plan, samples_key: &str) -> Result<Vec<TeacherTarget>, BuildError> {
    plan.file
        .teachers
        .iter()
        .map(|config| {
            // Storing features or not does not change the teacher: its key leaves them out.
            let mut value = serde_json::to_value(config).expect("teacher serialises");
            if let Some(object) = value.as_object_mut() {
                object.remove("embeddings");
            }
            let config_json = serde_json::to_string(&value).expect("json");
            let key = match config {
                TeacherConfig::Builtin { .. } => {
                    key_of(&["teacher", samples_key, &config_json, &plan.file.seed.to_string()])
                }
                TeacherConfig::Torchscript { path, .. } => {
                    let (_, sha) = writer::file_digest(path)?;
                    key_of(&["teacher", &config_json, &sha])
                }
            };
            Ok(TeacherTarget { config: config.clone(), key })
        })
        .collect()
}

fn logits_parts(teachers: &[TeacherTarget], views: &[ViewPart]) -> Vec<LogitsPart> {
    let mut parts = Vec::new();
    for (t, teacher) in teachers.iter().enumerate() {
        for (v, view) in views.iter().enumerate() {
            // A teacher's partitioned tables: <table>/teacher=<name>/part-<recipe>-r<replica>-<key>.parquet
            let path = |table: &str, key: &str| {
                let (name, recipe, replica) = (teacher.config.name(), &view.recipe.name, view.replica);
                format!("{table}/teacher={name}/part-{recipe}-r{replica}-{}.parquet", short(key))
            };
            let key = key_of(&["logits", &teacher.key, &view.key]);
            let embeddings = teacher.config.embeddings().map(|dtype| {
                let embeddings_key = key_of(&["embeddings", &key, dtype.as_str()]);
                (embeddings_key.clone(), path(c::EMBEDDINGS, &embeddings_key))
            });
            let path = path(c::LOGITS, &key);
            parts.push(LogitsPart { teacher: t, view: v, key, path, embeddings });
        }
    }
    parts
}

/// The current manifest reduced to what the plan still names, with the plan's pipeline recorded.
fn next_manifest(
    plan: &Plan,
    current: Option<&Manifest>,
    samples_key: &str,
    views: &[ViewPart],
    teachers: &[TeacherTarget],
    logits: &[LogitsPart],
) -> Manifest {
    let mut manifest = current.cloned().unwrap_or_else(|| Manifest {
        format: "kdstore".into(),
        schema_version: SCHEMA_VERSION,
        dataset: DatasetInfo { samples_key: samples_key.into(), ..Default::default() },
        ..Default::default()
    });
    let keys: HashSet<&str> = views
        .iter()
        .map(|p| p.key.as_str())
        .chain(logits.iter().map(|p| p.key.as_str()))
        .chain(logits.iter().filter_map(|p| p.embeddings.as_ref().map(|(key, _)| key.as_str())))
        .chain([samples_key])
        .collect();
    manifest.files.retain(|f| keys.contains(f.key.as_str()));
    manifest.teachers.retain(|t| teachers.iter().any(|target| target.config.name() == t.name && target.key == t.key));
    manifest.pipeline = plan.resolved();
    manifest.pipeline_hash = plan.pipeline_hash.clone();
    manifest.seed = plan.file.seed;
    manifest.tool_version = env!("CARGO_PKG_VERSION").into();
    manifest
}

fn same_content(a: &Manifest, b: &Manifest) -> bool {
    a.files == b.files
        && a.teachers == b.teachers
        && a.pipeline_hash == b.pipeline_hash
        && a.tool_version == b.tool_version
}

fn write_samples(
    plan: &Plan,
    root: &Path,
    samples_key: &str,
    manifest: &mut Manifest,
) -> Result<SampleTable, BuildError> {
    let prepared = prepare(&plan.file, &plan.path)?;
    let dataset = &prepared.dataset;
    let rows = SampleRows {
        splits: &prepared.splits,
        labels: &dataset.labels,
        groups: dataset.groups.as_deref(),
        inputs: &dataset.inputs,
        sample_shape: &dataset.sample_shape,
    };
    let mut frame = writer::samples_frame(&rows).map_err(|e| parquet_error(root, c::SAMPLES, e))?;
    let path = format!("samples/part-{}.parquet", short(samples_key));
    let file = writer::write_parquet(root, &path, c::SAMPLES, samples_key, &mut frame)?;
    manifest.files.push(file);
    let mut split_counts = BTreeMap::new();
    for split in &prepared.splits {
        *split_counts.entry(split.as_str().to_string()).or_insert(0) += 1;
    }
    manifest.dataset = DatasetInfo {
        samples_key: samples_key.into(),
        sample_shape: dataset.sample_shape.clone(),
        class_names: dataset.class_names.clone(),
        split_counts,
        split_rule: prepared.split_rule.clone(),
        normalization: prepared.normalization.clone(),
    };
    Ok(SampleTable {
        splits: prepared.splits,
        labels: prepared.dataset.labels,
        groups: prepared.dataset.groups.map_or_else(
            || vec![None; rows_len(&prepared.dataset.inputs, &prepared.dataset.sample_shape)],
            |g| g.into_iter().map(Some).collect(),
        ),
        sample_len: prepared.dataset.sample_shape.iter().product(),
        inputs: prepared.dataset.inputs,
        sample_shape: prepared.dataset.sample_shape,
    })
}

fn rows_len(inputs: &[f32], shape: &[usize]) -> usize {
    inputs.len() / shape.iter().product::<usize>().max(1)
}

/// What rendering needs: the samples, the training pool for mixing partners and the normaliser.
pub struct Context<'a> {
    pub samples: &'a SampleTable,
    pub pool: Vec<i64>,
    pub normalizer: Normalizer,
    pub class_names: Vec<String>,
    pub class_count: usize,
}

impl<'a> Context<'a> {
    pub fn new(samples: &'a SampleTable, manifest: &Manifest) -> Context<'a> {
        let normalization = &manifest.dataset.normalization;
        Context {
            samples,
            pool: samples.ids_in(Split::Train).into_iter().map(|i| i as i64).collect(),
            normalizer: Normalizer { mean: normalization.mean.clone(), std: normalization.std.clone() },
            class_names: manifest.dataset.class_names.clone(),
            class_count: manifest.dataset.class_names.len(),
        }
    }

    /// Renders a view of a sample, in raw units (see `render_view`).
    pub fn render(&self, ops: &[OpConfig], seed: u64, sample_id: i64) -> RenderedView {
        render_view(ops, seed, sample_id, &self.samples.sample_shape, self)
    }
}

impl MixSource for Context<'_> {
    fn partner_pool(&self) -> &[i64] {
        &self.pool
    }
    fn raw_input(&self, sample_id: i64) -> &[f32] {
        self.samples.input(sample_id as usize)
    }
}

/// Work on one chunk of rows, with a worker's own state.
type ChunkWork<'a, W, T> = dyn Fn(&mut W, Range<usize>) -> Result<Vec<T>, BuildError> + Sync + 'a;

/// Runs `work` over fixed chunks of `0..items` on up to `threads` threads, each with its own
/// state made by `init`, and returns the outputs in order.
pub(crate) fn parallel_chunks<W, T: Send>(
    items: usize,
    threads: usize,
    task: &dyn Task,
    init: &(dyn Fn() -> Result<W, BuildError> + Sync),
    work: &ChunkWork<'_, W, T>,
) -> Result<Vec<T>, BuildError> {
    let chunks = items.div_ceil(CHUNK);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Vec<T>>>> = Mutex::new((0..chunks).map(|_| None).collect());
    let first_error: Mutex<Option<BuildError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, chunks.max(1)) {
            scope.spawn(|| {
                let fail = |e: BuildError| {
                    failed.store(true, Ordering::SeqCst);
                    first_error.lock().unwrap().get_or_insert(e);
                };
                let mut state = match init() {
                    Ok(state) => state,
                    Err(e) => return fail(e),
                };
                loop {
                    let chunk = next.fetch_add(1, Ordering::SeqCst);
                    if chunk >= chunks || failed.load(Ordering::SeqCst) {
                        return;
                    }
                    let range = chunk * CHUNK..((chunk + 1) * CHUNK).min(items);
                    let len = range.len() as u64;
                    match work(&mut state, range) {
                        Ok(out) => results.lock().unwrap()[chunk] = Some(out),
                        Err(e) => return fail(e),
                    }
                    task.advance(len);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(results.into_inner().unwrap().into_iter().flat_map(|r| r.expect("every chunk ran")).collect())
}

fn render_views(
    plan: &Plan,
    part: &ViewPart,
    context: &Context,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Vec<ViewRow>, BuildError> {
    let samples = context.samples;
    let ids: Vec<i64> =
        (0..samples.len()).filter(|&i| part.recipe.splits.contains(&samples.splits[i])).map(|i| i as i64).collect();
    let task = progress.task(&format!("views {} r{}", part.recipe.name, part.replica), ids.len() as u64);
    let recipe = &part.recipe;
    let rows = parallel_chunks(ids.len(), threads, task.as_ref(), &|| Ok(()), &|_, range| {
        Ok(ids[range]
            .iter()
            .map(|&sample_id| {
                let seed = seed::view_seed(plan.file.seed, sample_id, &recipe.name, part.replica);
                let view = context.render(&recipe.ops, seed, sample_id);
                ViewRow {
                    view_id: seed::view_id(sample_id, &recipe.name, part.replica),
                    sample_id,
                    recipe: recipe.name.clone(),
                    replica: part.replica,
                    seed,
                    partner_id: view.mix.map(|m| m.partner_id),
                    lam: view.mix.map(|m| m.lam),
                    params: view.params,
                    input_hash: view.input_hash,
                }
            })
            .collect())
    })?;
    task.finish();
    Ok(rows)
}

fn prepare_teacher(
    plan: &Plan,
    root: &Path,
    target: &TeacherTarget,
    context: &Context,
    progress: &dyn Progress,
) -> Result<TeacherInfo, BuildError> {
    let samples = context.samples;
    let name = target.config.name().to_string();
    let base = TeacherInfo {
        name: name.clone(),
        key: target.key.clone(),
        kind: String::new(),
        architecture: String::new(),
        model_path: String::new(),
        model_sha256: String::new(),
        label_space: context.class_names.clone(),
        input_layout: input_layout(&samples.sample_shape),
        logits_dtype: target.config.logits_dtype().as_str().into(),
        arch_spec: serde_json::Value::Null,
        accuracy: BTreeMap::new(),
        training: serde_json::Value::Null,
    };
    match &target.config {
        TeacherConfig::Torchscript { path, .. } => {
            let (_, sha) = writer::file_digest(path)?;
            Ok(TeacherInfo {
                kind: "torchscript".into(),
                architecture: "torchscript".into(),
                model_path: path.display().to_string(),
                model_sha256: sha,
                ..base
            })
        }
        TeacherConfig::Builtin { arch, width, depth, epochs, batch_size, learning_rate, weight_decay, .. } => {
            let spec = ArchSpec {
                kind: *arch,
                width: *width,
                depth: *depth,
                input_shape: samples.sample_shape.iter().map(|&d| d as i64).collect(),
                classes: context.class_count as i64,
            };
            spec.check().map_err(|detail| BuildError::TeacherSetup { teacher: name.clone(), detail })?;
            let train_ids = samples.ids_in(Split::Train);
            let mut inputs = Vec::with_capacity(train_ids.len() * samples.sample_len);
            let mut labels = Vec::with_capacity(train_ids.len());
            for &i in &train_ids {
                let mut x = samples.input(i).to_vec();
                context.normalizer.apply(&mut x);
                inputs.extend_from_slice(&x);
                labels.push(samples.labels[i]);
            }
            let settings = builtin::TeacherTraining {
                epochs: *epochs,
                batch_size: *batch_size,
                learning_rate: *learning_rate,
                weight_decay: *weight_decay,
                seed: seed::purpose_seed(plan.file.seed, &format!("teacher/{name}")),
            };
            let task = progress.task(&format!("train teacher {name}"), *epochs as u64);
            let (vs, records) = builtin::train(&spec, &inputs, &labels, &settings, &mut |record| {
                task.set_message(&format!("loss {:.4} acc {:.3}", record.train_loss, record.train_accuracy));
                task.advance(1);
            })
            .map_err(|source| BuildError::Training { teacher: name.clone(), source: Box::new(source) })?;
            task.finish();
            let relative = format!("models/{name}-{}.safetensors", short(&target.key));
            let final_path = root.join(&relative);
            let dir = final_path.parent().unwrap().to_path_buf();
            std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io { path: dir.clone(), source })?;
            let tmp = dir.join(format!(".{name}-{}.tmp.safetensors", std::process::id()));
            vs.save(&tmp).map_err(|source| BuildError::Training { teacher: name.clone(), source: Box::new(source) })?;
            std::fs::rename(&tmp, &final_path).map_err(|source| BuildError::Io { path: final_path.clone(), source })?;
            let (_, sha) = writer::file_digest(&final_path)?;
            Ok(TeacherInfo {
                kind: "builtin".into(),
                architecture: spec.describe(),
                model_path: relative,
                model_sha256: sha,
                arch_spec: serde_json::to_value(&spec).expect("spec serialises"),
                training: serde_json::json!({
                    "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                    "weight_decay": weight_decay, "optimizer": "adam", "data": "train split, identity views",
                    "history": records,
                }),
                ..base
            })
        }
    }
}

fn input_layout(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let names = if shape.len() == 2 { "channels × time" } else { "channels × height × width" };
    format!("float32 [batch, {}] ({names}), normalised per channel with the manifest's mean and std", dims.join(", "))
}

/// Loads a teacher as a classifier for inference on `device`.
pub fn load_classifier(root: &Path, info: &TeacherInfo, device: tch::Device) -> Result<Classifier, BuildError> {
    let teacher_error = |source| BuildError::Teacher { teacher: info.name.clone(), source: Box::new(source) };
    if info.kind == "builtin" {
        let spec: ArchSpec = serde_json::from_value(info.arch_spec.clone()).map_err(|e| BuildError::TeacherSetup {
            teacher: info.name.clone(),
            detail: format!("bad arch_spec in the manifest: {e}"),
        })?;
        Classifier::load_builtin(&info.name, &spec, &root.join(&info.model_path), device).map_err(teacher_error)
    } else {
        Classifier::load_torchscript(&info.name, Path::new(&info.model_path), device).map_err(teacher_error)
    }
}

/// The labelling stage for one views part: replay each view from its seed, check it against its
/// stored hash, run the teacher on fixed chunks and compute the per-row statistics; with
/// `with_features`, also each view's penultimate features (otherwise the feature lists are empty).
#[allow(clippy::too_many_arguments)]
pub(crate) fn label_views(
    root: &Path,
    info: &TeacherInfo,
    ops: &[OpConfig],
    label: &str,
    views: &[ViewRow],
    context: &Context,
    threads: usize,
    with_features: bool,
    progress: &dyn Progress,
) -> Result<Vec<(LogitsRow, Vec<f32>)>, BuildError> {
    let samples = context.samples;
    let task = progress.task(label, views.len() as u64);
    let rows = parallel_chunks(
        views.len(),
        threads,
        task.as_ref(),
        &|| load_classifier(root, info, tch::Device::Cpu),
        &|classifier, range| {
            let chunk = &views[range];
            let mut inputs = Vec::with_capacity(chunk.len() * samples.sample_len);
            for view in chunk {
                let mut rendered = context.render(ops, view.seed, view.sample_id);
                if rendered.input_hash != view.input_hash {
                    return Err(BuildError::Replay {
                        teacher: info.name.clone(),
                        view_id: view.view_id,
                        recipe: view.recipe.clone(),
                        stored: view.input_hash,
                        replayed: rendered.input_hash,
                    });
                }
                context.normalizer.apply(&mut rendered.input);
                inputs.extend_from_slice(&rendered.input);
            }
            let inference = classifier
                .infer(&inputs, &samples.sample_shape, tch::Device::Cpu, with_features)
                .map_err(|source| BuildError::Teacher { teacher: info.name.clone(), source: Box::new(source) })?;
            let (flat, classes) = (inference.logits, inference.classes);
            let dim = inference.feature_dim.max(1);
            let mut features = inference.features.chunks(dim).map(<[f32]>::to_vec);
            if classes != context.class_count {
                return Err(BuildError::LabelSpace {
                    teacher: info.name.clone(),
                    got: classes,
                    expected: context.class_count,
                });
            }
            Ok(chunk
                .iter()
                .zip(flat.chunks(classes))
                .map(|(view, logits)| {
                    let label = samples.labels[view.sample_id as usize];
                    let mix =
                        view.partner_id.zip(view.lam).map(|(partner, lam)| (samples.labels[partner as usize], lam));
                    let row = logits_row(view.view_id, logits.to_vec(), ViewTarget { label, mix });
                    (row, features.next().unwrap_or_default())
                })
                .collect())
        },
    )?;
    task.finish();
    Ok(rows)
}

fn split_accuracy(views: &[ViewRow], rows: &[LogitsRow], samples: &SampleTable) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (view, row) in views.iter().zip(rows) {
        let entry = counts.entry(samples.splits[view.sample_id as usize].as_str().to_string()).or_default();
        entry.0 += usize::from(row.teacher_correct);
        entry.1 += 1;
    }
    counts.into_iter().map(|(split, (correct, total))| (split, correct as f64 / total as f64)).collect()
}
