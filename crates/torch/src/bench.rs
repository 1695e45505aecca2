//! `kdstore bench`: what the labelling stage costs over the teacher's bare forward passes on the
//! same inputs (DESIGN.md's target: at most 10% more). Both sides run in this process, on the same
//! fixed chunks, threads and teacher; the bare side gets its inputs rendered beforehand and untimed.
//! Also how fast views replay, and what a training epoch's loader does from reading the samples to
//! finished batches (the side of the comparison with a PyTorch DataLoader). The store is only read.

use std::time::Instant;

use kdstore_core::pipeline::parallel::parallel_chunks;
use kdstore_core::pipeline::plan::manifest_recipes;
use kdstore_core::pipeline::views::RenderContext;
use kdstore_core::pipeline::BuildError;
use kdstore_core::progress::Progress;

use crate::build::{label_views, load_classifier};
use kdstore_core::select::{select_unlabelled, Replayer, ViewsError};
use kdstore_core::store::columns as c;
use kdstore_core::store::Store;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

/// Timings of one labelling benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabellingBench {
    pub teacher: String,
    pub views: usize,
    pub threads: usize,
    /// Teacher forward passes over inputs already in memory.
    pub bare_forward_seconds: f64,
    /// Replay, hash check, forward passes and statistics, as the build runs them.
    pub labelling_seconds: f64,
}

impl LabellingBench {
    /// Labelling time over bare forward time, minus one (0.05 = 5% more).
    pub fn overhead(&self) -> f64 {
        self.labelling_seconds / self.bare_forward_seconds - 1.0
    }
}

/// Times the labelling of every view of `store` by `teacher`, against the bare forward passes.
pub fn labelling(
    store: &Store,
    teacher: &str,
    threads: usize,
    progress: &dyn Progress,
) -> Result<LabellingBench, BuildError> {
    tch::set_num_threads(1);
    let info = store
        .manifest
        .teacher(teacher)
        .ok_or_else(|| BuildError::TeacherSetup {
            teacher: teacher.into(),
            detail: "the store has no such teacher".into(),
        })?
        .clone();
    let samples = store.load_samples()?;
    let context = RenderContext::new(&samples, &store.manifest);
    let views = store.load_views(store.scan(c::VIEWS)?)?;
    let recipes = manifest_recipes(&store.manifest).map_err(BuildError::Recipe)?;
    let ops_of = |recipe: &str| recipes.get(recipe).cloned().unwrap_or_default();

    // Bare: the same chunks of the same inputs, rendered before the clock starts.
    let mut inputs = Vec::with_capacity(views.len() * samples.sample_len);
    for view in &views {
        let mut rendered = context.render(&ops_of(&view.recipe), view.seed, view.sample_id)?;
        context.normalizer.apply(&mut rendered.input);
        inputs.extend_from_slice(&rendered.input);
    }
    let task = progress.task("bare forward", views.len() as u64);
    let started = Instant::now();
    let logits = parallel_chunks(
        views.len(),
        threads,
        task.as_ref(),
        &|| load_classifier(&store.root, &info, tch::Device::Cpu),
        &|classifier, range| {
            let chunk = &inputs[range.start * samples.sample_len..range.end * samples.sample_len];
            let (flat, _) = classifier
                .logits(chunk, &samples.sample_shape, tch::Device::Cpu)
                .map_err(|source| BuildError::Teacher { teacher: info.name.clone(), source: Box::new(source) })?;
            Ok(vec![flat.len()])
        },
    )?;
    let bare_forward_seconds = started.elapsed().as_secs_f64();
    task.finish();
    drop(logits);
    drop(inputs);

    // The labelling stage, part by part as the build runs it.
    let started = Instant::now();
    for (recipe, ops) in &recipes {
        let part: Vec<_> = views.iter().filter(|v| &v.recipe == recipe).cloned().collect();
        if !part.is_empty() {
            let label = format!("labelling {recipe}");
            label_views(&store.root, &info, ops, &label, &part, &context, threads, false, progress)?;
        }
    }
    let labelling_seconds = started.elapsed().as_secs_f64();
    Ok(LabellingBench { teacher: teacher.into(), views: views.len(), threads, bare_forward_seconds, labelling_seconds })
}

/// How fast one recipe's views are rebuilt: replay from the seed plus normalisation, on one thread,
/// which is what the training loader does for every batch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayTiming {
    pub recipe: String,
    pub views: usize,
    pub seconds: f64,
}

impl ReplayTiming {
    pub fn views_per_second(&self) -> f64 {
        self.views as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

/// Times replaying every view of every recipe of `store`, recipe by recipe, on one thread.
pub fn replay(store: &Store, progress: &dyn Progress) -> Result<Vec<ReplayTiming>, BuildError> {
    let samples = store.load_samples()?;
    let context = RenderContext::new(&samples, &store.manifest);
    let views = store.load_views(store.scan(c::VIEWS)?)?;
    let recipes = manifest_recipes(&store.manifest).map_err(BuildError::Recipe)?;
    let mut timings = Vec::new();
    for (recipe, ops) in &recipes {
        let part: Vec<_> = views.iter().filter(|v| &v.recipe == recipe).collect();
        if part.is_empty() {
            continue;
        }
        let task = progress.task(&format!("replay {recipe}"), part.len() as u64);
        let mut checksum = 0u64;
        let started = Instant::now();
        for view in &part {
            let mut rendered = context.render(ops, view.seed, view.sample_id)?;
            context.normalizer.apply(&mut rendered.input);
            checksum ^= rendered.input_hash;
        }
        let seconds = started.elapsed().as_secs_f64();
        std::hint::black_box(checksum);
        task.advance(part.len() as u64);
        task.finish();
        timings.push(ReplayTiming { recipe: recipe.clone(), views: part.len(), seconds });
    }
    Ok(timings)
}

/// What one epoch of a training loader costs: reading the samples (an image folder's files decoded
/// and checked), then replaying, normalising and stacking the selected views into batches in a
/// shuffled order; both on `threads` threads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoaderTiming {
    pub views: usize,
    pub batch_size: usize,
    pub threads: usize,
    /// Reading the samples table and every sample's input (for an image folder: read, hash check,
    /// decode of every file).
    pub load_seconds: f64,
    /// Replay, normalisation and batching of every selected view, once.
    pub epoch_seconds: f64,
}

impl LoaderTiming {
    /// Views per second of the first epoch, loading included.
    pub fn first_epoch_views_per_second(&self) -> f64 {
        self.views as f64 / (self.load_seconds + self.epoch_seconds).max(f64::MIN_POSITIVE)
    }

    /// Views per second of every later epoch (the samples are read once per run).
    pub fn epoch_views_per_second(&self) -> f64 {
        self.views as f64 / self.epoch_seconds.max(f64::MIN_POSITIVE)
    }
}

/// Times the loader's work over the views satisfying `condition` (SQL over views ⋈ samples).
pub fn loader(store: &Store, condition: &str, batch_size: usize, threads: usize) -> Result<LoaderTiming, ViewsError> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().expect("worker threads start");
    let started = Instant::now();
    let samples = pool.install(|| store.load_samples())?;
    let load_seconds = started.elapsed().as_secs_f64();
    let views = select_unlabelled(store, &samples, condition)?.views;
    if views.is_empty() {
        return Err(ViewsError::Empty { teacher: "any".into(), condition: format!(" --where {condition}") });
    }
    let replayer = Replayer::new(store, &samples)?;
    let mut order: Vec<usize> = (0..views.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let started = Instant::now();
    let values: usize = pool.install(|| {
        order
            .par_chunks(batch_size.max(1))
            .map(|batch| {
                let mut inputs = Vec::with_capacity(batch.len() * samples.sample_len);
                for &index in batch {
                    let mut rendered = replayer.replay(&views[index])?;
                    replayer.context.normalizer.apply(&mut rendered.input);
                    inputs.extend_from_slice(&rendered.input);
                }
                Ok(std::hint::black_box(inputs).len())
            })
            .sum::<Result<usize, ViewsError>>()
    })?;
    let epoch_seconds = started.elapsed().as_secs_f64();
    assert_eq!(values, views.len() * samples.sample_len, "every view batched");
    Ok(LoaderTiming { views: views.len(), batch_size, threads, load_seconds, epoch_seconds })
}
