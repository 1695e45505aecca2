//! The parsers under test and the real inputs they start from: pipeline TOML (parsed, validated, and
//! every recipe rendered on real samples), the four dataset formats (through the samples stage a
//! build runs: read, check, split, normalise), manifests and the store's Parquet files (through
//! every read a command makes). Seeds are cut from the real files that `make data` installs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kdstore_core::augment::{render_view, MixSource};
use kdstore_core::pipeline::plan::{self, Plan};
use kdstore_core::pipeline::samples::prepare;
use kdstore_core::pipeline::views::check_recipes;
use kdstore_core::pipeline::BuildError;
use kdstore_core::store::{self, columns as c, integrity, manifest, Store};

use crate::harness::{Outcome, Seed, Target};
use crate::mutate::Rng;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data(path: &str) -> PathBuf {
    repo().join("data").join(path)
}

fn read_gz(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("the dataset is installed (make data)"))
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("kdstore-fuzz-").tempdir().unwrap()
}

/// A repository pipeline whose `[source]` block is replaced by `source` (and whose store is in `dir`).
fn pipeline_with_source(name: &str, source: &str, dir: &Path) -> Plan {
    let text = std::fs::read_to_string(repo().join("pipelines").join(name)).unwrap();
    let start = text.find("[source]").unwrap();
    let end = text[start..].find("\n\n").map_or(text.len(), |i| start + i);
    let text = format!("{}{}{}", &text[..start], source, &text[end..]);
    let text = text.replace("store = \"runs/", &format!("store = \"{}/", dir.display()));
    plan::parse(&dir.join(name), &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Train's side of a study without libtorch: the common flags, and every argument list accepted.
struct AnyTrainer;

impl kdstore_core::study::Trainer for AnyTrainer {
    fn known_settings(&self) -> Vec<String> {
        ["loss", "where", "views", "student", "width", "depth", "epochs", "batch_size", "lr", "teacher", "ensemble"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn resolve(&self, _: &Path, _: u64, args: &[String]) -> Result<kdstore_core::study::Resolved, String> {
        Ok(kdstore_core::study::Resolved { config: serde_json::json!(args), args: args.to_vec() })
    }

    fn has_checkpoint(&self, _: &Path) -> bool {
        false
    }

    fn train_command(&self) -> std::process::Command {
        std::process::Command::new("false")
    }
}

/// Study TOML: parse and validate against a real store; a valid one is planned.
pub fn study_toml() -> Target {
    let dir = workdir();
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(repo().join("pipelines/studies")).unwrap().flatten() {
        let path = entry.path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text
            .replace("runs/hapt-augmentations\"", "runs/hapt\"")
            .replace("runs/fashion-mnist\"", "runs/hapt\"")
            .replace("\"runs/hapt\"", &format!("\"{}\"", built_store().display()))
            .replace("runs/studies", &dir.path().display().to_string());
        seeds.push(Seed { name: path.display().to_string(), bytes: text.into_bytes() });
    }
    seeds.sort_by(|a, b| a.name.cmp(&b.name));
    let path = dir.path().join("fuzzed.toml");
    let run = move |input: &[u8], _: &mut Rng| {
        let _keep = &dir;
        std::fs::write(&path, input).unwrap();
        match kdstore_core::study::load(&path, &AnyTrainer) {
            Ok(study) => {
                let plan = kdstore_core::study::plan_text(&study, std::time::Duration::from_secs(1), &|_| false);
                match plan.contains(&format!("= {} runs", study.runs.len())) {
                    true => Ok(Outcome::Accepted),
                    false => Err(format!("the plan does not count its {} runs:\n{plan}", study.runs.len())),
                }
            }
            Err(error) => Ok(Outcome::Refused(error.to_string())),
        }
    };
    Target { name: "study_toml", seeds, text: true, run: Box::new(run), names: vec!["fuzzed.toml".into()] }
}

/// The samples stage's verdict: a source error is the refusal to judge; later stages (a split
/// that came out empty) mean the file itself was read.
fn samples_stage(plan: &Plan) -> Result<Outcome, String> {
    match prepare(&plan.file, &plan.path) {
        Ok(_) => Ok(Outcome::Accepted),
        Err(BuildError::Source(error)) => Ok(Outcome::Refused(error.to_string())),
        Err(BuildError::Io { path, source }) => Ok(Outcome::Refused(format!("{}: {source}", path.display()))),
        Err(BuildError::Split(_)) => Ok(Outcome::Accepted),
        Err(other) => Err(format!("the samples stage failed outside the source: {other}")),
    }
}

/// Pipeline TOML: parse and validate; a valid one has every recipe rendered on real samples.
pub fn pipeline_toml() -> Target {
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(repo().join("pipelines")).unwrap().flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        seeds.push(Seed { name: path.display().to_string(), bytes: std::fs::read(&path).unwrap() });
    }
    seeds.sort_by(|a, b| a.name.cmp(&b.name));
    let dir = workdir();
    let path = dir.path().join("fuzzed.toml");
    let pool = MixPool::basicmotions();
    let run = move |input: &[u8], rng: &mut Rng| {
        let _keep = &dir;
        std::fs::write(&path, input).unwrap();
        let plan = match plan::load(&path) {
            Ok(plan) => plan,
            Err(error) => return Ok(Outcome::Refused(error.to_string())),
        };
        let shape = pool.shape_for(&plan);
        if check_recipes(&plan, &shape).is_err() {
            return Ok(Outcome::Accepted);
        }
        let source = pool.with_shape(&shape);
        for recipe in &plan.recipes {
            for sample in 0..source.ids.len() as i64 {
                let view = render_view(&recipe.ops, rng.next(), sample, &shape, &source).unwrap();
                if view.input.len() != shape.iter().product::<usize>() {
                    return Err(format!(
                        "recipe {} rendered {} values for shape {shape:?}",
                        recipe.name,
                        view.input.len()
                    ));
                }
            }
        }
        Ok(Outcome::Accepted)
    };
    Target { name: "pipeline_toml", seeds, text: true, run: Box::new(run), names: vec!["fuzzed.toml".into()] }
}

/// Real samples to render views of: BasicMotions series, or Fashion-MNIST-shaped images made of them.
struct MixPool {
    values: Vec<f32>,
}

struct ShapedPool {
    ids: Vec<i64>,
    inputs: Vec<Vec<f32>>,
}

impl MixPool {
    fn basicmotions() -> MixPool {
        let dataset = kdstore_core::source::ts::read(&data("basicmotions/BasicMotions_TRAIN.ts")).unwrap();
        MixPool { values: dataset.inputs.gather(&[0, 1, 2, 3], dataset.sample_len()).unwrap() }
    }

    fn shape_for(&self, plan: &Plan) -> Vec<usize> {
        match plan.file.source {
            kdstore_core::pipeline::config::SourceConfig::Idx { .. } => vec![1, 28, 28],
            _ => vec![6, 100],
        }
    }

    fn with_shape(&self, shape: &[usize]) -> ShapedPool {
        let len: usize = shape.iter().product();
        let inputs: Vec<Vec<f32>> =
            (0..4).map(|i| (0..len).map(|j| self.values[(i * len + j) % self.values.len()]).collect()).collect();
        ShapedPool { ids: (0..4).collect(), inputs }
    }
}

impl MixSource for ShapedPool {
    fn partner_pool(&self) -> &[i64] {
        &self.ids
    }
    fn raw_input(&self, sample_id: i64) -> Result<std::borrow::Cow<'_, [f32]>, kdstore_core::source::SourceError> {
        Ok(std::borrow::Cow::Borrowed(&self.inputs[sample_id as usize]))
    }
}

/// The first `count` items of an IDX file, with its count rewritten.
fn idx_head(bytes: &[u8], count: u32) -> Vec<u8> {
    let dims = bytes[3] as usize;
    let item: usize =
        (1..dims).map(|d| u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().unwrap()) as usize).product();
    let header = 4 + 4 * dims;
    let mut out = bytes[..header + item * count as usize].to_vec();
    out[4..8].copy_from_slice(&count.to_be_bytes());
    out
}

/// IDX images and labels (Fashion-MNIST, 40 items each), either file mutated, plain or gzipped.
pub fn idx() -> Target {
    let images = idx_head(&read_gz(&data("fashion-mnist/train-images-idx3-ubyte.gz")), 40);
    let labels = idx_head(&read_gz(&data("fashion-mnist/train-labels-idx1-ubyte.gz")), 40);
    let dir = workdir();
    let files = ["train-images", "train-labels", "test-images", "test-labels"].map(|n| dir.path().join(n));
    for (file, bytes) in files.iter().zip([&images, &labels, &images, &labels]) {
        std::fs::write(file, bytes).unwrap();
    }
    let source = format!(
        "[source]\nkind = \"idx\"\ntrain_images = \"{}\"\ntrain_labels = \"{}\"\ntest_images = \"{}\"\ntest_labels = \"{}\"\nclass_names = \"fashion-mnist\"",
        files[0].display(),
        files[1].display(),
        files[2].display(),
        files[3].display()
    );
    let plan = pipeline_with_source("fashion-mnist.toml", &source, dir.path());
    let originals = [images.clone(), labels.clone()];
    let run = move |input: &[u8], rng: &mut Rng| {
        let _keep = &dir;
        // The labels seed is 48 bytes, the images seed 31 kB: mutate the file the input came from.
        let slot = if input.len() > 1000 { 0 } else { 1 };
        let bytes = if rng.chance(3) { gzip(input) } else { input.to_vec() };
        std::fs::write(&files[slot], bytes).unwrap();
        let outcome = samples_stage(&plan);
        std::fs::write(&files[slot], &originals[slot]).unwrap();
        outcome
    };
    let seeds = vec![Seed { name: "images".into(), bytes: images }, Seed { name: "labels".into(), bytes: labels }];
    Target {
        name: "idx",
        seeds,
        text: false,
        run: Box::new(run),
        names: vec!["train-images".into(), "train-labels".into()],
    }
}

/// The header and first `series` series of a `.ts` file.
fn ts_head(path: &Path, series: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let data_at = text.find("@data").unwrap();
    let body_start = data_at + text[data_at..].find('\n').unwrap() + 1;
    let body: Vec<&str> = text[body_start..].lines().take(series).collect();
    format!("{}{}\n", &text[..body_start], body.join("\n")).into_bytes()
}

/// UEA/UCR `.ts` (BasicMotions, 8 series of each file): the train file mutated.
pub fn ts() -> Target {
    let train = ts_head(&data("basicmotions/BasicMotions_TRAIN.ts"), 8);
    let test = ts_head(&data("basicmotions/BasicMotions_TEST.ts"), 8);
    let dir = workdir();
    let (train_path, test_path) = (dir.path().join("fuzzed_TRAIN.ts"), dir.path().join("fuzzed_TEST.ts"));
    std::fs::write(&train_path, &train).unwrap();
    std::fs::write(&test_path, &test).unwrap();
    let source =
        format!("[source]\nkind = \"ts\"\ntrain = \"{}\"\ntest = \"{}\"", train_path.display(), test_path.display());
    let plan = pipeline_with_source("basicmotions.toml", &source, dir.path());
    let run = move |input: &[u8], _: &mut Rng| {
        let _keep = &dir;
        std::fs::write(&train_path, input).unwrap();
        samples_stage(&plan)
    };
    let seeds = vec![Seed { name: "train".into(), bytes: train }, Seed { name: "test".into(), bytes: test }];
    Target { name: "ts", seeds, text: true, run: Box::new(run), names: vec!["fuzzed_TRAIN.ts".into()] }
}

/// `.npy` inputs, labels and groups made from 12 real BasicMotions series; any of the three mutated.
pub fn npy() -> Target {
    let dataset = kdstore_core::source::ts::read(&data("basicmotions/BasicMotions_TRAIN.ts")).unwrap();
    let n = 12;
    let dir = workdir();
    let paths = ["inputs.npy", "labels.npy", "groups.npy"].map(|name| dir.path().join(name));
    let shape = [n, dataset.sample_shape[0], dataset.sample_shape[1]];
    kdstore_core::source::npy::write_f32(
        &paths[0],
        &shape,
        &dataset.inputs.gather(&(0..n).collect::<Vec<_>>(), dataset.sample_len()).unwrap(),
    )
    .unwrap();
    kdstore_core::source::npy::write_i64(&paths[1], &[n], &dataset.labels[..n]).unwrap();
    let groups: Vec<i64> = (0..n as i64).map(|i| i % 4).collect();
    kdstore_core::source::npy::write_i64(&paths[2], &[n], &groups).unwrap();
    let originals: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let source = format!(
        "[source]\nkind = \"npy\"\ninputs = \"{}\"\nlabels = \"{}\"\ngroups = \"{}\"\nlayout = \"series\"",
        paths[0].display(),
        paths[1].display(),
        paths[2].display()
    );
    let plan = pipeline_with_source("basicmotions.toml", &source, dir.path());
    let plan =
        Plan { file: kdstore_core::pipeline::config::PipelineFile { split: test_groups_split(), ..plan.file }, ..plan };
    let seeds: Vec<Seed> =
        paths.iter().zip(&originals).map(|(p, b)| Seed { name: p.display().to_string(), bytes: b.clone() }).collect();
    let names = vec!["inputs.npy".into(), "labels.npy".into(), "groups.npy".into()];
    let run = move |input: &[u8], rng: &mut Rng| {
        let _keep = &dir;
        let slot = if input.len() > 1000 { 0 } else { 1 + rng.below(2) };
        std::fs::write(&paths[slot], input).unwrap();
        let outcome = samples_stage(&plan);
        std::fs::write(&paths[slot], &originals[slot]).unwrap();
        outcome
    };
    Target { name: "npy", seeds, text: false, run: Box::new(run), names }
}

fn test_groups_split() -> kdstore_core::pipeline::config::SplitConfig {
    toml::from_str("test_groups = [0]\nval_fraction = 0.2").unwrap()
}

/// The HAPT pickle: the layout fixture of the unit tests and, in long runs, the real file; the
/// pickle is mutated inside its gzip (and sometimes the gzip stream itself).
pub fn hapt_pickle(seconds: f64) -> Target {
    let mut seeds = vec![Seed {
        name: "layout fixture".into(),
        bytes: read_gz(&repo().join("tests/fuzz/seeds/hapt-layout.pkl.gz")),
    }];
    if seconds >= 60.0 {
        seeds.push(Seed { name: "HAPT.pkl.gz".into(), bytes: read_gz(&data("hapt/HAPT.pkl.gz")) });
    }
    let dir = workdir();
    let path = dir.path().join("fuzzed.pkl.gz");
    let run = move |input: &[u8], rng: &mut Rng| {
        let _keep = &dir;
        let mut bytes = gzip(input);
        if rng.chance(5) {
            let at = 10 + rng.below(bytes.len() - 10);
            bytes[at] ^= 1 << rng.below(8);
        }
        std::fs::write(&path, bytes).unwrap();
        let (window, step) = if input.len() > 1 << 20 { (128, 64) } else { (3, 2) };
        match kdstore_core::source::hapt::read(&path, window, step) {
            Ok(_) => Ok(Outcome::Accepted),
            Err(error) => Ok(Outcome::Refused(error.to_string())),
        }
    };
    Target { name: "hapt_pickle", seeds, text: false, run: Box::new(run), names: vec!["fuzzed.pkl.gz".into()] }
}

/// Writes a file as a new inode (temporary file, then rename): a Polars worker still reading the
/// old one from an earlier input (after a panic elsewhere) keeps its memory map whole instead of
/// dying of SIGBUS on a file truncated under it.
fn replace_file(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    let tmp = path.with_extension("fuzz-tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A small real store (BasicMotions), built once per run by the kdstore binary.
fn built_store() -> &'static Path {
    static STORE: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = STORE.get_or_init(|| {
        let dir = workdir();
        let store = dir.path().join("basicmotions");
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_kdstore"))
            .current_dir(repo())
            .args(["--quiet", "build", "pipelines/basicmotions.toml", "--store"])
            .arg(&store)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        (dir, store)
    });
    path
}

/// A private copy of the built store, for a target to damage.
fn store_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = workdir();
    let copy = dir.path().join("store");
    let status = std::process::Command::new("cp").arg("-r").arg(built_store()).arg(&copy).status().unwrap();
    assert!(status.success());
    (dir, copy)
}

/// Every read a command makes of a store: open, every table, the labels view, the samples and
/// views as the trainer loads them, and a (shallow) verify.
fn read_everything(root: &Path) -> Result<(), String> {
    let store = Store::open(root).map_err(|e| e.to_string())?;
    for table in [c::SAMPLES, c::VIEWS, c::LOGITS, c::EMBEDDINGS] {
        if store.manifest.files_of(table).next().is_some() {
            let frame = store.scan(table).map_err(|e| e.to_string())?;
            store.collect(table, frame).map_err(|e| e.to_string())?;
        }
    }
    let labels = store.labels().map_err(|e| e.to_string())?;
    store.collect(c::LABELS, labels).map_err(|e| e.to_string())?;
    store.load_samples().map_err(|e| e.to_string())?;
    store.load_views(store.scan(c::VIEWS).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    Ok(())
}

/// Manifests: the newest one mutated, either as bytes (its checksum must catch a changed value) or
/// as a manifest that still parses and is sealed again (everything read through it must hold).
pub fn manifest_json() -> Target {
    let (dir, root) = store_copy();
    let newest = manifest::versions(&root).unwrap().into_iter().max().unwrap();
    let path = manifest::path_of(&root, newest);
    let original = std::fs::read(&path).unwrap();
    let older = std::fs::read(manifest::path_of(&root, newest - 1)).unwrap();
    let names = vec![path_name(&path), root.display().to_string()];
    let run = move |input: &[u8], rng: &mut Rng| {
        let _keep = &dir;
        let resealed = rng.chance(2);
        let bytes = if resealed {
            match serde_json::from_slice::<store::Manifest>(input) {
                Ok(mut parsed) => {
                    manifest::seal(&mut parsed);
                    serde_json::to_vec_pretty(&parsed).unwrap()
                }
                Err(_) => input.to_vec(),
            }
        } else {
            input.to_vec()
        };
        replace_file(&path, &bytes).unwrap();
        integrity::forget_checked();
        let outcome = read_everything(&root);
        replace_file(&path, &original).unwrap();
        Ok(match outcome {
            Ok(()) => Outcome::Accepted,
            Err(message) => Outcome::Refused(message),
        })
    };
    let seeds = vec![
        Seed { name: "newest".into(), bytes: std::fs::read(manifest::path_of(built_store(), newest)).unwrap() },
        Seed { name: "older".into(), bytes: older },
    ];
    Target { name: "manifest", seeds, text: true, run: Box::new(run), names }
}

fn path_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().to_string()
}

/// The store's Parquet files (samples, views, logits): one mutated. With the manifest left alone
/// the damage must be refused before anything is read; with the manifest updated to the new bytes
/// (a file another tool wrote wrongly) every read must end in an error, never a panic. Polars
/// aborts on some such files (tests/fuzz/known-aborts/), which no Rust code can catch, so
/// `KDSTORE_FUZZ_REWRITTEN_PARQUET=0` leaves that second way out (for the long runs).
pub fn store_parquet() -> Target {
    let (dir, root) = store_copy();
    let original_manifest = store::manifest::read_latest(&root).unwrap().unwrap();
    let newest = original_manifest.version;
    let manifest_path = manifest::path_of(&root, newest);
    let manifest_bytes = std::fs::read(&manifest_path).unwrap();
    let mut chosen: Vec<store::DataFile> = Vec::new();
    for table in [c::SAMPLES, c::VIEWS, c::LOGITS] {
        chosen.extend(original_manifest.files_of(table).take(2).cloned());
    }
    let seeds: Vec<Seed> = chosen
        .iter()
        .map(|f| Seed { name: f.path.clone(), bytes: std::fs::read(root.join(&f.path)).unwrap() })
        .collect();
    let mut names: Vec<String> = chosen.iter().map(|f| path_name(Path::new(&f.path))).collect();
    names.push(root.display().to_string());
    let sizes: Vec<usize> = seeds.iter().map(|s| s.bytes.len()).collect();
    let originals: Vec<Vec<u8>> = seeds.iter().map(|s| s.bytes.clone()).collect();
    let rewritten = std::env::var("KDSTORE_FUZZ_REWRITTEN_PARQUET").map_or(true, |v| v != "0");
    let run = move |input: &[u8], rng: &mut Rng| {
        let _keep = &dir;
        // The file of the seed closest in size is the one this input was made from.
        let slot = (0..sizes.len()).min_by_key(|&i| sizes[i].abs_diff(input.len())).unwrap();
        let file = &chosen[slot];
        let path = root.join(&file.path);
        replace_file(&path, input).unwrap();
        integrity::forget_checked();
        let updated = rewritten && rng.chance(2);
        if updated {
            let mut changed = original_manifest.clone();
            let digests = integrity::digests(&path).unwrap();
            let entry = changed.files.iter_mut().find(|f| f.path == file.path).unwrap();
            (entry.bytes, entry.sha256, entry.xxh3) = (digests.bytes, digests.sha256, Some(digests.xxh3));
            manifest::seal(&mut changed);
            replace_file(&manifest_path, serde_json::to_vec_pretty(&changed).unwrap()).unwrap();
        }
        let outcome = read_everything(&root);
        replace_file(&path, &originals[slot]).unwrap();
        replace_file(&manifest_path, &manifest_bytes).unwrap();
        match outcome {
            Ok(()) if !updated && input != originals[slot].as_slice() => {
                Err(format!("{} was changed but read without an error", file.path))
            }
            Ok(()) => Ok(Outcome::Accepted),
            Err(message) if !updated && !message.contains("is damaged or was changed") => {
                Err(format!("a changed {} gave another error than damage: {message}", file.path))
            }
            Err(message) => Ok(Outcome::Refused(message)),
        }
    };
    Target { name: "store_parquet", seeds, text: false, run: Box::new(run), names }
}
