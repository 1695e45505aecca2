//! A training selection kept on disk instead of in memory: one fixed-size record per selected
//! view (what replay and the losses need, and each teacher's logits on the view), in `view_id`
//! order, in an unnamed temporary file (`TMPDIR`, else `/tmp`; gone when the run ends, however it
//! ends). A batch reads its records by index; the page cache, not the process, holds the file.
//! The query's rows come in any order: they are sorted on the way in ([`crate::sorted_runs`]),
//! so a ten-million-view selection costs the run a bounded buffer, not 130 bytes per view.
//!
//! A record, little-endian: view_id i64, sample_id i64, seed u64, input_hash u64, label i64,
//! partner_id i64 (i64::MIN: none), partner_label i64, lam f32, recipe u32 (an index into the
//! file's recipe names), then `classes` f32 logits for each teacher in the run's order.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::select::SelectedView;
use crate::sorted_runs::{key_of, Merged, SortedRuns};

/// The bytes of a record before its logits.
const HEADER: usize = 64;
/// No partner.
const UNMIXED: i64 = i64::MIN;
/// Records read or written at once when a pass goes through the whole file.
const BLOCK: usize = 4096;

/// The selected views on disk.
pub struct ViewFile {
    file: File,
    len: usize,
    teachers: usize,
    classes: usize,
    recipes: Vec<Arc<str>>,
}

/// Some of a file's views, and each teacher's logits on them flat, in the order asked for.
pub struct Rows {
    pub views: Vec<SelectedView>,
    pub logits: Vec<Vec<f32>>,
}

impl ViewFile {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn record_len(&self) -> usize {
        HEADER + self.teachers * self.classes * 4
    }

    /// The views at `indices` (positions in `view_id` order) with each teacher's logits.
    pub fn read(&self, indices: &[usize]) -> io::Result<Rows> {
        let record_len = self.record_len();
        let mut record = vec![0; record_len];
        let mut rows = Rows {
            views: Vec::with_capacity(indices.len()),
            logits: vec![Vec::with_capacity(indices.len() * self.classes); self.teachers],
        };
        for &index in indices {
            assert!(index < self.len, "view {index} of a file of {}", self.len);
            self.file.read_exact_at(&mut record, (index * record_len) as u64)?;
            rows.views.push(self.view_of(&record));
            for (teacher, logits) in rows.logits.iter_mut().enumerate() {
                logits.extend(self.logits_of(&record, teacher));
            }
        }
        Ok(rows)
    }

    /// Hands every view to `each` in order, with its index.
    pub fn for_each<E: From<io::Error>>(
        &self,
        mut each: impl FnMut(usize, SelectedView) -> Result<(), E>,
    ) -> Result<(), E> {
        let record_len = self.record_len();
        let mut block = vec![0; BLOCK * record_len];
        for first in (0..self.len).step_by(BLOCK) {
            let bytes = &mut block[..BLOCK.min(self.len - first) * record_len];
            self.file.read_exact_at(bytes, (first * record_len) as u64)?;
            for (offset, record) in bytes.chunks_exact(record_len).enumerate() {
                each(first + offset, self.view_of(record))?;
            }
        }
        Ok(())
    }

    fn view_of(&self, record: &[u8]) -> SelectedView {
        let i64_at = |at: usize| i64::from_le_bytes(record[at..at + 8].try_into().expect("8 bytes"));
        let partner = i64_at(40);
        SelectedView {
            view_id: i64_at(0),
            sample_id: i64_at(8),
            seed: i64_at(16) as u64,
            input_hash: i64_at(24) as u64,
            label: i64_at(32),
            partner_id: (partner != UNMIXED).then_some(partner),
            partner_label: i64_at(48),
            lam: f32::from_le_bytes(record[56..60].try_into().expect("4 bytes")),
            recipe: self.recipes[u32::from_le_bytes(record[60..64].try_into().expect("4 bytes")) as usize].clone(),
        }
    }

    fn logits_of<'a>(&self, record: &'a [u8], teacher: usize) -> impl Iterator<Item = f32> + 'a {
        let start = HEADER + teacher * self.classes * 4;
        record[start..start + self.classes * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    /// Writes teacher `teacher`'s logits into every record from `rows` (rows of views outside
    /// the selection are passed over). Returns the first selected view that `rows` has no logits
    /// for, if any; the file is then incomplete and must not be trained on.
    pub fn fill_teacher(&mut self, teacher: usize, rows: TeacherRows) -> io::Result<Option<SelectedView>> {
        assert!(teacher < self.teachers && rows.classes == self.classes, "teacher {teacher} of {}", self.teachers);
        let record_len = self.record_len();
        let slot = HEADER + teacher * self.classes * 4;
        let width = self.classes * 4;
        let mut merged = rows.runs.merged()?;
        // The teacher's next row not yet passed (`more` false: no rows left).
        let mut next = Vec::new();
        let mut advance = |next: &mut Vec<u8>| -> io::Result<bool> {
            next.clear();
            next.extend_from_slice(merged.next_record()?.unwrap_or_default());
            Ok(!next.is_empty())
        };
        let mut more = advance(&mut next)?;
        let mut block = vec![0; BLOCK * record_len];
        for first in (0..self.len).step_by(BLOCK) {
            let count = BLOCK.min(self.len - first);
            let bytes = &mut block[..count * record_len];
            let offset = (first * record_len) as u64;
            self.file.read_exact_at(bytes, offset)?;
            for record in bytes.chunks_exact_mut(record_len) {
                let view_id = key_of(record);
                while more && key_of(&next) < view_id {
                    more = advance(&mut next)?;
                }
                if !more || key_of(&next) != view_id {
                    return Ok(Some(self.view_of(record)));
                }
                record[slot..slot + width].copy_from_slice(&next[8..]);
            }
            self.file.write_all_at(bytes, offset)?;
        }
        Ok(None)
    }
}

impl ViewFile {
    /// Each view's value in `values` (ids outside the file are passed over), in file order; None
    /// for a view that `values` has no value for.
    pub fn values_of(&self, values: ViewValues) -> io::Result<Vec<Option<f64>>> {
        let mut merged = values.runs.merged()?;
        let next = |merged: &mut Merged| -> io::Result<Option<(i64, f64)>> {
            Ok(merged
                .next_record()?
                .map(|record| (key_of(record), f64::from_le_bytes(record[8..16].try_into().expect("8 bytes")))))
        };
        let mut pending = next(&mut merged)?;
        let mut found = Vec::with_capacity(self.len);
        self.for_each(|_, view| -> io::Result<()> {
            while let Some((id, _)) = pending {
                if id >= view.view_id {
                    break;
                }
                pending = next(&mut merged)?;
            }
            found.push(pending.filter(|&(id, _)| id == view.view_id).map(|(_, value)| value));
            Ok(())
        })?;
        Ok(found)
    }
}

/// A number per view id (a stored difficulty or weight), gathered in any order, for
/// [`ViewFile::values_of`].
pub struct ViewValues {
    runs: SortedRuns,
}

impl Default for ViewValues {
    fn default() -> ViewValues {
        ViewValues { runs: SortedRuns::new(16) }
    }
}

impl ViewValues {
    pub fn push(&mut self, view_id: i64, value: f64) -> io::Result<()> {
        let mut record = [0; 16];
        record[..8].copy_from_slice(&view_id.to_le_bytes());
        record[8..].copy_from_slice(&value.to_le_bytes());
        self.runs.push(&record)
    }
}

/// Gathers the views of a selection, in any order, with the first teacher's logits on each.
pub struct ViewFileWriter {
    runs: SortedRuns,
    teachers: usize,
    classes: usize,
    recipes: Vec<Arc<str>>,
    recipe_index: HashMap<Arc<str>, u32>,
    record: Vec<u8>,
}

impl ViewFileWriter {
    /// A file for `teachers` teachers' logits of `classes` classes (0 teachers: views alone).
    pub fn new(teachers: usize, classes: usize) -> ViewFileWriter {
        let record_len = HEADER + teachers * classes * 4;
        ViewFileWriter {
            runs: SortedRuns::new(record_len),
            teachers,
            classes,
            recipes: Vec::new(),
            recipe_index: HashMap::new(),
            record: vec![0; record_len],
        }
    }

    /// Adds a view with the first teacher's logits on it (empty without teachers); the other
    /// teachers' come with [`ViewFile::fill_teacher`].
    pub fn push(&mut self, view: &SelectedView, logits: &[f32]) -> io::Result<()> {
        assert_eq!(logits.len(), if self.teachers > 0 { self.classes } else { 0 }, "the first teacher's logits");
        let recipe = match self.recipe_index.get(&*view.recipe) {
            Some(&index) => index,
            None => {
                let index = self.recipes.len() as u32;
                self.recipes.push(view.recipe.clone());
                self.recipe_index.insert(view.recipe.clone(), index);
                index
            }
        };
        let record = &mut self.record;
        let fields = [
            view.view_id,
            view.sample_id,
            view.seed as i64,
            view.input_hash as i64,
            view.label,
            view.partner_id.unwrap_or(UNMIXED),
            view.partner_label,
        ];
        for (at, field) in fields.iter().enumerate() {
            record[at * 8..at * 8 + 8].copy_from_slice(&field.to_le_bytes());
        }
        record[56..60].copy_from_slice(&view.lam.to_le_bytes());
        record[60..64].copy_from_slice(&recipe.to_le_bytes());
        for (at, value) in logits.iter().enumerate() {
            record[HEADER + at * 4..HEADER + at * 4 + 4].copy_from_slice(&value.to_le_bytes());
        }
        self.runs.push(&self.record)
    }

    /// The views in `view_id` order, on disk.
    pub fn finish(self) -> io::Result<ViewFile> {
        let mut writer = io::BufWriter::with_capacity(BLOCK * self.record.len(), tempfile::tempfile()?);
        let mut merged = self.runs.merged()?;
        let mut len = 0;
        while let Some(record) = merged.next_record()? {
            io::Write::write_all(&mut writer, record)?;
            len += 1;
        }
        let file = writer.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok(ViewFile { file, len, teachers: self.teachers, classes: self.classes, recipes: self.recipes })
    }
}

/// A further teacher's logits, gathered in any order by view id, for [`ViewFile::fill_teacher`].
pub struct TeacherRows {
    runs: SortedRuns,
    classes: usize,
    record: Vec<u8>,
}

impl TeacherRows {
    pub fn new(classes: usize) -> TeacherRows {
        TeacherRows { runs: SortedRuns::new(8 + classes * 4), classes, record: vec![0; 8 + classes * 4] }
    }

    pub fn push(&mut self, view_id: i64, logits: &[f32]) -> io::Result<()> {
        assert_eq!(logits.len(), self.classes);
        self.record[..8].copy_from_slice(&view_id.to_le_bytes());
        for (at, value) in logits.iter().enumerate() {
            self.record[8 + at * 4..12 + at * 4].copy_from_slice(&value.to_le_bytes());
        }
        self.runs.push(&self.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    fn view(view_id: i64) -> SelectedView {
        let mixed = view_id % 3 == 0;
        SelectedView {
            view_id,
            sample_id: view_id / 10,
            recipe: if mixed { "mixup".into() } else { "identity".into() },
            seed: (view_id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            input_hash: u64::MAX - view_id as u64,
            label: view_id % 5,
            partner_id: mixed.then_some(view_id / 7),
            partner_label: if mixed { 4 } else { view_id % 5 },
            lam: if mixed { 0.25 } else { 1.0 },
        }
    }

    fn same(a: &SelectedView, b: &SelectedView) -> bool {
        (a.view_id, a.sample_id, &*a.recipe, a.seed, a.input_hash, a.label, a.partner_id, a.partner_label, a.lam)
            == (b.view_id, b.sample_id, &*b.recipe, b.seed, b.input_hash, b.label, b.partner_id, b.partner_label, b.lam)
    }

    /// Teacher t's logits on view v: (t·1000 + v, −v).
    fn logits(teacher: usize, view_id: i64) -> [f32; 2] {
        [(teacher * 1000) as f32 + view_id as f32, -(view_id as f32)]
    }

    #[test]
    fn views_written_in_any_order_read_back_by_index_in_view_id_order_with_every_teachers_logits() {
        let mut ids: Vec<i64> = (0..700).map(|i| i * 2 + 1).collect();
        ids.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(5));
        let mut writer = ViewFileWriter::new(2, 2);
        for &id in &ids {
            writer.push(&view(id), &logits(0, id)).unwrap();
        }
        let mut file = writer.finish().unwrap();
        assert_eq!(file.len(), 700);
        // The second teacher labelled every selected view and some others, in its own order.
        let mut second = TeacherRows::new(2);
        for id in (0..1400).rev() {
            second.push(id, &logits(1, id)).unwrap();
        }
        assert!(file.fill_teacher(1, second).unwrap().is_none());
        let rows = file.read(&[699, 0, 350, 0]).unwrap();
        let read: Vec<i64> = rows.views.iter().map(|v| v.view_id).collect();
        assert_eq!(read, [1399, 1, 701, 1]);
        for (k, v) in rows.views.iter().enumerate() {
            assert!(same(v, &view(v.view_id)), "{v:?}");
            assert_eq!(rows.logits[0][k * 2..k * 2 + 2], logits(0, v.view_id));
            assert_eq!(rows.logits[1][k * 2..k * 2 + 2], logits(1, v.view_id));
        }
        let mut all = Vec::new();
        file.for_each(|index, view| {
            assert_eq!(index, all.len());
            all.push(view);
            Ok::<(), io::Error>(())
        })
        .unwrap();
        assert_eq!(all.len(), 700);
        assert!(all.iter().zip((0..700).map(|i| view(i * 2 + 1))).all(|(a, b)| same(a, &b)));
    }

    #[test]
    fn values_by_view_id_come_back_in_file_order_and_missing_ones_as_none() {
        let mut writer = ViewFileWriter::new(0, 2);
        for id in [50, 10, 90, 30, 70] {
            writer.push(&view(id), &[]).unwrap();
        }
        let file = writer.finish().unwrap();
        let mut values = ViewValues::default();
        for id in [95, 70, 5, 30, 10, 31, 90] {
            values.push(id, id as f64 / 10.0).unwrap();
        }
        assert_eq!(file.values_of(values).unwrap(), [Some(1.0), Some(3.0), None, Some(7.0), Some(9.0)]);
        assert_eq!(file.values_of(ViewValues::default()).unwrap(), [None; 5]);
    }

    #[test]
    fn a_teacher_without_a_selected_view_names_it() {
        let mut writer = ViewFileWriter::new(2, 2);
        for id in [5, 1, 9, 3] {
            writer.push(&view(id), &logits(0, id)).unwrap();
        }
        let mut file = writer.finish().unwrap();
        let mut partial = TeacherRows::new(2);
        for id in [9, 1, 3] {
            partial.push(id, &logits(1, id)).unwrap();
        }
        let missing = file.fill_teacher(1, partial).unwrap().expect("view 5 has no logits");
        assert_eq!((missing.view_id, missing.sample_id), (5, 0));
    }

    #[test]
    fn views_without_teachers_have_no_logits() {
        let mut writer = ViewFileWriter::new(0, 4);
        writer.push(&view(8), &[]).unwrap();
        writer.push(&view(2), &[]).unwrap();
        let file = writer.finish().unwrap();
        let rows = file.read(&[1]).unwrap();
        assert_eq!(rows.views[0].view_id, 8);
        assert!(rows.logits.is_empty());
    }
}
