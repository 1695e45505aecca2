//! A run's test-set predictions, kept beside its weights as `predictions.parquet`: one row per
//! test sample with its id, label, the student's top class, that class's probability and the
//! label's probability (what a reliability diagram, an error analysis or a significance test
//! across runs needs, without loading the student again).

use super::metrics::{argmax, log_softmax};
use kdstore_core::query::Values;

pub const FILE: &str = "predictions.parquet";

/// The table's columns for `logits` (row-major, `classes` per row) of the samples `ids`.
pub fn columns(ids: &[i64], labels: &[i64], logits: &[f32], classes: usize) -> Vec<(&'static str, Values)> {
    let rows: Vec<(i64, f64, f64)> = logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &label)| {
            let log_p = log_softmax(row);
            let top = argmax(row);
            (top as i64, log_p[top].exp(), log_p[label as usize].exp())
        })
        .collect();
    vec![
        ("sample_id", Values::Int(ids.to_vec())),
        ("label", Values::Int(labels.to_vec())),
        ("prediction", Values::Int(rows.iter().map(|r| r.0).collect())),
        ("max_probability", Values::Float(rows.iter().map(|r| Some(r.1)).collect())),
        ("label_probability", Values::Float(rows.iter().map(|r| Some(r.2)).collect())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_has_its_top_class_and_both_probabilities() {
        let logits = [2.0f32, 0.0, 0.0, 0.0, 3.0, 0.0];
        let columns = columns(&[7, 9], &[0, 2], &logits, 3);
        let find = |name: &str| &columns.iter().find(|(n, _)| *n == name).unwrap().1;
        let Values::Int(prediction) = find("prediction") else { panic!() };
        assert_eq!(prediction, &vec![0, 1]);
        let Values::Float(max) = find("max_probability") else { panic!() };
        let Values::Float(label) = find("label_probability") else { panic!() };
        let p0 = 2f64.exp() / (2f64.exp() + 2.0);
        assert!((max[0].unwrap() - p0).abs() < 1e-12 && (label[0].unwrap() - p0).abs() < 1e-12);
        let p1 = 3f64.exp() / (3f64.exp() + 2.0);
        assert!((max[1].unwrap() - p1).abs() < 1e-12);
        assert!((label[1].unwrap() - 1.0 / (3f64.exp() + 2.0)).abs() < 1e-12);
    }
}
