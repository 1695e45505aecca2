//! The teachers of a pipeline: the checks of every `[[teacher]]` (settings, checkpoints, subsets,
//! channels), which teacher a `distill_from` names, and the order the build trains them in — every
//! teacher after the one it learns from, so that a chain (big → assistant → smaller assistant) is
//! one build. A dangling or cyclic `distill_from` is a problem naming the teachers involved.

use std::collections::HashSet;

use super::config::{PipelineFile, TeacherConfig};
use crate::arch::ArchKind;
use crate::store::writer::LogitsFormat;

/// The training samples that subset `k` of the teacher `name` learns from: `fraction` of
/// `train_ids` (rounded, at least one), drawn without replacement from the pipeline seed, ascending.
pub fn subset_samples(train_ids: &[usize], fraction: f64, seed: u64, name: &str, k: usize) -> Vec<i64> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let count = ((train_ids.len() as f64 * fraction).round() as usize).clamp(1, train_ids.len().max(1));
    let mut rng =
        rand_chacha::ChaCha8Rng::seed_from_u64(crate::augment::seed::purpose_seed(seed, &format!("subset/{name}/{k}")));
    let mut chosen: Vec<i64> = train_ids.choose_multiple(&mut rng, count).map(|&i| i as i64).collect();
    chosen.sort_unstable();
    chosen
}

/// The index of the `[[teacher]]` that stores the teacher `name` (itself, a subset or a checkpoint).
pub fn owner_of(teachers: &[TeacherConfig], name: &str) -> Option<usize> {
    teachers.iter().position(|t| t.produced().iter().any(|p| p.name == name))
}

/// The `[[teacher]]` indices in training order: each after the one it distils from, otherwise in
/// file order. Fails on a dangling or cyclic `distill_from`.
pub fn training_order(teachers: &[TeacherConfig]) -> Result<Vec<usize>, String> {
    let mut order = Vec::with_capacity(teachers.len());
    let mut state = vec![0u8; teachers.len()]; // 0 new, 1 on the current path, 2 placed
    fn visit(
        index: usize,
        teachers: &[TeacherConfig],
        state: &mut [u8],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), String> {
        match state[index] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&i| i == index).expect("on the path");
                let cycle: Vec<&str> = path[start..].iter().chain([&index]).map(|&i| teachers[i].name()).collect();
                return Err(format!("distill_from forms a cycle: {}", cycle.join(" → ")));
            }
            _ => {}
        }
        state[index] = 1;
        path.push(index);
        if let Some(source) = teachers[index].distill_from() {
            let owner = owner_of(teachers, source).ok_or_else(|| {
                let known: Vec<String> = teachers.iter().flat_map(|t| t.produced()).map(|p| p.name).collect();
                format!(
                    "teacher '{}': distill_from = '{source}' names no teacher of this pipeline (it has: {})",
                    teachers[index].name(),
                    known.join(", ")
                )
            })?;
            visit(owner, teachers, state, path, order)?;
        }
        path.pop();
        state[index] = 2;
        order.push(index);
        Ok(())
    }
    for index in 0..teachers.len() {
        visit(index, teachers, &mut state, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// Every problem of the pipeline's teachers. `series` says whether the source gives series (None:
/// unknown), `channels` how many input channels it has where that is known without reading it.
pub fn check(file: &PipelineFile, series: Option<bool>, channels: Option<usize>, problems: &mut Vec<String>) {
    if file.teachers.is_empty() {
        problems.push("teacher: at least one [[teacher]] is needed".into());
    }
    let mut names = HashSet::new();
    for (index, teacher) in file.teachers.iter().enumerate() {
        let location = format!("teacher {} ('{}')", index + 1, teacher.name());
        if !super::plan::valid_name(teacher.name()) {
            problems.push(format!("{location}: name must be 1-64 letters, digits, '-' or '_'"));
        } else if !names.insert(teacher.name().to_string()) {
            problems.push(format!("{location}: a teacher with this name already exists"));
        }
        if let Some(selected) = teacher.input_channels() {
            check_channels(&location, selected, channels, problems);
        }
        check_logits_format(&location, teacher, problems);
        if let TeacherConfig::Builtin { .. } = teacher {
            check_builtin(&location, teacher, series, problems);
        }
    }
    if let Err(problem) = training_order(&file.teachers) {
        problems.push(problem);
    }
}

/// `logits_format`: at least one class kept, and not beside a `logits_dtype` it overrides.
fn check_logits_format(location: &str, teacher: &TeacherConfig, problems: &mut Vec<String>) {
    if teacher.logits_formats_conflict() {
        problems.push(format!(
            "{location}: logits_format stores top-k log-probabilities in its own `values` type; remove logits_dtype"
        ));
    }
    if let LogitsFormat::TopK(top) = teacher.logits_format() {
        if top.top_k == 0 {
            problems.push(format!("{location}: logits_format.top_k must be >= 1"));
        }
    }
}

/// `input_channels`: distinct, at least one, and inside the input where its channels are known.
pub fn check_channels(location: &str, selected: &[usize], channels: Option<usize>, problems: &mut Vec<String>) {
    if selected.is_empty() {
        problems.push(format!("{location}: input_channels is empty (leave it out for every channel)"));
    }
    let mut seen = HashSet::new();
    for &channel in selected {
        if !seen.insert(channel) {
            problems.push(format!("{location}: input_channels names channel {channel} twice"));
        }
        if let Some(count) = channels.filter(|&count| channel >= count) {
            problems.push(format!(
                "{location}: input_channels names channel {channel}, outside the input's {count} channels (0-{})",
                count - 1
            ));
        }
    }
}

fn check_builtin(location: &str, teacher: &TeacherConfig, series: Option<bool>, problems: &mut Vec<String>) {
    let TeacherConfig::Builtin {
        arch,
        width,
        depth,
        epochs,
        batch_size,
        learning_rate,
        weight_decay,
        momentum,
        warmup_epochs,
        distill_from,
        loss,
        checkpoints,
        subsets,
        ..
    } = teacher
    else {
        return;
    };
    match (arch, series) {
        (ArchKind::Cnn1d, Some(false)) => problems
            .push(format!("{location}: arch cnn1d needs series input, but the source gives images (use cnn2d or mlp)")),
        (ArchKind::Cnn2d, Some(true)) => problems
            .push(format!("{location}: arch cnn2d needs image input, but the source gives series (use cnn1d or mlp)")),
        _ => {}
    }
    if *width < 1 || *depth < 1 {
        problems.push(format!("{location}: width and depth must be >= 1, got {width} and {depth}"));
    }
    if *epochs == 0 {
        problems.push(format!("{location}: epochs must be >= 1"));
    }
    if *batch_size == 0 {
        problems.push(format!("{location}: batch_size must be >= 1"));
    }
    if !(learning_rate.is_finite() && *learning_rate > 0.0) {
        problems.push(format!("{location}: learning_rate must be > 0, got {learning_rate}"));
    }
    if !(weight_decay.is_finite() && *weight_decay >= 0.0) {
        problems.push(format!("{location}: weight_decay must be >= 0, got {weight_decay}"));
    }
    if !(0.0..1.0).contains(momentum) {
        problems.push(format!("{location}: momentum must be in [0, 1), got {momentum}"));
    }
    if *warmup_epochs >= *epochs && *epochs > 0 {
        problems.push(format!("{location}: warmup_epochs ({warmup_epochs}) must be fewer than epochs ({epochs})"));
    }
    if distill_from.is_none() {
        if let Some(reads) = loss.iter().map(|l| l.split('=').next().unwrap_or("").trim()).find(|l| *l != "ce") {
            problems.push(format!(
                "{location}: loss {reads} learns from a teacher's logits: add distill_from = \"NAME\", or train from the labels with loss = [\"ce\"]"
            ));
        }
    }
    let mut previous = 0;
    for &epoch in checkpoints {
        if epoch == 0 || epoch >= *epochs {
            problems.push(format!(
                "{location}: checkpoints: epoch {epoch} is not before the last epoch ({epochs}); the last one is the teacher itself"
            ));
        } else if epoch <= previous {
            problems.push(format!("{location}: checkpoints must be increasing, got {epoch} after {previous}"));
        }
        previous = previous.max(epoch);
    }
    if let Some(subsets) = subsets {
        if subsets.count < 2 {
            problems.push(format!("{location}: subsets.count must be >= 2, got {}", subsets.count));
        }
        if !(subsets.fraction > 0.0 && subsets.fraction <= 1.0) {
            problems.push(format!("{location}: subsets.fraction must be in (0, 1], got {}", subsets.fraction));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teacher(name: &str, distill_from: Option<&str>, extra: &str) -> TeacherConfig {
        let text = format!(
            "kind = \"builtin\"\nname = \"{name}\"\narch = \"mlp\"\n{}{extra}",
            distill_from.map(|d| format!("distill_from = \"{d}\"\n")).unwrap_or_default()
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn teachers_train_after_the_teacher_they_learn_from() {
        let teachers = vec![
            teacher("small", Some("ta"), ""),
            teacher("ta", Some("big@e4"), ""),
            teacher("big", None, "epochs = 8\ncheckpoints = [4]"),
            teacher("other", None, ""),
        ];
        assert_eq!(training_order(&teachers).unwrap(), [2, 1, 0, 3]);
        assert_eq!(owner_of(&teachers, "big@e4"), Some(2));
        let names: Vec<String> = teachers[2].produced().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["big@e4", "big"]);
    }

    #[test]
    fn cycles_and_dangling_names_are_named() {
        let cycle = vec![teacher("a", Some("b"), ""), teacher("b", Some("c"), ""), teacher("c", Some("a"), "")];
        assert_eq!(training_order(&cycle).unwrap_err(), "distill_from forms a cycle: a → b → c → a");
        let own = vec![teacher("a", Some("a@e2"), "epochs = 4\ncheckpoints = [2]")];
        assert_eq!(training_order(&own).unwrap_err(), "distill_from forms a cycle: a → a");
        let dangling =
            vec![teacher("a", Some("nope"), ""), teacher("b", None, "subsets = { count = 2, fraction = 0.5 }")];
        let error = training_order(&dangling).unwrap_err();
        assert!(
            error
                .contains("teacher 'a': distill_from = 'nope' names no teacher of this pipeline (it has: a, b#0, b#1)"),
            "{error}"
        );
    }

    #[test]
    fn subsets_draw_their_own_overlapping_samples_from_the_seed() {
        let ids: Vec<usize> = (0..100).collect();
        let a = subset_samples(&ids, 0.6, 1, "t", 0);
        let b = subset_samples(&ids, 0.6, 1, "t", 1);
        assert_eq!((a.len(), b.len()), (60, 60));
        assert_eq!(a, subset_samples(&ids, 0.6, 1, "t", 0));
        assert_ne!(a, b);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        let shared = a.iter().filter(|i| b.contains(i)).count();
        assert!(shared > 20 && shared < 60, "overlapping: {shared}");
    }

    #[test]
    fn subsets_and_checkpoints_name_their_teachers() {
        let t = teacher("t", None, "epochs = 6\ncheckpoints = [2]\nsubsets = { count = 2, fraction = 0.5 }");
        let names: Vec<String> = t.produced().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["t#0@e2", "t#0", "t#1@e2", "t#1"]);
        let mut problems = Vec::new();
        check_channels("teacher 1 ('t')", &[0, 7, 0], Some(6), &mut problems);
        assert_eq!(
            problems,
            [
                "teacher 1 ('t'): input_channels names channel 7, outside the input's 6 channels (0-5)",
                "teacher 1 ('t'): input_channels names channel 0 twice"
            ]
        );
    }
}
