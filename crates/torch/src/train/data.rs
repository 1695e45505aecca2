//! Training data from a store: the selected training views with their stored teacher logits (of
//! every teacher of the run), on disk and read a batch at a time ([`ViewFile`]), the replayer that
//! rebuilds them, and the evaluation splits.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::batches::{SampleGrouping, SampleViews};
use super::target::TargetRule;
use super::TrainError;
use crate::openmp::Team;
use kdstore_core::select::{
    for_each_logits, for_each_number, for_each_selected, select, Replayer, SelectError, SelectedView,
};
use kdstore_core::store::reader::SampleTable;
use kdstore_core::store::{Split, Store};
use kdstore_core::view_file::{Rows, TeacherRows, ViewFile, ViewFileWriter, ViewValues};

/// Everything a training run reads from the store.
pub struct TrainData {
    pub samples: SampleTable,
    /// The run's teachers (the first one's rows selected the views).
    pub teachers: Vec<String>,
    /// The selected views in `view_id` order, with every teacher's logits on them.
    pub views: ViewFile,
    pub classes: usize,
    /// Each teacher's logits on the identity view of each validation and test sample.
    pub evaluation_logits: Vec<HashMap<i64, Vec<f32>>>,
    /// The input channels the student sees (None: all).
    pub student_channels: Option<Vec<usize>>,
}

/// A split's samples (whose normalised identity inputs [`TrainData::identity_inputs`] reads a
/// batch at a time), labels and, where the teachers labelled them all, the ensemble's target (the
/// one teacher's logits, or the ensemble's log-probabilities) and each teacher's logits.
pub struct SplitData {
    pub sample_ids: Vec<i64>,
    pub labels: Vec<i64>,
    pub teacher_logits: Option<Vec<f32>>,
    pub each_teacher: Vec<Option<Vec<f32>>>,
}

/// What a run trains on: the views selected by `filter` (a SQL condition over `labels`, on the
/// first teacher's rows; over `views` without teachers), of the training samples in `only` (all
/// when None), and the channels the student sees.
pub struct Selecting<'a> {
    pub filter: Option<&'a str>,
    pub only: Option<&'a [i64]>,
    pub student_channels: Option<&'a [usize]>,
}

/// Loads the training views with every teacher's stored logits on them; without teachers, the
/// views alone (a run that learns from the labels).
pub fn load(store: &Store, teachers: &[String], selecting: &Selecting) -> Result<TrainData, TrainError> {
    let filter = selecting.filter;
    let samples = store.load_samples()?;
    let condition = match filter {
        Some(filter) => format!("split = 'train' AND ({filter})"),
        None => "split = 'train'".to_string(),
    };
    let classes = store.manifest.dataset.class_names.len();
    let only: Option<std::collections::HashSet<i64>> = selecting.only.map(|only| only.iter().copied().collect());
    let mut writer = ViewFileWriter::new(teachers.len(), classes);
    for_each_selected(store, &samples, teachers.first().map(String::as_str), &condition, |chunk| {
        for (index, view) in chunk.views.iter().enumerate() {
            if only.as_ref().is_none_or(|only| only.contains(&view.sample_id)) {
                let logits = if chunk.logits.is_empty() { &[][..] } else { chunk.logits_of(index) };
                writer.push(view, logits).map_err(spill_error)?;
            }
        }
        Ok(())
    })
    .map_err(|e| TrainError::Selection(e.to_string()))?;
    let mut views = writer.finish().map_err(file_error)?;
    if views.len() > u32::MAX as usize {
        return Err(TrainError::Selection(format!(
            "{} views selected, more than a run indexes ({}): select fewer with --where",
            views.len(),
            u32::MAX
        )));
    }
    if views.is_empty() {
        return Err(TrainError::Selection(format!(
            "no training views{} match{}",
            teachers.first().map(|t| format!(" of teacher {t}")).unwrap_or_default(),
            filter.map(|f| format!(" --where {f}")).unwrap_or_default()
        )));
    }
    if let Some(channels) = selecting.student_channels {
        let mut problems = Vec::new();
        let count = samples.sample_shape[0];
        kdstore_core::pipeline::teachers::check_channels("--student-channels", channels, Some(count), &mut problems);
        if !problems.is_empty() {
            return Err(TrainError::Config(problems.join("; ")));
        }
    }
    for (k, other) in teachers.iter().enumerate().skip(1) {
        let mut rows = TeacherRows::new(classes);
        for_each_logits(store, other, "split = 'train'", |ids, logits| {
            for (id, logits) in ids.iter().zip(logits.chunks_exact(classes)) {
                rows.push(*id, logits).map_err(spill_error)?;
            }
            Ok(())
        })
        .map_err(|e| TrainError::Selection(e.to_string()))?;
        let missing = views.fill_teacher(k, rows).map_err(file_error)?;
        if let Some(view) = missing {
            let unlabelled = SelectError::Unlabelled {
                teacher: other.clone(),
                view_id: view.view_id,
                sample_id: view.sample_id,
                recipe: view.recipe.to_string(),
            };
            return Err(TrainError::Selection(format!(
                "{unlabelled} that teacher {} labelled; every teacher of a run must have labelled the selected views",
                teachers[0]
            )));
        }
    }
    let mut evaluation_logits = Vec::with_capacity(teachers.len());
    for name in teachers {
        let evaluation = select(store, &samples, name, Some("recipe = 'identity' AND split <> 'train'"))
            .map_err(|e| TrainError::Selection(e.to_string()))?;
        evaluation_logits.push(
            evaluation.views.iter().enumerate().map(|(i, v)| (v.sample_id, evaluation.logits_of(i).to_vec())).collect(),
        );
    }
    Ok(TrainData {
        samples,
        teachers: teachers.to_vec(),
        views,
        classes,
        evaluation_logits,
        student_channels: selecting.student_channels.map(<[usize]>::to_vec),
    })
}

/// An error of the temporary file that holds the selected views.
fn spill_error(error: std::io::Error) -> SelectError {
    SelectError::Query(format!(
        "the selected views' temporary file in {} (TMPDIR): {error}",
        std::env::temp_dir().display()
    ))
}

/// [`spill_error`] as a training error.
fn file_error(error: std::io::Error) -> TrainError {
    TrainError::Selection(spill_error(error).to_string())
}

impl TrainData {
    /// Replays views into one flat, normalised input buffer (`verify_replay` checks them against
    /// their hashes).
    pub fn render(&self, replayer: &Replayer, views: &[&SelectedView]) -> Result<Vec<f32>, TrainError> {
        let mut inputs = vec![0.0; views.len() * self.samples.sample_len];
        self.render_into(replayer, views, &mut inputs)?;
        Ok(inputs)
    }

    /// As [`TrainData::render`], the views cut into contiguous runs, one per member of libtorch's
    /// OpenMP `team` (up to `threads`), each writing its own part of the buffer: the same values,
    /// and the error of the first view that fails.
    pub fn render_on_team(
        &self,
        replayer: &Replayer,
        views: &[&SelectedView],
        team: &Team,
        threads: usize,
    ) -> Result<Vec<f32>, TrainError> {
        let sample_len = self.samples.sample_len;
        let mut inputs = vec![0.0; views.len() * sample_len];
        let per_member = views.len().div_ceil(threads.max(1)).max(1);
        let jobs: Vec<_> = views
            .chunks(per_member)
            .zip(inputs.chunks_mut(per_member * sample_len))
            .map(|(views, part)| Mutex::new((views, part, Ok(()))))
            .collect();
        // OpenMP may start fewer members than asked for: each takes every `members`-th run.
        team.run(jobs.len(), &|member, members| {
            for job in jobs.iter().skip(member).step_by(members) {
                let mut job = job.lock().unwrap_or_else(|p| p.into_inner());
                let (views, part, outcome) = &mut *job;
                *outcome = self.render_into(replayer, views, part);
            }
        });
        for job in jobs {
            job.into_inner().unwrap_or_else(|p| p.into_inner()).2?;
        }
        Ok(inputs)
    }

    /// Replays `views` into `out`, one normalised sample after another.
    fn render_into(&self, replayer: &Replayer, views: &[&SelectedView], out: &mut [f32]) -> Result<(), TrainError> {
        for (view, sample) in views.iter().zip(out.chunks_exact_mut(self.samples.sample_len)) {
            sample.copy_from_slice(&replayer.replay(view)?.input);
            replayer.context.normalizer.apply(sample);
        }
        Ok(())
    }

    /// Every selected view replayed and normalised once, in `views` order (`--preload`).
    pub fn render_all(&self, replayer: &Replayer) -> Result<Vec<f32>, TrainError> {
        let mut inputs = Vec::with_capacity(self.views.len() * self.samples.sample_len);
        let indices: Vec<usize> = (0..self.views.len()).collect();
        for chunk in indices.chunks(4096) {
            let rows = self.rows(chunk)?;
            inputs.extend(self.render(replayer, &rows.views.iter().collect::<Vec<_>>())?);
        }
        Ok(inputs)
    }

    /// Replays `count` views chosen at random (all when `count` ≥ the number of views) and fails on
    /// the first whose input differs from what the teacher saw.
    pub fn verify_replay(&self, replayer: &Replayer, count: usize, seed: u64) -> Result<usize, TrainError> {
        let mut chosen: Vec<usize> = (0..self.views.len()).collect();
        if count < chosen.len() {
            chosen.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            chosen.truncate(count);
        }
        for view in &self.rows(&chosen)?.views {
            replayer.replay_verified(view)?;
        }
        Ok(chosen.len())
    }

    /// The selected views at `indices` with each teacher's stored logits on them.
    pub fn rows(&self, indices: &[usize]) -> Result<Rows, TrainError> {
        self.views.read(indices).map_err(file_error)
    }

    /// Hands every selected view to `each` in selection order, with its index (one pass over the
    /// file): how what needs a value per view sets itself up without holding the views.
    pub fn each_view(
        &self,
        mut each: impl FnMut(usize, SelectedView) -> Result<(), TrainError>,
    ) -> Result<(), TrainError> {
        enum Failed {
            Read(std::io::Error),
            Train(TrainError),
        }
        impl From<std::io::Error> for Failed {
            fn from(error: std::io::Error) -> Failed {
                Failed::Read(error)
            }
        }
        self.views.for_each(|index, view| each(index, view).map_err(Failed::Train)).map_err(|failed| match failed {
            Failed::Read(error) => file_error(error),
            Failed::Train(error) => error,
        })
    }

    /// A numeric SQL `expression` over `teacher`'s rows of `labels` that satisfy `condition` (a
    /// stored difficulty or weight), for each selected view in selection order: None for a view
    /// that has no such row. The rows stream out of the query and are sorted by view id on disk,
    /// so that this costs 16 bytes a selected view, not a table of every row.
    pub fn stored_values(
        &self,
        store: &Store,
        teacher: &str,
        expression: &str,
        condition: &str,
    ) -> Result<Vec<Option<f64>>, String> {
        let mut values = ViewValues::default();
        for_each_number(store, teacher, expression, condition, |id, value| values.push(id, value).map_err(spill_error))
            .map_err(|e| e.to_string())?;
        self.views.values_of(values).map_err(|e| spill_error(e).to_string())
    }

    /// The ids of the samples of `by_sample` in the order their first view comes in the selection:
    /// the rows of the per-sample tables (pskd's predictions, AMAL's weights).
    pub fn samples_in_selection_order(&self, by_sample: &[SampleViews]) -> Result<Vec<i64>, TrainError> {
        let mut firsts: Vec<usize> = by_sample.iter().filter_map(|s| s.all().min()).collect();
        firsts.sort_unstable();
        Ok(self.rows(&firsts)?.views.iter().map(|v| v.sample_id).collect())
    }

    /// The selected views of each training sample, in sample id order (one pass over the file).
    pub fn by_sample(&self) -> Result<Vec<SampleViews>, TrainError> {
        let mut grouping = SampleGrouping::default();
        self.each_view(|index, view| {
            grouping.add(index, &view);
            Ok(())
        })?;
        Ok(grouping.finish())
    }

    /// The sample shape the student sees.
    pub fn student_shape(&self) -> Vec<usize> {
        kdstore_core::channels::shape_with(&self.samples.sample_shape, self.student_channels.as_deref())
    }

    /// Full inputs (flat samples) reduced to the student's channels.
    pub fn student_inputs<'a>(&self, inputs: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
        match &self.student_channels {
            Some(channels) => kdstore_core::channels::select(inputs, &self.samples.sample_shape, channels).into(),
            None => inputs.into(),
        }
    }

    /// The identity views of `sample_ids`, normalised as `render`'s, one after the other.
    pub fn identity_inputs(&self, replayer: &Replayer, sample_ids: &[i64]) -> Result<Vec<f32>, TrainError> {
        let ids: Vec<usize> = sample_ids.iter().map(|&i| i as usize).collect();
        let mut inputs = self.samples.inputs_of(&ids).map_err(TrainError::Input)?;
        for sample in inputs.chunks_mut(self.samples.sample_len) {
            replayer.context.normalizer.apply(sample);
        }
        Ok(inputs)
    }

    /// A split's samples with labels, each teacher's logits and the target that `rule` makes of
    /// them.
    pub fn split(&self, split: Split, rule: &TargetRule) -> Result<SplitData, TrainError> {
        let ids = self.samples.ids_in(split);
        let labels: Vec<i64> = ids.iter().map(|&i| self.samples.labels[i]).collect();
        let each_teacher: Vec<Option<Vec<f32>>> = self
            .evaluation_logits
            .iter()
            .map(|stored| {
                let rows: Option<Vec<Vec<f32>>> = ids.iter().map(|&i| stored.get(&(i as i64)).cloned()).collect();
                rows.map(|rows| rows.concat())
            })
            .collect();
        let complete: Option<Vec<&[f32]>> = each_teacher.iter().map(|t| t.as_deref()).collect();
        let teacher_logits = match complete {
            Some(teachers) if !labels.is_empty() && !teachers.is_empty() => {
                Some(rule.evaluation_logits(&teachers, &labels, self.classes)?)
            }
            _ => None,
        };
        Ok(SplitData { sample_ids: ids.iter().map(|&i| i as i64).collect(), labels, teacher_logits, each_teacher })
    }
}
