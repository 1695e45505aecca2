//! From a pipeline file to a validated [`Plan`]: parse strictly, then check everything at once and
//! report every problem with its location. The plan is the only thing the executor accepts.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::config::*;
use crate::augment::OpConfig;
use crate::source::image_folder::ImageSize;
use crate::store::Split;

/// The implicit recipe every sample gets: the un-augmented input.
pub const IDENTITY: &str = "identity";

/// A pipeline or study file that cannot be used: unreadable, not of its file's shape, or with
/// problems (all of them at once).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {kind} {path}: {source}")]
    Read {
        /// "pipeline" or "study".
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{}", Problems(.path, .problems))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

/// Every problem of a file, one per line under a count.
struct Problems<'a>(pub &'a Path, pub &'a [String]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.1.len();
        write!(f, "{}: {count} problem{}", self.0.display(), if count == 1 { "" } else { "s" })?;
        for problem in self.1 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// A validated pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    pub file: PipelineFile,
    /// The recipes to build: `identity` (every split) first, then the file's recipes.
    pub recipes: Vec<RecipeConfig>,
    /// Hash of the resolved pipeline (defaults filled in).
    pub pipeline_hash: String,
}

impl Plan {
    /// The resolved pipeline as JSON (recorded in the manifest).
    pub fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(&self.file).expect("pipeline serialises")
    }
}

/// The recipes a store was built with (from its manifest's resolved pipeline), plus `identity`:
/// what replaying its views needs.
pub fn manifest_recipes(manifest: &crate::store::Manifest) -> Result<BTreeMap<String, Vec<OpConfig>>, String> {
    let recipes: Vec<RecipeConfig> = match manifest.pipeline.get("recipe") {
        Some(value) => {
            serde_json::from_value(value.clone()).map_err(|e| format!("the manifest's recipes cannot be read: {e}"))?
        }
        None => Vec::new(),
    };
    let mut map: BTreeMap<String, Vec<OpConfig>> = recipes.into_iter().map(|r| (r.name, r.ops)).collect();
    map.insert(IDENTITY.into(), Vec::new());
    Ok(map)
}

/// Reads, parses and validates a pipeline file.
pub fn load(path: &Path) -> Result<Plan, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        kind: "pipeline",
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates pipeline text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Plan, FileError> {
    let file: PipelineFile = toml::from_str(text)
        .map_err(|e| FileError::Parse { path: path.to_path_buf(), message: e.to_string().trim_end().to_string() })?;
    let problems = validate(&file);
    if !problems.is_empty() {
        return Err(FileError::Invalid { path: path.to_path_buf(), problems });
    }
    let mut recipes = vec![RecipeConfig {
        name: IDENTITY.into(),
        replicas: 1,
        replicas_per_part: 1,
        splits: Split::ALL.to_vec(),
        ops: Vec::new(),
    }];
    recipes.extend(file.recipes.iter().cloned());
    let canonical = serde_json::to_string(&serde_json::to_value(&file).expect("pipeline serialises")).expect("json");
    let pipeline_hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(canonical.as_bytes()));
    Ok(Plan { path: path.to_path_buf(), file, recipes, pipeline_hash })
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_file(problems: &mut Vec<String>, location: &str, path: &Path) {
    if !path.is_file() {
        problems.push(format!("{location}: file {} does not exist", path.display()));
    }
}

fn check_fraction(problems: &mut Vec<String>, location: &str, value: f64) {
    if !(0.0..1.0).contains(&value) {
        problems.push(format!("{location}: must be in [0, 1), got {value}"));
    }
}

/// Every problem in the file, each with its location.
pub fn validate(file: &PipelineFile) -> Vec<String> {
    let mut problems = Vec::new();
    if file.version != PIPELINE_VERSION {
        problems.push(format!("version: this kdstore reads pipeline version {PIPELINE_VERSION}, got {}", file.version));
    }
    if !valid_name(&file.name) {
        problems.push(format!("name: '{}' must be 1-64 letters, digits, '-' or '_'", file.name));
    }
    let (series, given_split) = match &file.source {
        SourceConfig::Hapt { path, window, step } => {
            check_file(&mut problems, "source.path", path);
            if *window < 8 {
                problems.push(format!("source.window: must be >= 8, got {window}"));
            }
            if *step == 0 {
                problems.push("source.step: must be > 0".into());
            }
            (Some(true), false)
        }
        SourceConfig::Idx { train_images, train_labels, test_images, test_labels, class_names } => {
            for (location, path) in [
                ("source.train_images", train_images),
                ("source.train_labels", train_labels),
                ("source.test_images", test_images),
                ("source.test_labels", test_labels),
            ] {
                check_file(&mut problems, location, path);
            }
            if let Some(ClassNames::Preset(preset)) = class_names {
                if preset != "fashion-mnist" {
                    problems.push(format!("source.class_names: unknown preset '{preset}' (known: fashion-mnist)"));
                }
            }
            (Some(false), true)
        }
        SourceConfig::Ts { train, test, .. } => {
            check_file(&mut problems, "source.train", train);
            check_file(&mut problems, "source.test", test);
            (Some(true), true)
        }
        SourceConfig::Npy { inputs, labels, groups, layout, .. } => {
            check_file(&mut problems, "source.inputs", inputs);
            check_file(&mut problems, "source.labels", labels);
            if let Some(groups) = groups {
                check_file(&mut problems, "source.groups", groups);
            } else if !file.split.test_groups.is_empty() {
                problems.push("split.test_groups: the npy source has no `groups` file to split by".into());
            }
            (Some(*layout == NpyLayoutConfig::Series), false)
        }
        SourceConfig::ImageFolder { root, resize, center_crop, .. } => {
            if !root.is_dir() {
                problems.push(format!("source.root: folder {} does not exist", root.display()));
            }
            for (location, size) in [("source.resize", resize), ("source.center_crop", center_crop)] {
                let sides = match size {
                    Some(ImageSize::Side(side)) => vec![*side],
                    Some(ImageSize::HeightWidth(sides)) => sides.to_vec(),
                    None => vec![],
                };
                if sides.contains(&0) {
                    problems.push(format!("{location}: sizes must be >= 1"));
                }
            }
            (Some(false), root.join("test").is_dir())
        }
    };
    if given_split && !file.split.test_groups.is_empty() {
        problems.push("split.test_groups: this source has its own train/test split; remove test_groups".into());
    }
    check_fraction(&mut problems, "split.test_fraction", file.split.test_fraction);
    check_fraction(&mut problems, "split.val_fraction", file.split.val_fraction);

    let mut recipe_names = HashSet::new();
    for (index, recipe) in file.recipes.iter().enumerate() {
        let location = format!("recipe {} ('{}')", index + 1, recipe.name);
        if !valid_name(&recipe.name) {
            problems.push(format!("{location}: name must be 1-64 letters, digits, '-' or '_'"));
        } else if recipe.name == IDENTITY {
            problems.push(format!(
                "{location}: '{IDENTITY}' is built in (every sample gets an identity view); pick another name"
            ));
        } else if !recipe_names.insert(recipe.name.clone()) {
            problems.push(format!("{location}: a recipe with this name already exists"));
        }
        if recipe.replicas_per_part == 0 {
            problems.push(format!("{location}: replicas_per_part must be >= 1"));
        }
        if recipe.replicas == 0 {
            problems.push(format!("{location}: replicas must be >= 1"));
        }
        if recipe.splits.is_empty() {
            problems.push(format!("{location}: splits must name at least one of train, val, test"));
        }
        if recipe.ops.is_empty() {
            problems.push(format!("{location}: ops is empty (the identity view already exists)"));
        }
        if recipe.ops.iter().filter(|op| op.is_mix()).count() > 1 {
            problems.push(format!("{location}: at most one mixing op (mixup, cutmix) per recipe"));
        }
        let mut op_names = HashSet::new();
        for op in &recipe.ops {
            if !op_names.insert(op.name()) {
                problems.push(format!(
                    "{location}: op {} appears twice; each op may appear once per recipe (its draws have one set of columns in `views`)",
                    op.name()
                ));
            }
        }
        for (op_index, op) in recipe.ops.iter().enumerate() {
            for problem in op.validate() {
                problems.push(format!("{location}: op {} ({}): {problem}", op_index + 1, op.name()));
            }
        }
    }

    let channels = match &file.source {
        SourceConfig::Hapt { .. } => Some(6),
        SourceConfig::Idx { .. } => Some(1),
        SourceConfig::ImageFolder { color, .. } => Some(color.channels()),
        SourceConfig::Ts { .. } | SourceConfig::Npy { .. } => None,
    };
    super::teachers::check(file, series, channels, &mut problems);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = 1
name = "tiny"
seed = 1
store = "runs/tiny"
[source]
kind = "ts"
train = "Cargo.toml"
test = "Cargo.toml"
[[recipe]]
name = "jit"
replicas = 2
ops = [{ op = "jitter", sigma = 0.1 }]
[[teacher]]
kind = "builtin"
name = "t"
arch = "cnn1d"
"#;

    #[test]
    fn a_good_pipeline_resolves_defaults_and_adds_identity() {
        let plan = parse(Path::new("good.toml"), GOOD).unwrap();
        assert_eq!(plan.recipes[0].name, IDENTITY);
        assert_eq!(plan.recipes[1].splits, vec![Split::Train]);
        assert_eq!(plan.file.split.val_fraction, 0.15);
        assert_eq!(plan.pipeline_hash.len(), 32);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let text = GOOD.replace("replicas = 2", "replicas = 2\ncolour = 3");
        let err = parse(Path::new("p.toml"), &text).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
        assert!(err.contains("line 13"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = GOOD
            .replace("sigma = 0.1", "sigma = -1")
            .replace("replicas = 2", "replicas = 0")
            .replace("arch = \"cnn1d\"", "arch = \"cnn2d\"\nepochs = 0")
            .replace("train = \"Cargo.toml\"", "train = \"missing.ts\"");
        let err = parse(Path::new("p.toml"), &text).unwrap_err().to_string();
        for expected in [
            "p.toml: 5 problems",
            "source.train: file missing.ts does not exist",
            "recipe 1 ('jit'): replicas must be >= 1",
            "recipe 1 ('jit'): op 1 (jitter): sigma must be > 0 and at most 3.4028235e38, got -1",
            "teacher 1 ('t'): arch cnn2d needs image input",
            "teacher 1 ('t'): epochs must be >= 1",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
    }
}
