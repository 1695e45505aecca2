//! The labelling stage: every view of a views part replayed from its seed, checked against its
//! stored hash, run through the teacher in fixed chunks (one intra-op thread each, so the logits
//! do not depend on `--threads`) and summarised by the per-row statistics.

use std::collections::BTreeMap;
use std::path::Path;

use kdstore_core::augment::OpConfig;
use kdstore_core::pipeline::parallel::parallel_chunks;
use kdstore_core::pipeline::views::RenderContext;
use kdstore_core::pipeline::BuildError;
use kdstore_core::progress::Progress;
use kdstore_core::store::reader::SampleTable;
use kdstore_core::store::stats::{logits_row, ViewTarget};
use kdstore_core::store::writer::{LogitsRow, ViewRow};
use kdstore_core::store::TeacherInfo;

use super::teacher::load_classifier;

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
    context: &RenderContext,
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
                let mut rendered = context.render(ops, view.seed, view.sample_id)?;
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
    refuse_non_finite(info, label, &rows)?;
    Ok(rows)
}

/// A teacher output that is not finite (a diverged or broken teacher) must never be stored.
fn refuse_non_finite(info: &TeacherInfo, part: &str, rows: &[(LogitsRow, Vec<f32>)]) -> Result<(), BuildError> {
    let finite = |values: &[f32]| values.iter().all(|v| v.is_finite());
    let refuse = |what: &str, ids: Vec<i64>| -> Result<(), BuildError> {
        if ids.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = ids.iter().take(5).map(i64::to_string).collect();
        Err(BuildError::NonFinite {
            teacher: info.name.clone(),
            part: part.to_string(),
            what: what.to_string(),
            count: ids.len(),
            view_ids: if ids.len() > 5 { format!("{} …", shown.join(", ")) } else { shown.join(", ") },
        })
    };
    refuse("logits", rows.iter().filter(|(row, _)| !finite(&row.logits)).map(|(row, _)| row.view_id).collect())?;
    refuse("features", rows.iter().filter(|(_, features)| !finite(features)).map(|(row, _)| row.view_id).collect())
}

/// Each split's share of views whose teacher prediction is right.
pub(super) fn split_accuracy(views: &[ViewRow], rows: &[LogitsRow], samples: &SampleTable) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (view, row) in views.iter().zip(rows) {
        let entry = counts.entry(samples.splits[view.sample_id as usize].as_str().to_string()).or_default();
        entry.0 += usize::from(row.teacher_correct);
        entry.1 += 1;
    }
    counts.into_iter().map(|(split, (correct, total))| (split, correct as f64 / total as f64)).collect()
}
