//! From a study file to a validated [`Study`]: parse strictly, check everything at once (every
//! problem with its location, nothing run), and resolve the cells (the grid's product minus the
//! exclusions, plus the extra cells) and the runs (cells × seeds, seed-major so that an early report
//! covers every cell). Each cell's settings are resolved by train's own parser ([`Trainer`]); a
//! cell's id is a hash of that resolved configuration (seed, threads and device left out) and of
//! the store's pipeline and version, and a run's id adds the seed, so a changed configuration is a
//! new run in a new folder, never a silently reused one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::file::{canonical_key, flatten, setting_args, Setting, StudyFile, RESERVED};
use super::{Resolved, StudyError, Trainer};
use crate::pipeline::FileError;
use crate::store::Store;

/// A validated study.
#[derive(Debug, Clone)]
pub struct Study {
    pub path: PathBuf,
    pub file: StudyFile,
    pub store: Store,
    /// The varied keys, as the study file names them: the grid's axes, then the extra cells' keys.
    pub axes: Vec<String>,
    pub cells: Vec<Cell>,
    pub baseline: Option<usize>,
    /// Seed-major: every cell's first seed, then every cell's second, …
    pub runs: Vec<Run>,
}

#[derive(Debug, Clone)]
pub struct Cell {
    /// 32 hex digits: the resolved configuration without the seed, and the store's version.
    pub id: String,
    /// `key=value` of the varied keys this cell has, in the order of [`Study::axes`].
    pub label: String,
    /// The cell's value of each varied key, as written (a named value's name).
    pub coordinates: BTreeMap<String, Setting>,
    /// `kdstore train` arguments after the store (no seed, output folder, threads or device).
    pub args: Vec<String>,
    /// The folder under `runs/`: the label made safe for file names, and the id's first 8 digits.
    pub folder: String,
}

#[derive(Debug, Clone)]
pub struct Run {
    /// 32 hex digits: the cell's id and the seed.
    pub id: String,
    pub cell: usize,
    pub seed: u64,
}

impl Study {
    pub fn out(&self) -> &Path {
        &self.file.study.out
    }

    pub fn run_dir(&self, run: &Run) -> PathBuf {
        self.out().join("runs").join(&self.cells[run.cell].folder).join(format!("seed-{}", run.seed))
    }

    pub fn title(&self) -> String {
        self.file
            .study
            .title
            .clone()
            .unwrap_or_else(|| self.path.file_stem().map_or("study".into(), |stem| stem.to_string_lossy().to_string()))
    }

    /// The `kdstore train` command line of a cell for one seed, as a user would type it.
    pub fn command(&self, cell: &Cell, seed: u64) -> String {
        let mut words = vec!["kdstore".to_string(), "train".into(), self.file.study.store.display().to_string()];
        words.extend(["--at-version".into(), self.store.manifest.version.to_string()]);
        words.extend(cell.args.iter().cloned());
        words.extend(["--seed".into(), seed.to_string()]);
        words.iter().map(|word| shell_quote(word)).collect::<Vec<_>>().join(" ")
    }
}

fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=+,:".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Reads, parses and validates a study file against the store it names.
pub fn load(path: &Path, trainer: &dyn Trainer) -> Result<Study, StudyError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        kind: "study",
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text, trainer)
}

/// Parses and validates study text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str, trainer: &dyn Trainer) -> Result<Study, StudyError> {
    let file: StudyFile = toml::from_str(text)
        .map_err(|e| FileError::Parse { path: path.to_path_buf(), message: e.to_string().trim_end().to_string() })?;
    let mut problems = Problems::default();
    let section = &file.study;
    if section.seeds.is_empty() {
        problems.push("study.seeds: name at least one seed".into());
    }
    let mut seen = section.seeds.clone();
    seen.sort_unstable();
    if seen.windows(2).any(|pair| pair[0] == pair[1]) {
        problems.push("study.seeds: a seed is listed twice".into());
    }
    if section.max_attempts == 0 {
        problems.push("study.max_attempts: must be >= 1".into());
    }
    let store = match Store::open_at(&section.store, section.store_version) {
        Ok(store) => Some(store),
        Err(e) => {
            problems.push(format!("study.store: {e}"));
            None
        }
    };
    let known: Vec<String> = trainer.known_settings();
    let check_key = |problems: &mut Problems, location: &str, key: &str| -> bool {
        let key = canonical_key(key);
        if RESERVED.contains(&key.as_str()) {
            problems.push(format!("{location}: the study sets `{key}` itself (seeds in study.seeds, the rest are flags of `kdstore study`)"));
            false
        } else if key.starts_with("set.") || known.contains(&key) {
            true
        } else {
            problems.push(format!("{location}: not a `kdstore train` setting"));
            false
        }
    };

    let base = flatten(&file.base);
    for key in base.keys() {
        check_key(&mut problems, &format!("base.{key}"), key);
    }
    let values: BTreeMap<String, BTreeMap<String, Setting>> = file.values.clone();
    let expand = |problems: &mut Problems, location: &str, axis: &str, value: &Setting| -> Vec<(String, Setting)> {
        // A named value is found by its name, or by a number's text (`[values.T] "4" = {…}`).
        let named = match value {
            Setting::Text(_) | Setting::Integer(_) | Setting::Float(_) => {
                values.get(axis).and_then(|named| named.get(&value.to_string()))
            }
            _ => None,
        };
        match named.unwrap_or(value) {
            Setting::Table(bundle) => flatten(bundle)
                .into_iter()
                .filter(|(key, _)| check_key(problems, &format!("{location} ({axis}.{key})"), key))
                .map(|(key, value)| (canonical_key(&key), value))
                .collect(),
            plain if check_key(problems, location, axis) => vec![(canonical_key(axis), plain.clone())],
            _ => Vec::new(),
        }
    };

    // The grid's product, then the extra cells.
    let grid = flatten(&file.grid);
    let mut axes: Vec<String> = Vec::new();
    let mut product: Vec<BTreeMap<String, Setting>> = vec![BTreeMap::new()];
    for (axis, listed) in &grid {
        let items = match listed {
            Setting::List(items) if !items.is_empty() => items.clone(),
            Setting::List(_) => {
                problems.push(format!("grid.{axis}: the list is empty"));
                continue;
            }
            _ => {
                problems.push(format!("grid.{axis}: must be a list of values"));
                continue;
            }
        };
        axes.push(axis.clone());
        product = product
            .iter()
            .flat_map(|partial| {
                items.iter().map(move |item| {
                    let mut next = partial.clone();
                    next.insert(axis.clone(), item.clone());
                    next
                })
            })
            .collect();
    }
    if axes.is_empty() {
        product.clear();
    }
    for (index, exclusion) in file.exclude.iter().enumerate() {
        let exclusion = flatten(exclusion);
        for key in exclusion.keys().filter(|key| !axes.contains(key)) {
            problems.push(format!("exclude[{index}].{key}: not an axis of [grid]"));
        }
        let before = product.len();
        product.retain(|cell| !matches(cell, &exclusion));
        if before == product.len() {
            problems.push(format!("exclude[{index}]: matches no cell of the grid"));
        }
    }
    let grid_cells = product.len();
    let mut coordinates = product;
    for extra in &file.cell {
        let extra = flatten(extra);
        for key in extra.keys() {
            if !axes.contains(key) {
                axes.push(key.clone());
            }
        }
        coordinates.push(extra);
    }
    for name in values.keys().filter(|name| !axes.contains(name)) {
        problems.push(format!("values.{name}: no axis or cell is called {name}"));
    }
    if coordinates.is_empty() {
        problems.push("the study has no cell: [grid] and [[cell]] are both empty".into());
    }

    let mut cells = Vec::new();
    for (index, coordinates) in coordinates.into_iter().enumerate() {
        let label = label(&axes, &coordinates);
        let location = match index < grid_cells {
            true => format!("grid cell {label}"),
            false => format!("cell[{}] {label}", index - grid_cells),
        };
        let mut settings = base.clone().into_iter().map(|(k, v)| (canonical_key(&k), v)).collect::<BTreeMap<_, _>>();
        for (axis, value) in &coordinates {
            for (key, value) in expand(&mut problems, &format!("{location}: {axis}"), axis, value) {
                settings.insert(key, value);
            }
        }
        let args: Vec<String> = settings.iter().flat_map(|(key, value)| setting_args(key, value)).collect();
        cells.push(Cell { id: String::new(), label, coordinates, args, folder: String::new() });
    }
    if let Some(store) = &store {
        if problems.is_empty() {
            identify(store, &mut cells, trainer, &mut problems);
        }
    }
    let baseline = match &section.baseline {
        Some(wanted) if !cells.is_empty() => pick_baseline(&cells, &flatten(wanted), &mut problems),
        _ => None,
    };
    problems.finish(path)?;
    let runs = section
        .seeds
        .iter()
        .flat_map(|&seed| cells.iter().enumerate().map(move |(cell, c)| Run { id: run_id(&c.id, seed), cell, seed }))
        .collect();
    Ok(Study { path: path.to_path_buf(), store: store.expect("no problems"), file, axes, cells, baseline, runs })
}

/// Whether every pair of `wanted` is in `cell`; a list in `wanted` matches any of its values.
fn matches(cell: &BTreeMap<String, Setting>, wanted: &BTreeMap<String, Setting>) -> bool {
    wanted.iter().all(|(key, value)| {
        cell.get(key).is_some_and(|have| match value {
            Setting::List(any_of) => any_of.iter().any(|item| have.same(item)) || have.same(value),
            one => have.same(one),
        })
    })
}

fn label(axes: &[String], coordinates: &BTreeMap<String, Setting>) -> String {
    let parts: Vec<String> =
        axes.iter().filter_map(|axis| coordinates.get(axis).map(|value| format!("{axis}={value}"))).collect();
    parts.join(",")
}

/// The label as a file name: letters, digits and `.=+,-` kept, anything else `_`, at most 80 bytes.
fn folder_name(label: &str, id: &str) -> String {
    let safe: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".=+,-".contains(c) { c } else { '_' })
        .take(80)
        .collect();
    match safe.is_empty() {
        true => format!("cell-{}", &id[..8]),
        false => format!("{safe}-{}", &id[..8]),
    }
}

fn hash(text: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

fn run_id(cell_id: &str, seed: u64) -> String {
    hash(&format!("{cell_id}/seed={seed}"))
}

/// Resolves every cell through train's parser (its problems are the study's) and gives each its id.
fn identify(store: &Store, cells: &mut [Cell], trainer: &dyn Trainer, problems: &mut Problems) {
    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    for cell in cells.iter_mut() {
        match trainer.resolve(&store.root, store.manifest.version, &cell.args) {
            Ok(Resolved { mut config, args }) => {
                cell.args = args;
                if let Some(object) = config.as_object_mut() {
                    for free in ["seed", "threads", "device"] {
                        object.remove(free);
                    }
                }
                let identity = serde_json::json!({
                    "config": config,
                    "pipeline_hash": store.manifest.pipeline_hash,
                    "store_version": store.manifest.version,
                });
                cell.id = hash(&identity.to_string());
                cell.folder = folder_name(&cell.label, &cell.id);
                if let Some(other) = by_id.insert(cell.id.clone(), cell.label.clone()) {
                    problems.push(format!("cells {other} and {} train the same configuration", cell.label));
                }
            }
            Err(message) => problems.push_for(&cell.label, message),
        }
    }
}

fn pick_baseline(cells: &[Cell], wanted: &BTreeMap<String, Setting>, problems: &mut Problems) -> Option<usize> {
    let matching: Vec<usize> = (0..cells.len()).filter(|&i| matches(&cells[i].coordinates, wanted)).collect();
    let exact: Vec<usize> = matching.iter().copied().filter(|&i| cells[i].coordinates.len() == wanted.len()).collect();
    let described = || {
        let parts: Vec<String> = wanted.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.join(",")
    };
    match (matching.as_slice(), exact.as_slice()) {
        ([one], _) | (_, [one]) => Some(*one),
        ([], _) => {
            problems.push(format!("study.baseline: {} is not a cell of the study", described()));
            None
        }
        (many, _) => {
            let labels: Vec<&str> = many.iter().map(|&i| cells[i].label.as_str()).collect();
            problems.push(format!(
                "study.baseline: {} matches {} cells ({}); name more axes",
                described(),
                many.len(),
                labels.join("; ")
            ));
            None
        }
    }
}

/// Every problem found, each once: a train error that many cells share is reported once, with the
/// cells it concerns.
#[derive(Default)]
struct Problems {
    plain: Vec<String>,
    by_message: Vec<(String, Vec<String>)>,
}

impl Problems {
    fn push(&mut self, problem: String) {
        if !self.plain.contains(&problem) {
            self.plain.push(problem);
        }
    }

    fn push_for(&mut self, cell: &str, message: String) {
        match self.by_message.iter_mut().find(|(m, _)| *m == message) {
            Some((_, cells)) => cells.push(cell.to_string()),
            None => self.by_message.push((message, vec![cell.to_string()])),
        }
    }

    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.by_message.is_empty()
    }

    fn finish(self, path: &Path) -> Result<(), StudyError> {
        if self.is_empty() {
            return Ok(());
        }
        let mut problems = self.plain;
        for (message, cells) in self.by_message {
            let cells = match cells.len() {
                1 => format!("cell {}", cells[0]),
                n => format!("{n} cells ({} …)", cells[0]),
            };
            problems.push(format!("{cells}: `kdstore train` rejects it: {message}"));
        }
        Err(FileError::Invalid { path: path.to_path_buf(), problems }.into())
    }
}
