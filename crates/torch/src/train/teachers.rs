//! The teachers of a training run and the rule that makes their target: which teachers `--teacher`
//! names (names or globs), what several teachers allow (an ensemble of at least two, logit losses
//! only, no co-training), and the rule resolved before the first step — the DE weights searched
//! on the validation split's stored logits, the curriculum's strata assigned from a stored
//! difficulty. What was resolved goes into results.json as [`EnsembleReport`].

use serde::Serialize;

use super::curriculum::difficulty_of;
use super::data::{SplitData, TrainData};
use super::de_weights::{self, DeWeights};
use super::metrics::split_metrics;
use super::target::{self, EnsembleChoice, TargetRule};
use super::{TrainConfig, TrainError};
use crate::build::load_classifier;
use crate::losses::ensemble::{temperature_of, Ensemble};
use crate::losses::LossConfig;
use kdstore_core::augment::seed::purpose_seed;
use kdstore_core::select::subset_of;
use kdstore_core::store::{Split, Store};

/// What a multi-teacher run resolved, for results.json.
#[derive(Debug, Clone, Serialize)]
pub struct EnsembleReport {
    pub kind: &'static str,
    pub teachers: Vec<String>,
    /// Each teacher's parameters (`curriculum` orders the teachers by them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<i64>>,
    /// `de`: the weights found, with the validation accuracies of the weighted and equal averages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub de: Option<DeWeights>,
    /// `curriculum`: the training views each teacher teaches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curriculum: Option<CurriculumReport>,
    /// Accuracy of the ensemble's evaluation target (see `target`) on the validation and test splits.
    pub validation_accuracy: Option<f64>,
    pub test_accuracy: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurriculumReport {
    pub difficulty: String,
    /// The teacher whose `labels` rows the difficulty is read from (the largest).
    pub ranked_by: String,
    /// Training views per teacher, in the run's teacher order.
    pub views: Vec<usize>,
}

impl EnsembleReport {
    /// The accuracy of the ensemble's evaluation target on the validation and test splits.
    pub fn evaluate(&mut self, val: &SplitData, test: &SplitData, classes: usize) {
        let accuracy = |split: &SplitData| {
            split.teacher_logits.as_ref().map(|target| split_metrics(target, &split.labels, None, classes).accuracy)
        };
        self.validation_accuracy = accuracy(val);
        self.test_accuracy = accuracy(test);
    }
}

/// The rule of a run over `data`'s teachers, and its report (None for one teacher).
pub fn resolve(
    store: &Store,
    config: &TrainConfig,
    data: &TrainData,
) -> Result<(TargetRule, Option<EnsembleReport>), TrainError> {
    let teachers = &data.teachers;
    let choice = match (&config.ensemble, teachers.len()) {
        (None, 0 | 1) => return Ok((TargetRule::One, None)),
        (None, _) => {
            return Err(TrainError::Config(format!(
                "--teacher names {} teachers ({}): say how they teach with --ensemble {}",
                teachers.len(),
                teachers.join(", "),
                EnsembleChoice::NAMES.join("|")
            )))
        }
        (Some(choice @ EnsembleChoice::Amal(_)), 1) => choice,
        (Some(choice), 0 | 1) => {
            return Err(TrainError::Config(format!(
                "--ensemble {} needs at least two teachers, and --teacher {} names only {}",
                choice.name(),
                config.teachers.join(" --teacher "),
                teachers.first().map_or("none", String::as_str)
            )))
        }
        (Some(choice), _) => choice,
    };
    if config.co_train {
        return Err(TrainError::Config("--co-train trains one teacher with the student: name one --teacher".into()));
    }
    for term in &config.losses {
        check_loss(choice, &term.config).map_err(TrainError::Config)?;
    }
    let mut report = EnsembleReport {
        kind: choice.name(),
        teachers: teachers.clone(),
        parameters: None,
        de: None,
        curriculum: None,
        validation_accuracy: None,
        test_accuracy: None,
    };
    let rule = match choice {
        EnsembleChoice::Amal(_) => {
            if data.samples.ids_in(Split::Val).is_empty() {
                return Err(TrainError::Config(
                    "--ensemble amal learns its weights on the validation split, and the store has none (set split.val_fraction in the pipeline)".into(),
                ));
            }
            if config.online || config.torchscript_student.is_some() {
                return Err(TrainError::Config(
                    "--ensemble amal reads the stored logits and a built-in student's last layer: it goes with neither --online nor --student-torchscript".into(),
                ));
            }
            TargetRule::Mixed
        }
        EnsembleChoice::Mean => TargetRule::Combined(Ensemble::Mean),
        EnsembleChoice::Camkd => TargetRule::Combined(Ensemble::Camkd),
        EnsembleChoice::Ebkd => TargetRule::Combined(Ensemble::Ebkd),
        EnsembleChoice::Random { unseen } => TargetRule::Random {
            seed: purpose_seed(config.seed, "ensemble-random"),
            allowed: unseen.then(|| unseen_masks(store, data)).transpose()?,
        },
        EnsembleChoice::De => {
            let found = search_de_weights(data, config.seed)?;
            let rule = TargetRule::Weighted(found.weights.clone());
            report.de = Some(found);
            rule
        }
        EnsembleChoice::Curriculum { difficulty } => {
            let parameters = teachers
                .iter()
                .map(|name| {
                    let info = store.manifest.teacher(name).expect("resolved from the manifest");
                    load_classifier(&store.root, info, tch::Device::Cpu)
                        .map_err(|e| TrainError::Config(e.to_string()))?
                        .parameters()
                        .map_err(|e| TrainError::Config(e.to_string()))
                })
                .collect::<Result<Vec<i64>, _>>()?;
            // Smallest first; equal sizes keep the order given.
            let mut by_size: Vec<usize> = (0..teachers.len()).collect();
            by_size.sort_by_key(|&k| parameters[k]);
            let ranked_by = teachers[*by_size.last().expect("two teachers")].clone();
            let failed = |e: String| TrainError::Config(format!("--ensemble-difficulty {difficulty}: {e}"));
            let values = data.stored_values(store, &ranked_by, difficulty, "split = 'train'").map_err(failed)?;
            let mut keyed = Vec::with_capacity(values.len());
            data.each_view(|index, view| {
                keyed.push((difficulty_of(&view, values[index]).map_err(failed)?, view.view_id));
                Ok(())
            })?;
            let assigned = target::curriculum(&keyed, &by_size);
            let mut views = vec![0; teachers.len()];
            assigned.iter().for_each(|&k| views[k] += 1);
            report.parameters = Some(parameters);
            report.curriculum = Some(CurriculumReport { difficulty: difficulty.clone(), ranked_by, views });
            TargetRule::Assigned(assigned)
        }
    };
    Ok((rule, Some(report)))
}

/// For each selected view, the teachers (bits) whose subset left its sample out: RoS-KD's
/// "teachers that did not train on the sample". A teacher without a subset trained on them all.
fn unseen_masks(store: &Store, data: &TrainData) -> Result<Vec<u64>, TrainError> {
    if data.teachers.len() > 64 {
        return Err(TrainError::Config("--random-unseen draws among at most 64 teachers".into()));
    }
    let mut subsets = Vec::with_capacity(data.teachers.len());
    for name in &data.teachers {
        subsets.push(subset_of(store, name).map_err(|e| TrainError::Selection(e.to_string()))?);
    }
    if subsets.iter().all(Option::is_none) {
        return Err(TrainError::Config(format!(
            "--random-unseen: none of the teachers ({}) trained on a subset, so every one saw every sample; give the pipeline's teacher `subsets`",
            data.teachers.join(", ")
        )));
    }
    let mut masks = Vec::with_capacity(data.views.len());
    data.each_view(|_, view| {
        masks.push(subsets.iter().enumerate().fold(0u64, |mask, (k, subset)| match subset {
            Some(seen) if !seen.contains(&view.sample_id) => mask | (1 << k),
            _ => mask,
        }));
        Ok(())
    })?;
    Ok(masks)
}

/// Whether a loss can learn from the ensemble `choice` makes.
fn check_loss(choice: &EnsembleChoice, loss: &LossConfig) -> Result<(), String> {
    let name = loss.name();
    if loss.needs_teacher_features() {
        return Err(format!(
            "--loss {name} reads the teacher's features, and a run with several teachers combines logits only: train it from one --teacher"
        ));
    }
    let reads_logits = temperature_of(loss).is_some();
    match choice {
        _ if loss.teacher_free() => Ok(()),
        EnsembleChoice::Amal(_) if !matches!(loss, LossConfig::Kd(_)) => Err(format!(
            "--ensemble amal weighs CE and each teacher's KD per sample (the kd term's temperature, its ce_weight and kd_weight as the starting weights): use --loss kd, not {name}"
        )),
        EnsembleChoice::Camkd | EnsembleChoice::Ebkd if !matches!(loss, LossConfig::Kd(_)) => Err(format!(
            "--ensemble {} weights per-sample KL terms, which only kd has (CA-MKD's and EBKD's logit loss); use --ensemble mean, de, random or curriculum with {name}",
            choice.name()
        )),
        _ if !reads_logits => Err(format!("--loss {name} reads no teacher logits, so it has nothing to ensemble")),
        _ => Ok(()),
    }
}

/// DE weights from every teacher's stored logits on the validation split's identity views.
fn search_de_weights(data: &TrainData, seed: u64) -> Result<DeWeights, TrainError> {
    let ids = data.samples.ids_in(Split::Val);
    if ids.is_empty() {
        return Err(TrainError::Config(
            "--ensemble de fits its weights on the validation split, and the store has none (set split.val_fraction in the pipeline)".into(),
        ));
    }
    let mut logits = Vec::with_capacity(data.teachers.len());
    for (name, stored) in data.teachers.iter().zip(&data.evaluation_logits) {
        let mut flat = Vec::with_capacity(ids.len() * data.classes);
        for &id in &ids {
            let row = stored.get(&(id as i64)).ok_or_else(|| {
                TrainError::Config(format!(
                    "--ensemble de: teacher {name} has no logits on validation sample {id}'s identity view"
                ))
            })?;
            flat.extend_from_slice(row);
        }
        logits.push(flat);
    }
    let labels: Vec<i64> = ids.iter().map(|&i| data.samples.labels[i]).collect();
    let views: Vec<&[f32]> = logits.iter().map(Vec::as_slice).collect();
    Ok(de_weights::search(&views, &labels, data.classes, purpose_seed(seed, "ensemble-de")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::parse_terms;

    fn loss(name: &str) -> LossConfig {
        parse_terms(&[name.to_string()], &[]).unwrap().remove(0).config
    }

    #[test]
    fn weighted_ensembles_take_kd_and_ce_and_feature_losses_take_one_teacher() {
        assert!(check_loss(&EnsembleChoice::Camkd, &loss("kd")).is_ok());
        assert!(check_loss(&EnsembleChoice::Ebkd, &loss("ce")).is_ok());
        let error = check_loss(&EnsembleChoice::Camkd, &loss("dist")).unwrap_err();
        assert!(error.contains("use --ensemble mean, de, random or curriculum with dist"), "{error}");
        for choice in [EnsembleChoice::Mean, EnsembleChoice::De, EnsembleChoice::Random { unseen: false }] {
            assert!(check_loss(&choice, &loss("dkd")).is_ok());
        }
        assert!(check_loss(&EnsembleChoice::Mean, &loss("sp")).unwrap_err().contains("features"));
    }
}
