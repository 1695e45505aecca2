//! Training data from a store: the selected training views with their stored teacher logits, the
//! recipes to replay them, and the evaluation splits. Views are replayed from (sample, recipe,
//! seed) on demand, batch by batch, and checked against their stored input hash.

use std::collections::BTreeMap;

use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::TrainError;
use crate::augment::{OpConfig, RenderedView};
use crate::pipeline::build::Context;
use crate::pipeline::plan::manifest_recipes;
use crate::query;
use crate::store::columns as c;
use crate::store::reader::{
    flat_f32_list, i64_column, opt_f32_column, opt_i64_column, str_column, u64_column, SampleTable,
};
use crate::store::{Split, Store};

/// One training view with what the loss needs.
#[derive(Debug, Clone)]
pub struct TrainView {
    pub view_id: i64,
    pub sample_id: i64,
    pub recipe: String,
    pub seed: u64,
    pub input_hash: u64,
    pub label: i64,
    pub partner_label: i64,
    /// Weight of the own label (1 for unmixed views).
    pub lam: f32,
    pub teacher_logits: Vec<f32>,
}

/// Everything a training run reads from the store.
pub struct TrainData {
    pub samples: SampleTable,
    pub views: Vec<TrainView>,
    pub recipes: BTreeMap<String, Vec<OpConfig>>,
    pub classes: usize,
}

fn sql_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Loads the training views of `teacher` selected by `filter` (a SQL condition over `labels`).
pub fn load(store: &Store, teacher: &str, filter: Option<&str>) -> Result<TrainData, TrainError> {
    let mut sql = format!(
        "SELECT {v}, {s}, {r}, {seed}, {h}, {l}, {p}, {lam}, {logits} FROM {labels} WHERE {split} = 'train' AND {t} = {name}",
        v = c::VIEW_ID, s = c::SAMPLE_ID, r = c::RECIPE, seed = c::SEED, h = c::INPUT_HASH, l = c::LABEL,
        p = c::PARTNER_ID, lam = c::LAM, logits = c::LOGITS_COLUMN, labels = c::LABELS, split = c::SPLIT,
        t = c::TEACHER, name = sql_quote(teacher),
    );
    if let Some(filter) = filter {
        sql.push_str(&format!(" AND ({filter})"));
    }
    sql.push_str(&format!(" ORDER BY {}", c::VIEW_ID));
    let frame = query::run(store, &sql).map_err(|e| TrainError::Selection(e.to_string()))?;
    if frame.height() == 0 {
        return Err(TrainError::Selection(format!(
            "no training views of teacher {teacher} match{}",
            filter.map(|f| format!(" --where {f}")).unwrap_or_default()
        )));
    }
    let classes = store.manifest.dataset.class_names.len();
    let samples = store.load_samples()?;
    let column = |name: &'static str| move |e: PolarsError| TrainError::Selection(format!("column {name}: {e}"));
    let view_ids = i64_column(&frame, c::VIEW_ID).map_err(column(c::VIEW_ID))?;
    let sample_ids = i64_column(&frame, c::SAMPLE_ID).map_err(column(c::SAMPLE_ID))?;
    let labels = i64_column(&frame, c::LABEL).map_err(column(c::LABEL))?;
    let recipes = str_column(&frame, c::RECIPE).map_err(column(c::RECIPE))?;
    let seeds = u64_column(&frame, c::SEED).map_err(column(c::SEED))?;
    let hashes = u64_column(&frame, c::INPUT_HASH).map_err(column(c::INPUT_HASH))?;
    let partners = opt_i64_column(&frame, c::PARTNER_ID).map_err(column(c::PARTNER_ID))?;
    let lams = opt_f32_column(&frame, c::LAM).map_err(column(c::LAM))?;
    let logits = flat_f32_list(&frame, c::LOGITS_COLUMN, classes)
        .map_err(|e| TrainError::Selection(format!("column {}: {e}", c::LOGITS_COLUMN)))?;
    let views = (0..frame.height())
        .map(|i| {
            let (partner_label, lam) = match (partners[i], lams[i]) {
                (Some(partner), Some(lam)) => (samples.labels[partner as usize], lam),
                _ => (labels[i], 1.0),
            };
            TrainView {
                view_id: view_ids[i],
                sample_id: sample_ids[i],
                recipe: recipes[i].clone(),
                seed: seeds[i],
                input_hash: hashes[i],
                label: labels[i],
                partner_label,
                lam,
                teacher_logits: logits[i * classes..(i + 1) * classes].to_vec(),
            }
        })
        .collect();
    let recipes = manifest_recipes(&store.manifest).map_err(TrainError::Selection)?;
    Ok(TrainData { samples, views, recipes, classes })
}

impl TrainData {
    /// Replays one view from its recipe and seed.
    fn replay(&self, context: &Context, view: &TrainView) -> Result<RenderedView, TrainError> {
        let ops = self.recipes.get(&view.recipe).ok_or_else(|| {
            TrainError::Selection(format!(
                "view {}: recipe {} is not in the store's pipeline",
                view.view_id, view.recipe
            ))
        })?;
        Ok(context.render(ops, view.seed, view.sample_id))
    }

    /// Replays views into one flat, normalised input buffer (`verify_replay` checks them against
    /// their hashes).
    pub fn render(&self, context: &Context, views: &[&TrainView]) -> Result<Vec<f32>, TrainError> {
        let mut inputs = Vec::with_capacity(views.len() * self.samples.sample_len);
        for view in views {
            let start = inputs.len();
            inputs.extend_from_slice(&self.replay(context, view)?.input);
            context.normalizer.apply(&mut inputs[start..]);
        }
        Ok(inputs)
    }

    /// Replays `count` views chosen at random (all when `count` ≥ the number of views) and fails on
    /// the first whose input differs from what the teacher saw.
    pub fn verify_replay(&self, context: &Context, count: usize, seed: u64) -> Result<usize, TrainError> {
        let mut chosen: Vec<&TrainView> = self.views.iter().collect();
        if count < chosen.len() {
            chosen.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            chosen.truncate(count);
        }
        for view in &chosen {
            let replayed = self.replay(context, view)?.input_hash;
            if replayed != view.input_hash {
                return Err(TrainError::Replay {
                    view_id: view.view_id,
                    recipe: view.recipe.clone(),
                    stored: view.input_hash,
                    replayed,
                });
            }
        }
        Ok(chosen.len())
    }

    /// Normalised inputs and labels of a split (identity views).
    pub fn split(&self, context: &Context, split: Split) -> (Vec<f32>, Vec<i64>) {
        let ids = self.samples.ids_in(split);
        let mut inputs = Vec::with_capacity(ids.len() * self.samples.sample_len);
        for &i in &ids {
            let start = inputs.len();
            inputs.extend_from_slice(self.samples.input(i));
            context.normalizer.apply(&mut inputs[start..]);
        }
        (inputs, ids.iter().map(|&i| self.samples.labels[i]).collect())
    }
}
