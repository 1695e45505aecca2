//! Views of one teacher chosen with SQL, typed for replay, and the replayer that rebuilds them
//! bit for bit. Training, `export` and `show` all select and replay through here, so a view is
//! rebuilt the same way everywhere and every mismatch with the stored hash is the same error.

use std::collections::BTreeMap;

use std::path::PathBuf;

use polars::prelude::*;

use crate::augment::seed::view_seed;
use crate::augment::{OpConfig, RenderedView};
use crate::pipeline::plan::manifest_recipes;
use crate::pipeline::views::RenderContext;
use crate::query;
use crate::store::columns as c;
use crate::store::reader::{
    flat_f32_list, i64_column, interned_str_column, opt_f32_column, opt_i64_column, u64_column, SampleTable,
};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Query(String),
    #[error("column {column}: {detail}")]
    Column { column: String, detail: String },
    #[error("teacher {teacher} has no logits for view {view_id} (sample {sample_id}, recipe {recipe})")]
    Unlabelled { teacher: String, view_id: i64, sample_id: i64, recipe: String },
}

impl From<query::QueryError> for SelectError {
    fn from(error: query::QueryError) -> SelectError {
        SelectError::Query(error.to_string())
    }
}

impl SelectError {
    /// A column's error of a chunk of rows, naming the row the chunk starts at.
    fn counted_from(self, first_row: usize) -> SelectError {
        match self {
            SelectError::Column { column, detail } if first_row > 0 => {
                SelectError::Column { column, detail: format!("{detail} (of the rows from row {first_row} on)") }
            }
            other => other,
        }
    }
}

/// One selected view with what replay and the losses need (its teacher's logits are in the
/// [`Selection`], flat).
#[derive(Debug, Clone)]
pub struct SelectedView {
    pub view_id: i64,
    pub sample_id: i64,
    /// Shared by every view of the recipe.
    pub recipe: std::sync::Arc<str>,
    /// Derived from (pipeline seed, sample_id, recipe, replica), as the build drew it.
    pub seed: u64,
    pub input_hash: u64,
    pub label: i64,
    pub partner_id: Option<i64>,
    /// The partner's label, or the view's own label when the view is not mixed.
    pub partner_label: i64,
    /// Weight of the own label (1 for unmixed views).
    pub lam: f32,
}

/// The rows of `labels` that matched, typed, in `view_id` order, with the teacher's logits on
/// them in one flat buffer (a vector per view cost a fifth of a ten-million-view selection).
pub struct Selection {
    pub views: Vec<SelectedView>,
    /// `classes` raw logits per view, in `views` order; empty for a selection without a teacher.
    pub logits: Vec<f32>,
    pub classes: usize,
}

impl Selection {
    /// The teacher's logits on the view at `index`.
    pub fn logits_of(&self, index: usize) -> &[f32] {
        &self.logits[index * self.classes..(index + 1) * self.classes]
    }

    /// Puts the views, with their logits, in `view_id` order (the query's rows come part by part).
    fn sort(&mut self) {
        if self.views.is_sorted_by_key(|v| v.view_id) {
            return;
        }
        let mut order: Vec<usize> = (0..self.views.len()).collect();
        order.sort_unstable_by_key(|&i| self.views[i].view_id);
        if !self.logits.is_empty() {
            let mut sorted = Vec::with_capacity(self.logits.len());
            for &i in &order {
                sorted.extend_from_slice(self.logits_of(i));
            }
            self.logits = sorted;
        }
        permute(&mut self.views, order);
    }
}

/// Rearranges `items` in place so that position `i` holds what was at `order[i]` (cycle by cycle:
/// no second copy of the items).
fn permute<T>(items: &mut [T], mut order: Vec<usize>) {
    for start in 0..items.len() {
        let mut at = start;
        while order[at] != start {
            let from = order[at];
            items.swap(at, from);
            order[at] = at;
            at = from;
        }
        order[at] = at;
    }
}

/// The columns of the `views` table that [`SelectedView`] is made from (with the sample's label
/// and, for a labelled view, the teacher's logits), as SQL prefixed with a table alias.
fn view_columns(prefix: &str) -> String {
    let names = [c::VIEW_ID, c::SAMPLE_ID, c::RECIPE, c::REPLICA, c::INPUT_HASH, c::PARTNER_ID, c::LAM];
    names.iter().map(|name| format!("{prefix}{name}")).collect::<Vec<_>>().join(", ")
}

pub fn sql_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Selects the views labelled by `teacher` that satisfy `condition` (SQL over `labels`).
pub fn select(
    store: &Store,
    samples: &SampleTable,
    teacher: &str,
    condition: Option<&str>,
) -> Result<Selection, SelectError> {
    selection_of(store, samples, &labelled_sql(&typed_columns(), teacher, condition), true)
}

/// What [`SelectedView`] is made from, as the columns of `labels` to read.
fn typed_columns() -> String {
    format!("{}, {}, {}", view_columns(""), c::LABEL, c::LOGITS_COLUMN)
}

/// The statement reading `read` (SQL: the columns) of `teacher`'s rows of `labels` that satisfy
/// `condition`.
pub fn labelled_sql(read: &str, teacher: &str, condition: Option<&str>) -> String {
    let mut sql = format!("SELECT {read} FROM {} WHERE {} = {}", c::LABELS, c::TEACHER, sql_quote(teacher));
    if let Some(condition) = condition {
        sql.push_str(&format!(" AND ({condition})"));
    }
    sql
}

/// `frame`'s rows of `labels` (with at least the columns a view is made from and the logits),
/// typed as a selection in their order.
pub fn typed_views(store: &Store, samples: &SampleTable, frame: &DataFrame) -> Result<Selection, SelectError> {
    let classes = store.manifest.dataset.class_names.len();
    let mut selection = Selection { views: Vec::with_capacity(frame.height()), logits: Vec::new(), classes };
    Typing { store, samples, with_logits: true }.rows(frame, &mut selection)?;
    Ok(selection)
}

/// Selects views that no teacher has to have labelled: those satisfying `condition`, SQL over
/// `views` joined with the samples' `split` and `label` (what a teacher that learns
/// from the labels trains on). The selection has no logits.
pub fn select_unlabelled(store: &Store, samples: &SampleTable, condition: &str) -> Result<Selection, SelectError> {
    selection_of(store, samples, &unlabelled_sql(condition), false)
}

fn unlabelled_sql(condition: &str) -> String {
    format!(
        "SELECT {columns}, s.{label}, s.{split} FROM {views} v JOIN {samples_table} s ON v.{id} = s.{id} WHERE {condition}",
        columns = view_columns("v."),
        label = c::LABEL,
        split = c::SPLIT,
        views = c::VIEWS,
        samples_table = c::SAMPLES,
        id = c::SAMPLE_ID,
    )
}

/// [`select`] (`teacher` Some) or [`select_unlabelled`] (None), the views typed and handed to
/// `each` a batch of the query's result at a time, in no particular order: what a selection too
/// large to hold goes through.
pub fn for_each_selected(
    store: &Store,
    samples: &SampleTable,
    teacher: Option<&str>,
    condition: &str,
    mut each: impl FnMut(Selection) -> Result<(), SelectError>,
) -> Result<(), SelectError> {
    let sql = match teacher {
        Some(teacher) => labelled_sql(&typed_columns(), teacher, Some(condition)),
        None => unlabelled_sql(condition),
    };
    let classes = store.manifest.dataset.class_names.len();
    let typing = Typing { store, samples, with_logits: teacher.is_some() };
    let mut first_row = 0;
    query::for_each_batch(store, &sql, |batch| {
        let mut selection = Selection { views: Vec::with_capacity(batch.height()), logits: Vec::new(), classes };
        typing.rows(&batch, &mut selection).map_err(|e| e.counted_from(first_row))?;
        first_row += batch.height();
        drop(batch);
        each(selection)?;
        crate::heap::release_free_memory();
        Ok(())
    })
}

/// Runs a selecting statement and types its rows, a chunk (a part file) at a time, dropping each
/// chunk once typed, so that the frame and the views made of it are never both whole in memory.
fn selection_of(store: &Store, samples: &SampleTable, sql: &str, with_logits: bool) -> Result<Selection, SelectError> {
    let frame = query::run(store, sql).map_err(|e| SelectError::Query(e.to_string()))?;
    let classes = store.manifest.dataset.class_names.len();
    let mut selection = Selection { views: Vec::with_capacity(frame.height()), logits: Vec::new(), classes };
    if with_logits {
        selection.logits.reserve_exact(frame.height() * classes);
    }
    let typing = Typing { store, samples, with_logits };
    for_each_chunk(frame, |chunk| typing.rows(chunk, &mut selection))?;
    selection.sort();
    Ok(selection)
}

/// Hands `frame` to `each` a chunk (a part file's rows) at a time, releasing every chunk's memory
/// once it is done, so that a query's frame and what is made of it are never both whole in memory.
/// A column's error names the rows it counts from.
fn for_each_chunk(
    mut frame: DataFrame,
    mut each: impl FnMut(&DataFrame) -> Result<(), SelectError>,
) -> Result<(), SelectError> {
    let chunks: Vec<DataFrame> = frame.split_chunks().collect();
    drop(frame);
    let mut first_row = 0;
    for chunk in chunks {
        each(&chunk).map_err(|e| e.counted_from(first_row))?;
        first_row += chunk.height();
        drop(chunk);
        crate::heap::release_free_memory();
    }
    Ok(())
}

/// What typing a selection's rows needs besides the rows.
struct Typing<'a> {
    store: &'a Store,
    samples: &'a SampleTable,
    with_logits: bool,
}

impl Typing<'_> {
    /// Appends the rows of `frame` to `selection`, views and logits.
    fn rows(&self, frame: &DataFrame, selection: &mut Selection) -> Result<(), SelectError> {
        let column = |name: &'static str| {
            move |e: PolarsError| SelectError::Column { column: name.into(), detail: e.to_string() }
        };
        let view_ids = i64_column(frame, c::VIEW_ID).map_err(column(c::VIEW_ID))?;
        let sample_ids = i64_column(frame, c::SAMPLE_ID).map_err(column(c::SAMPLE_ID))?;
        let labels = i64_column(frame, c::LABEL).map_err(column(c::LABEL))?;
        let recipes = interned_str_column(frame, c::RECIPE).map_err(column(c::RECIPE))?;
        let replicas = i64_column(frame, c::REPLICA).map_err(column(c::REPLICA))?;
        let hashes = u64_column(frame, c::INPUT_HASH).map_err(column(c::INPUT_HASH))?;
        let partners = opt_i64_column(frame, c::PARTNER_ID).map_err(column(c::PARTNER_ID))?;
        let lams = opt_f32_column(frame, c::LAM).map_err(column(c::LAM))?;
        if self.with_logits {
            let logits = flat_f32_list(frame, c::LOGITS_COLUMN, selection.classes)
                .map_err(|detail| SelectError::Column { column: c::LOGITS_COLUMN.into(), detail })?;
            selection.logits.extend_from_slice(&logits);
        }
        let seed = self.store.manifest.seed;
        selection.views.extend((0..frame.height()).map(|i| {
            let (partner_label, lam) = match (partners[i], lams[i]) {
                (Some(partner), Some(lam)) => (self.samples.labels[partner as usize], lam),
                _ => (labels[i], 1.0),
            };
            SelectedView {
                view_id: view_ids[i],
                sample_id: sample_ids[i],
                recipe: recipes[i].clone(),
                seed: view_seed(seed, sample_ids[i], &recipes[i], replicas[i] as u32),
                input_hash: hashes[i],
                label: labels[i],
                partner_id: partners[i],
                partner_label,
                lam,
            }
        }));
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("view {view_id}: recipe {recipe} is not in the store's pipeline")]
    UnknownRecipe { view_id: i64, recipe: String },
    #[error("view {view_id} (recipe {recipe}): replayed input hash {replayed:016x} differs from the stored {stored:016x}; the store and this kdstore disagree on how the view is made")]
    Mismatch { view_id: i64, recipe: String, stored: u64, replayed: u64 },
    #[error("the store's recipes: {0}")]
    Recipes(String),
    #[error("view {view_id} (sample {sample_id}): {source}")]
    Input {
        view_id: i64,
        sample_id: i64,
        #[source]
        source: crate::source::SourceError,
    },
}

/// Rebuilds views from (sample, recipe, seed) with the store's recipes.
pub struct Replayer<'a> {
    pub context: RenderContext<'a>,
    recipes: BTreeMap<String, Vec<OpConfig>>,
}

impl<'a> Replayer<'a> {
    pub fn new(store: &Store, samples: &'a SampleTable) -> Result<Replayer<'a>, ReplayError> {
        let recipes = manifest_recipes(&store.manifest).map_err(ReplayError::Recipes)?;
        Ok(Replayer { context: RenderContext::new(samples, &store.manifest), recipes })
    }

    /// Replays a view, in raw units, without checking it.
    pub fn replay(&self, view: &SelectedView) -> Result<RenderedView, ReplayError> {
        let ops = self
            .recipes
            .get(&*view.recipe)
            .ok_or_else(|| ReplayError::UnknownRecipe { view_id: view.view_id, recipe: view.recipe.to_string() })?;
        self.context.render(ops, view.seed, view.sample_id).map_err(|source| ReplayError::Input {
            view_id: view.view_id,
            sample_id: view.sample_id,
            source,
        })
    }

    /// Replays a view and fails unless its hash equals the stored one.
    pub fn replay_verified(&self, view: &SelectedView) -> Result<RenderedView, ReplayError> {
        let rendered = self.replay(view)?;
        if rendered.input_hash != view.input_hash {
            return Err(ReplayError::Mismatch {
                view_id: view.view_id,
                recipe: view.recipe.to_string(),
                stored: view.input_hash,
                replayed: rendered.input_hash,
            });
        }
        Ok(rendered)
    }
}

/// Errors of the commands that select and replay views (`export`, `show`).
#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("selecting views: {0}")]
    Select(#[from] SelectError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("no views of teacher {teacher} match{condition}")]
    Empty { teacher: String, condition: String },
    #[error("cannot write {path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

impl ViewsError {
    /// No views of `teacher` match `condition`.
    pub fn empty(teacher: &str, condition: Option<&str>) -> ViewsError {
        ViewsError::Empty {
            teacher: teacher.to_string(),
            condition: condition.map(|c| format!(" --where {c}")).unwrap_or_default(),
        }
    }
}

/// Loads the samples and selects the views of `teacher` matching `condition`; none is an error.
pub fn select_some(
    store: &Store,
    teacher: &str,
    condition: Option<&str>,
) -> Result<(SampleTable, Selection), ViewsError> {
    let samples = store.load_samples()?;
    let selection = select(store, &samples, teacher, condition)?;
    if selection.views.is_empty() {
        return Err(ViewsError::empty(teacher, condition));
    }
    Ok((samples, selection))
}

/// The stored logits of `teacher` on the rows of `labels` that satisfy `condition`, handed to
/// `each` a batch at a time as (view ids, their logits flat): what a second teacher of a
/// multi-teacher training contributes to the views selected once.
pub fn for_each_logits(
    store: &Store,
    teacher: &str,
    condition: &str,
    mut each: impl FnMut(&[i64], &[f32]) -> Result<(), SelectError>,
) -> Result<(), SelectError> {
    let sql = format!(
        "SELECT {}, {} FROM {} WHERE {} = {} AND ({condition})",
        c::VIEW_ID,
        c::LOGITS_COLUMN,
        c::LABELS,
        c::TEACHER,
        sql_quote(teacher)
    );
    let classes = store.manifest.dataset.class_names.len();
    query::for_each_batch(store, &sql, |batch| {
        let ids = i64_column(&batch, c::VIEW_ID)
            .map_err(|e| SelectError::Column { column: c::VIEW_ID.into(), detail: e.to_string() })?;
        let logits = flat_f32_list(&batch, c::LOGITS_COLUMN, classes)
            .map_err(|detail| SelectError::Column { column: c::LOGITS_COLUMN.into(), detail })?;
        drop(batch);
        each(&ids, &logits)
    })
}

/// The training samples a subset teacher learnt from (the `subsets` table), or None for a teacher
/// that has no rows there (it learnt from every training sample).
pub fn subset_of(store: &Store, teacher: &str) -> Result<Option<std::collections::HashSet<i64>>, SelectError> {
    let sql = format!("SELECT {} FROM {} WHERE {} = {}", c::SAMPLE_ID, c::SUBSETS, c::TEACHER, sql_quote(teacher));
    let frame = query::run(store, &sql).map_err(|e| SelectError::Query(e.to_string()))?;
    let ids = i64_column(&frame, c::SAMPLE_ID)
        .map_err(|e| SelectError::Column { column: c::SAMPLE_ID.into(), detail: e.to_string() })?;
    Ok((!ids.is_empty()).then(|| ids.into_iter().collect()))
}

/// A numeric SQL `expression` over `labels` (a difficulty: `teacher_loss`, `1 - p_label`, …) for
/// every view of `teacher` that satisfies `condition`, handed to `each` as (view id, value) a
/// batch of the query's result at a time, in no particular order. A null value is an error naming
/// the view.
pub fn for_each_number(
    store: &Store,
    teacher: &str,
    expression: &str,
    condition: &str,
    mut each: impl FnMut(i64, f64) -> Result<(), SelectError>,
) -> Result<(), SelectError> {
    let sql = format!(
        "SELECT {}, CAST(({expression}) AS DOUBLE) AS value FROM {} WHERE {} = {} AND ({condition})",
        c::VIEW_ID,
        c::LABELS,
        c::TEACHER,
        sql_quote(teacher)
    );
    let column = |e: PolarsError| SelectError::Column { column: expression.into(), detail: e.to_string() };
    query::for_each_batch(store, &sql, |batch| {
        let ids = i64_column(&batch, c::VIEW_ID)
            .map_err(|e| SelectError::Column { column: c::VIEW_ID.into(), detail: e.to_string() })?;
        let values = batch.column("value").and_then(|v| v.cast(&DataType::Float64)).map_err(column)?;
        for (id, value) in ids.into_iter().zip(values.f64().map_err(column)?.iter()) {
            match value {
                Some(value) => each(id, value)?,
                None => {
                    return Err(SelectError::Column {
                        column: expression.into(),
                        detail: format!("is null for view {id} of teacher {teacher}"),
                    })
                }
            }
        }
        Ok(())
    })
}

/// Every view's stored penultimate features for `teacher` (the `embeddings` table), by view id.
pub fn teacher_features(store: &Store, teacher: &str) -> Result<std::collections::HashMap<i64, Vec<f32>>, SelectError> {
    let sql = format!(
        "SELECT {}, {} FROM {} WHERE {} = {}",
        c::VIEW_ID,
        c::FEATURES,
        c::EMBEDDINGS,
        c::TEACHER,
        sql_quote(teacher)
    );
    let frame = query::run(store, &sql).map_err(|e| SelectError::Query(e.to_string()))?;
    let ids = i64_column(&frame, c::VIEW_ID)
        .map_err(|e| SelectError::Column { column: c::VIEW_ID.into(), detail: e.to_string() })?;
    let column = frame
        .column(c::FEATURES)
        .and_then(|c| c.cast(&DataType::List(Box::new(DataType::Float32))))
        .map_err(|e| SelectError::Column { column: c::FEATURES.into(), detail: e.to_string() })?;
    let lists = column.list().map_err(|e| SelectError::Column { column: c::FEATURES.into(), detail: e.to_string() })?;
    let mut features = std::collections::HashMap::with_capacity(ids.len());
    for (id, list) in ids.into_iter().zip(lists.amortized_iter()) {
        let values: Vec<f32> = list
            .map(|l| l.as_ref().f32().map(|v| v.into_no_null_iter().collect()))
            .transpose()
            .map_err(|e| SelectError::Column { column: c::FEATURES.into(), detail: e.to_string() })?
            .unwrap_or_default();
        features.insert(id, values);
    }
    Ok(features)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    fn view(view_id: i64) -> SelectedView {
        SelectedView {
            view_id,
            sample_id: view_id / 10,
            recipe: "identity".into(),
            seed: view_id as u64,
            input_hash: 0,
            label: 0,
            partner_id: None,
            partner_label: 0,
            lam: 1.0,
        }
    }

    /// Two logits per view that name it: (id, -id).
    fn selection(ids: &[i64]) -> Selection {
        Selection {
            views: ids.iter().map(|&id| view(id)).collect(),
            logits: ids.iter().flat_map(|&id| [id as f32, -(id as f32)]).collect(),
            classes: 2,
        }
    }

    #[test]
    fn permuting_in_place_gathers_as_a_copy_would() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for n in [0, 1, 2, 3, 10, 257] {
            for _ in 0..20 {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut rng);
                let items: Vec<usize> = (100..100 + n).collect();
                let expected: Vec<usize> = order.iter().map(|&i| items[i]).collect();
                let mut permuted = items.clone();
                permute(&mut permuted, order);
                assert_eq!(permuted, expected);
            }
        }
    }

    #[test]
    fn sorting_a_selection_carries_each_views_logits() {
        let mut ids: Vec<i64> = (0..500).map(|i| i * 3 + 1).collect();
        ids.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        let mut selection = selection(&ids);
        selection.sort();
        let sorted: Vec<i64> = selection.views.iter().map(|v| v.view_id).collect();
        assert_eq!(sorted, (0..500).map(|i| i * 3 + 1).collect::<Vec<_>>());
        for (index, view) in selection.views.iter().enumerate() {
            assert_eq!(selection.logits_of(index), [view.view_id as f32, -(view.view_id as f32)]);
            assert_eq!(view.seed, view.view_id as u64, "the view's own fields travel with it");
        }
    }
}
