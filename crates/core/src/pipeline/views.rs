//! The views stage: every view of a views part rendered from its seed, in fixed chunks over worker
//! threads, and the context that renders (and later replays) views — the samples, the training
//! pool that mixing partners come from, and the normaliser a model's input goes through.

use std::borrow::Cow;

use super::parallel::parallel_chunks;
use super::parts::ViewPart;
use super::plan::Plan;
use super::BuildError;
use crate::augment::{render_view, seed, MixSource, Normalizer, OpConfig, RenderedView};
use crate::progress::Progress;
use crate::source::SourceError;
use crate::store::reader::SampleTable;
use crate::store::writer::ViewRow;
use crate::store::{Manifest, Split};

/// What rendering needs: the samples, the training pool for mixing partners and the normaliser.
pub struct RenderContext<'a> {
    pub samples: &'a SampleTable,
    pub pool: Vec<i64>,
    pub normalizer: Normalizer,
    pub class_names: Vec<String>,
    pub class_count: usize,
}

impl<'a> RenderContext<'a> {
    pub fn new(samples: &'a SampleTable, manifest: &Manifest) -> RenderContext<'a> {
        let normalization = &manifest.dataset.normalization;
        RenderContext {
            samples,
            pool: samples.ids_in(Split::Train).into_iter().map(|i| i as i64).collect(),
            normalizer: Normalizer { mean: normalization.mean.clone(), std: normalization.std.clone() },
            class_names: manifest.dataset.class_names.clone(),
            class_count: manifest.dataset.class_names.len(),
        }
    }

    /// Renders a view of a sample, in raw units (see `render_view`); decoding a sample's file may
    /// fail.
    pub fn render(&self, ops: &[OpConfig], seed: u64, sample_id: i64) -> Result<RenderedView, SourceError> {
        render_view(ops, seed, sample_id, &self.samples.sample_shape, self)
    }
}

impl MixSource for RenderContext<'_> {
    fn partner_pool(&self) -> &[i64] {
        &self.pool
    }
    fn raw_input(&self, sample_id: i64) -> Result<Cow<'_, [f32]>, SourceError> {
        self.samples.input(sample_id as usize)
    }
}

/// Every op of every recipe fits the samples' shape (only known once the source was read).
pub fn check_recipes(plan: &Plan, shape: &[usize]) -> Result<(), BuildError> {
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

/// Renders the views of one part: one per sample of the recipe's splits and replica of the part,
/// replica by replica.
pub fn render_views(
    plan: &Plan,
    part: &ViewPart,
    context: &RenderContext,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Vec<ViewRow>, BuildError> {
    let samples = context.samples;
    let ids: Vec<i64> =
        (0..samples.len()).filter(|&i| part.recipe.splits.contains(&samples.splits[i])).map(|i| i as i64).collect();
    let items: Vec<(u32, i64)> = part.replicas().flat_map(|r| ids.iter().map(move |&id| (r, id))).collect();
    let task = progress.task(&format!("views {} {}", part.recipe.name, part.label()), items.len() as u64);
    let recipe = &part.recipe;
    let rows = parallel_chunks(items.len(), threads, task.as_ref(), &|| Ok::<(), BuildError>(()), &|_, range| {
        items[range]
            .iter()
            .map(|&(replica, sample_id)| {
                let seed = seed::view_seed(plan.file.seed, sample_id, &recipe.name, replica);
                let view = context.render(&recipe.ops, seed, sample_id)?;
                Ok(ViewRow {
                    view_id: seed::view_id(sample_id, &recipe.name, replica),
                    sample_id,
                    recipe: recipe.name.clone(),
                    replica,
                    seed,
                    partner_id: view.mix.map(|m| m.partner_id),
                    lam: view.mix.map(|m| m.lam),
                    params: view.params,
                    input_hash: view.input_hash,
                })
            })
            .collect()
    })?;
    task.finish();
    Ok(rows)
}
