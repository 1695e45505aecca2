//! Tables with one row per training sample that a run keeps as state (pskd's previous predictions,
//! AMAL's weights): a sample's row is its place among the samples in the order they first appear
//! in the selection, and a checkpoint stores the rows' sample ids beside the tables, so that a
//! checkpoint of other samples is refused rather than read into the wrong rows.

use std::collections::HashMap;
use std::path::Path;

use tch::Tensor;

/// Sample id → row.
pub struct SampleRows {
    rows: HashMap<i64, usize>,
}

impl SampleRows {
    /// Rows for `sample_ids` in order (an id seen before keeps its row).
    pub fn new(sample_ids: impl IntoIterator<Item = i64>) -> SampleRows {
        let mut rows = HashMap::new();
        for id in sample_ids {
            let next = rows.len();
            rows.entry(id).or_insert(next);
        }
        SampleRows { rows }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row of a selected sample.
    pub fn row(&self, sample_id: i64) -> usize {
        self.rows[&sample_id]
    }

    /// Writes `tensors` (one row per sample) with the rows' sample ids into `path` (safetensors).
    pub fn save(&self, path: &Path, tensors: &[(&str, Tensor)]) -> Result<(), tch::TchError> {
        let mut ids: Vec<(i64, usize)> = self.rows.iter().map(|(&id, &row)| (id, row)).collect();
        ids.sort_unstable_by_key(|&(_, row)| row);
        let ids: Vec<i64> = ids.into_iter().map(|(id, _)| id).collect();
        let mut named: Vec<(&str, Tensor)> = vec![("sample_id", Tensor::from_slice(&ids))];
        named.extend(tensors.iter().map(|(name, t)| (*name, t.shallow_clone())));
        Tensor::write_safetensors(&named, path)
    }

    /// Reads the tensors `names` that [`SampleRows::save`] wrote, after checking that they are of
    /// these samples, in this order.
    pub fn load(&self, path: &Path, names: &[&str]) -> Result<Vec<Tensor>, String> {
        let named = Tensor::read_safetensors(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let get = |name: &str| {
            named
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| format!("{}: no tensor {name}", path.display()))
        };
        let ids = Vec::<i64>::try_from(get("sample_id")?).map_err(|e| e.to_string())?;
        let same =
            ids.len() == self.rows.len() && ids.iter().enumerate().all(|(row, id)| self.rows.get(id) == Some(&row));
        if !same {
            return Err(format!("{}: the checkpoint's samples are not this run's", path.display()));
        }
        names.iter().map(|name| get(name)).collect()
    }
}
