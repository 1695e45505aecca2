//! Rows of frames too large to hold, put in order of an `i64` key column whose values are spread
//! evenly over `[0, 2^63)` (view ids are xxh3 hashes), in bounded memory: a distribution sort.
//! Pushed rows gather into a run; each full run is sorted and written to an unnamed temporary
//! Parquet file with one row group per range of the key (the key's top bits). Then each range is
//! read back from every run, sorted and handed out in turn. A sort that never fills a run stays in
//! memory. Memory is a run or a range, whichever is larger; the ranges are sized from the number of
//! rows expected so that a range holds about a run's rows.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom};

use polars::prelude::*;

/// Rows gathered before they are sorted and written out as a run.
pub const RUN_ROWS: usize = 1 << 18;

/// Frames being put in order of `key`.
pub struct SortedFrames {
    key: String,
    run_rows: usize,
    /// log2 of the number of ranges; a key's range is its top `range_bits` bits of 63.
    range_bits: u32,
    buffer: Vec<DataFrame>,
    buffered: usize,
    runs: Vec<Run>,
}

/// A run on disk: its rows in key order, range after range, and where each range ends.
struct Run {
    file: File,
    range_ends: Vec<usize>,
}

impl SortedFrames {
    /// A sort by `key` of about `expected_rows` rows (more or fewer only make the ranges larger or
    /// smaller).
    pub fn new(key: &str, expected_rows: usize) -> SortedFrames {
        SortedFrames::with_run_rows(key, expected_rows, RUN_ROWS)
    }

    pub fn with_run_rows(key: &str, expected_rows: usize, run_rows: usize) -> SortedFrames {
        let ranges = expected_rows.div_ceil(run_rows.max(1)).max(1).next_power_of_two();
        SortedFrames {
            key: key.to_string(),
            run_rows: run_rows.max(1),
            range_bits: ranges.trailing_zeros().min(16),
            buffer: Vec::new(),
            buffered: 0,
            runs: Vec::new(),
        }
    }

    /// Adds `frame`'s rows. Every frame has the same columns; the key has no nulls and no negative
    /// values.
    pub fn push(&mut self, frame: DataFrame) -> PolarsResult<()> {
        self.buffered += frame.height();
        self.buffer.push(frame);
        if self.buffered >= self.run_rows {
            self.spill()?;
        }
        Ok(())
    }

    /// The buffered rows, as one frame in key order.
    fn sorted_buffer(&mut self) -> PolarsResult<DataFrame> {
        let mut frames = std::mem::take(&mut self.buffer).into_iter();
        self.buffered = 0;
        let Some(mut all) = frames.next() else {
            return Ok(DataFrame::empty());
        };
        for frame in frames {
            all.vstack_mut_owned(frame)?;
        }
        all.sort_in_place([self.key.as_str()], SortMultipleOptions::default().with_maintain_order(true))?;
        Ok(all)
    }

    /// Writes the buffered rows out as a run, a row group per range.
    fn spill(&mut self) -> PolarsResult<()> {
        let mut sorted = self.sorted_buffer()?;
        if sorted.height() == 0 {
            return Ok(());
        }
        sorted.rechunk_mut_par();
        let keys = sorted.column(&self.key)?.i64()?.cont_slice()?;
        let mut range_ends = Vec::with_capacity(1 << self.range_bits);
        let file = tempfile::tempfile()?;
        let mut writer = ParquetWriter::new(BufWriter::new(file.try_clone()?))
            .with_compression(ParquetCompression::Uncompressed)
            .with_statistics(StatisticsOptions::empty())
            .batched(sorted.schema())?;
        let mut start = 0;
        for range in 0..1usize << self.range_bits {
            // Keys are non-negative, so every one falls in some range and the last ends at the end.
            let end = keys.partition_point(|&key| self.range_of(key) <= range);
            if end > start {
                writer.write_batch(&sorted.slice(start as i64, end - start))?;
            }
            range_ends.push(end);
            start = end;
        }
        writer.finish()?;
        self.runs.push(Run { file, range_ends });
        Ok(())
    }

    fn range_of(&self, key: i64) -> usize {
        (key as u64 >> (63 - self.range_bits)) as usize
    }

    /// Hands every row pushed to `each` in key order (rows of equal keys in the order they were
    /// pushed), a frame at a time: the rows of one range.
    pub fn for_each_sorted<E: From<PolarsError>>(
        mut self,
        mut each: impl FnMut(DataFrame) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.runs.is_empty() {
            let sorted = self.sorted_buffer()?;
            return if sorted.height() > 0 { each(sorted) } else { Ok(()) };
        }
        self.spill()?;
        for range in 0..1usize << self.range_bits {
            let mut frames = Vec::new();
            for run in &mut self.runs {
                let start = if range == 0 { 0 } else { run.range_ends[range - 1] };
                let rows = run.range_ends[range] - start;
                if rows > 0 {
                    run.file.seek(SeekFrom::Start(0)).map_err(PolarsError::from)?;
                    let read = ParquetReader::new(&mut run.file).with_slice(Some((start, rows))).finish()?;
                    frames.push(read);
                }
            }
            self.buffer = frames;
            let sorted = self.sorted_buffer()?;
            if sorted.height() > 0 {
                each(sorted)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `rows` rows with keys spread over [0, 2^63) (a few repeated), a string, a nullable float
    /// and a list column that all name the row they came from.
    fn frames(rows: usize, per_frame: usize, seed: u64) -> Vec<DataFrame> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let keys: Vec<i64> =
            (0..rows).map(|row| if row % 97 == 5 { 12345 } else { rng.gen_range(0..i64::MAX) }).collect();
        (0..rows)
            .step_by(per_frame.max(1))
            .map(|first| {
                let rows: Vec<usize> = (first..(first + per_frame).min(rows)).collect();
                let lists: Vec<Series> =
                    rows.iter().map(|&r| Series::new("".into(), [r as i64, -(r as i64)])).collect();
                DataFrame::new(
                    rows.len(),
                    vec![
                        Column::new("view_id".into(), rows.iter().map(|&r| keys[r]).collect::<Vec<_>>()),
                        Column::new("row".into(), rows.iter().map(|&r| r as u64).collect::<Vec<_>>()),
                        Column::new("name".into(), rows.iter().map(|r| format!("row {r}")).collect::<Vec<_>>()),
                        Column::new(
                            "maybe".into(),
                            rows.iter().map(|&r| (r % 3 == 0).then_some(r as f64)).collect::<Vec<_>>(),
                        ),
                        Column::new("list".into(), lists),
                    ],
                )
                .unwrap()
            })
            .collect()
    }

    fn sorted(pushed: Vec<DataFrame>, expected_rows: usize, run_rows: usize) -> (Vec<DataFrame>, usize) {
        let mut sort = SortedFrames::with_run_rows("view_id", expected_rows, run_rows);
        for frame in pushed {
            sort.push(frame).unwrap();
        }
        let runs = sort.runs.len();
        let mut out = Vec::new();
        sort.for_each_sorted(|frame| -> PolarsResult<()> {
            out.push(frame);
            Ok(())
        })
        .unwrap();
        (out, runs)
    }

    fn expected(pushed: &[DataFrame]) -> DataFrame {
        let mut all = pushed[0].clone();
        for frame in &pushed[1..] {
            all.vstack_mut(frame).unwrap();
        }
        all.sort(["view_id"], SortMultipleOptions::default().with_maintain_order(true)).unwrap()
    }

    #[test]
    fn spilled_runs_come_back_in_key_order_with_every_column() {
        let pushed = frames(5000, 170, 1);
        let (out, runs) = sorted(pushed.clone(), 5000, 400);
        assert!(runs >= 9, "{runs} runs: every three frames fill a run");
        assert!(out.len() > 1 && out.len() <= 16, "{} ranges handed out", out.len());
        let mut all = out[0].clone();
        for frame in &out[1..] {
            all.vstack_mut(frame).unwrap();
        }
        assert!(all.equals_missing(&expected(&pushed)), "the rows, in key order, equal keys in push order");
    }

    #[test]
    fn a_sort_that_fits_a_run_stays_in_memory() {
        let pushed = frames(300, 64, 2);
        let (out, runs) = sorted(pushed.clone(), 300, 1000);
        assert_eq!(runs, 0);
        assert_eq!(out.len(), 1);
        assert!(out[0].equals_missing(&expected(&pushed)));
    }

    #[test]
    fn more_rows_than_expected_still_sort() {
        let pushed = frames(3000, 500, 3);
        let (out, runs) = sorted(pushed.clone(), 10, 256);
        assert!(runs > 1);
        assert_eq!(out.len(), 1, "one range: the sort expected few rows");
        assert!(out[0].equals_missing(&expected(&pushed)));
    }

    #[test]
    fn nothing_pushed_hands_out_nothing() {
        let (out, runs) = sorted(Vec::new(), 0, 16);
        assert_eq!((out.len(), runs), (0, 0));
    }
}
