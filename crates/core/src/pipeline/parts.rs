//! The parts a plan asks for and the keys that name them. Every part of a store — the samples, one
//! views part per (recipe, replica), each teacher, one logits (and embeddings) part per (teacher,
//! views part) — is keyed by a hash of everything its content depends on, and its file name carries
//! the key. A build compares these keys with the current manifest to find what is missing, so a
//! re-run skips finished parts and an interrupted part is simply computed again.

use std::collections::HashSet;
use std::path::Path;

use xxhash_rust::xxh3::xxh3_128;

use super::config::{RecipeConfig, TeacherConfig};
use super::plan::Plan;
use super::BuildError;
use crate::store::columns as c;
use crate::store::manifest::SCHEMA_VERSION;
use crate::store::writer;
use crate::store::{DatasetInfo, Manifest};

/// One views part: the views of one replica of one recipe, or of `count` consecutive replicas
/// (`replicas_per_part`).
#[derive(Debug, Clone)]
pub struct ViewPart {
    /// The recipe, with `replicas = 1`.
    pub recipe: RecipeConfig,
    /// The first replica.
    pub replica: u32,
    pub count: u32,
    pub key: String,
    pub path: String,
}

impl ViewPart {
    /// The part's replicas.
    pub fn replicas(&self) -> std::ops::Range<u32> {
        self.replica..self.replica + self.count
    }

    /// `replica 3`, or `replicas 0-999` (in the build's report).
    pub fn describe(&self) -> String {
        match self.count {
            1 => format!("replica {}", self.replica),
            n => format!("replicas {}-{}", self.replica, self.replica + n - 1),
        }
    }

    /// `r3`, or `r0-999` for several replicas (in file names and progress).
    pub fn label(&self) -> String {
        match self.count {
            1 => format!("r{}", self.replica),
            n => format!("r{}-{}", self.replica, self.replica + n - 1),
        }
    }
}

/// What a built-in teacher's training depends on beyond its settings; bump it when the training
/// of built-in teachers changes its results, so that stores train their teachers again.
pub const BUILTIN_TRAINING: &str = "student-trainer-1";

/// One teacher the plan stores (a `[[teacher]]` itself, one of its subsets or checkpoints), with
/// the key of its model.
#[derive(Debug, Clone)]
pub struct TeacherTarget {
    /// The `[[teacher]]` it comes from.
    pub config: TeacherConfig,
    /// Its name in the store: `NAME`, `NAME#k`, `NAME@eN`.
    pub name: String,
    pub subset: Option<usize>,
    /// The epoch its weights are taken after (a checkpoint); None for the kept weights.
    pub epoch: Option<usize>,
    pub key: String,
    /// The key of the training run that makes it: a teacher and its checkpoints share one.
    pub training_key: String,
    /// A subset teacher's `subsets` part (key, path): the training samples it learnt from.
    pub subset_part: Option<(String, String)>,
}

/// One logits part: a teacher's logits on one views part.
#[derive(Debug, Clone)]
pub struct LogitsPart {
    /// Index into the teacher targets.
    pub teacher: usize,
    /// Index into the view parts.
    pub view: usize,
    pub key: String,
    pub path: String,
    /// Key and path of the matching `embeddings` part, when the teacher stores features.
    pub embeddings: Option<(String, String)>,
}

/// Every part a plan names.
#[derive(Debug, Clone)]
pub struct Parts {
    pub views: Vec<ViewPart>,
    pub teachers: Vec<TeacherTarget>,
    pub logits: Vec<LogitsPart>,
}

impl Parts {
    /// The parts of `plan` over the samples keyed `samples_key`.
    pub fn of(plan: &Plan, samples_key: &str) -> Result<Parts, BuildError> {
        let views = view_parts(plan, samples_key);
        let teachers = teacher_targets(plan, samples_key, &views)?;
        let logits = logits_parts(&teachers, &views);
        Ok(Parts { views, teachers, logits })
    }

    pub fn view_missing(manifest: &Manifest, part: &ViewPart) -> bool {
        !manifest.files.iter().any(|f| f.table == c::VIEWS && f.key == part.key)
    }

    pub fn teacher_missing(manifest: &Manifest, target: &TeacherTarget) -> bool {
        !manifest.teachers.iter().any(|t| t.name == target.name && t.key == target.key)
    }

    pub fn subset_missing(manifest: &Manifest, target: &TeacherTarget) -> bool {
        target
            .subset_part
            .as_ref()
            .is_some_and(|(key, _)| !manifest.files.iter().any(|f| f.table == c::SUBSETS && &f.key == key))
    }

    pub fn logits_missing(manifest: &Manifest, part: &LogitsPart) -> bool {
        !manifest.files.iter().any(|f| f.table == c::LOGITS && f.key == part.key)
    }

    pub fn embeddings_missing(manifest: &Manifest, part: &LogitsPart) -> bool {
        part.embeddings
            .as_ref()
            .is_some_and(|(key, _)| !manifest.files.iter().any(|f| f.table == c::EMBEDDINGS && &f.key == key))
    }

    /// Whether `manifest` lacks any part of the plan.
    pub fn anything_missing(&self, manifest: &Manifest) -> bool {
        self.views.iter().any(|p| Parts::view_missing(manifest, p))
            || self.teachers.iter().any(|t| Parts::teacher_missing(manifest, t) || Parts::subset_missing(manifest, t))
            || self.logits.iter().any(|p| Parts::logits_missing(manifest, p) || Parts::embeddings_missing(manifest, p))
    }

    /// The current manifest reduced to what the plan still names, with the plan's pipeline recorded.
    pub fn next_manifest(&self, plan: &Plan, current: Option<&Manifest>, samples_key: &str) -> Manifest {
        let mut manifest = current.cloned().unwrap_or_else(|| Manifest {
            format: "kdstore".into(),
            schema_version: SCHEMA_VERSION,
            dataset: DatasetInfo { samples_key: samples_key.into(), ..Default::default() },
            ..Default::default()
        });
        let keys: HashSet<&str> = self
            .views
            .iter()
            .map(|p| p.key.as_str())
            .chain(self.logits.iter().map(|p| p.key.as_str()))
            .chain(self.logits.iter().filter_map(|p| p.embeddings.as_ref().map(|(key, _)| key.as_str())))
            .chain(self.teachers.iter().filter_map(|t| t.subset_part.as_ref().map(|(key, _)| key.as_str())))
            .chain([samples_key])
            .collect();
        manifest.files.retain(|f| keys.contains(f.key.as_str()));
        manifest.teachers.retain(|t| self.teachers.iter().any(|target| target.name == t.name && target.key == t.key));
        manifest.schema_version = SCHEMA_VERSION;
        manifest.pipeline = plan.resolved();
        manifest.pipeline_hash = plan.pipeline_hash.clone();
        manifest.seed = plan.file.seed;
        manifest.tool_version = env!("CARGO_PKG_VERSION").into();
        manifest
    }
}

/// A content key: the hash of the parts of a description, separated by a character no part holds.
pub fn key_of(parts: &[&str]) -> String {
    format!("{:032x}", xxh3_128(parts.join("\u{1f}").as_bytes()))
}

/// The prefix of a key that file names carry.
pub fn short(key: &str) -> &str {
    &key[..16]
}

/// Whether two manifests describe the same content (ignoring their version numbers).
pub fn same_content(a: &Manifest, b: &Manifest) -> bool {
    a.files == b.files
        && a.teachers == b.teachers
        && a.pipeline_hash == b.pipeline_hash
        && a.tool_version == b.tool_version
}

/// Deletes the temporary files (`.<name>.tmp…`) that a killed build left behind. Only call it with
/// the store's write lock held, so that no other writer can be using them.
pub fn remove_temporaries(root: &Path) {
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

fn view_parts(plan: &Plan, samples_key: &str) -> Vec<ViewPart> {
    let mut parts = Vec::new();
    for recipe in &plan.recipes {
        let recipe_json =
            serde_json::to_string(&serde_json::to_value(recipe).expect("recipe serialises")).expect("json");
        let per_part = recipe.replicas_per_part.max(1);
        for replica in (0..recipe.replicas).step_by(per_part as usize) {
            let count = per_part.min(recipe.replicas - replica);
            let mut identity = vec!["views", samples_key, &recipe_json];
            let (first, seed) = (replica.to_string(), plan.file.seed.to_string());
            identity.extend([first.as_str(), seed.as_str()]);
            let key = key_of(&identity);
            let recipe = RecipeConfig { replicas: 1, replicas_per_part: 1, ..recipe.clone() };
            let mut part = ViewPart { recipe, replica, count, key, path: String::new() };
            part.path = format!("views/part-{}-{}-{}.parquet", part.recipe.name, part.label(), short(&part.key));
            parts.push(part);
        }
    }
    parts
}

/// The teachers in training order (each after the one it distils from), each `[[teacher]]`'s
/// subsets and checkpoints in the order it makes them.
fn teacher_targets(plan: &Plan, samples_key: &str, views: &[ViewPart]) -> Result<Vec<TeacherTarget>, BuildError> {
    let order = super::teachers::training_order(&plan.file.teachers)
        .map_err(|detail| BuildError::TeacherSetup { teacher: "distill_from".into(), detail })?;
    let mut targets: Vec<TeacherTarget> = Vec::new();
    for index in order {
        let config = &plan.file.teachers[index];
        // Storing features or more checkpoints does not change how the teacher trains.
        let mut value = serde_json::to_value(config).expect("teacher serialises");
        if let Some(object) = value.as_object_mut() {
            object.remove("embeddings");
            object.remove("checkpoints");
        }
        let config_json = serde_json::to_string(&value).expect("json");
        let training_keys: Vec<String> = match config {
            TeacherConfig::Builtin { distill_from, augment, subsets, .. } => {
                let source = distill_from
                    .as_deref()
                    .map(|source| targets.iter().find(|t| t.name == source).map_or(String::new(), |t| t.key.clone()));
                let train_views: Vec<&str> = views
                    .iter()
                    .filter(|v| *augment && v.recipe.splits.contains(&crate::store::Split::Train))
                    .map(|v| v.key.as_str())
                    .collect();
                let base = key_of(&[
                    "teacher",
                    BUILTIN_TRAINING,
                    samples_key,
                    &config_json,
                    &plan.file.seed.to_string(),
                    source.as_deref().unwrap_or(""),
                    &train_views.join(","),
                ]);
                match subsets {
                    Some(subsets) => (0..subsets.count).map(|k| key_of(&[&base, "subset", &k.to_string()])).collect(),
                    None => vec![base],
                }
            }
            TeacherConfig::Torchscript { path, .. } => {
                let (_, sha) = writer::file_digest(path)?;
                vec![key_of(&["teacher", &config_json, &sha])]
            }
        };
        for produced in config.produced() {
            let training_key = training_keys[produced.subset.unwrap_or(0)].clone();
            let key = match produced.epoch {
                Some(epoch) => key_of(&[&training_key, "checkpoint", &epoch.to_string()]),
                None => training_key.clone(),
            };
            let subset_part = produced.subset.map(|_| {
                let subset_key = key_of(&["subsets", &key]);
                let path = format!("{}/teacher={}/part-{}.parquet", c::SUBSETS, produced.name, short(&subset_key));
                (subset_key, path)
            });
            targets.push(TeacherTarget {
                config: config.clone(),
                subset_part,
                name: produced.name,
                subset: produced.subset,
                epoch: produced.epoch,
                key,
                training_key,
            });
        }
    }
    Ok(targets)
}

fn logits_parts(teachers: &[TeacherTarget], views: &[ViewPart]) -> Vec<LogitsPart> {
    let mut parts = Vec::new();
    for (t, teacher) in teachers.iter().enumerate() {
        for (v, view) in views.iter().enumerate() {
            // A teacher's partitioned tables: <table>/teacher=<name>/part-<recipe>-r<replica>-<key>.parquet
            let path = |table: &str, key: &str| {
                let (name, recipe, replicas) = (&teacher.name, &view.recipe.name, view.label());
                format!("{table}/teacher={name}/part-{recipe}-{replicas}-{}.parquet", short(key))
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
