//! Fixed-size records sorted by the `i64` key in their first eight bytes (little-endian), in
//! bounded memory: records are gathered into a buffer, each full buffer is sorted and written to
//! an unnamed temporary file (a run), and the runs are merged in one pass. Ten million records cost
//! the buffer and one read buffer per run, not ten million records.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// How many bytes of records a run holds before it is sorted and written out.
const RUN_BYTES: usize = 32 << 20;
/// Each run's read buffer while merging.
const READ_BUFFER: usize = 64 << 10;

/// The key of a record: its first eight bytes.
pub fn key_of(record: &[u8]) -> i64 {
    i64::from_le_bytes(record[..8].try_into().expect("records start with an 8-byte key"))
}

/// Records being gathered, sorted a run at a time.
pub struct SortedRuns {
    record_len: usize,
    run_bytes: usize,
    buffer: Vec<u8>,
    runs: Vec<File>,
}

impl SortedRuns {
    /// Records of `record_len` bytes (at least the key's eight).
    pub fn new(record_len: usize) -> SortedRuns {
        SortedRuns::with_run_bytes(record_len, RUN_BYTES)
    }

    fn with_run_bytes(record_len: usize, run_bytes: usize) -> SortedRuns {
        assert!(record_len >= 8, "a record holds at least its key");
        SortedRuns { record_len, run_bytes, buffer: Vec::new(), runs: Vec::new() }
    }

    pub fn push(&mut self, record: &[u8]) -> io::Result<()> {
        debug_assert_eq!(record.len(), self.record_len);
        if self.buffer.capacity() == 0 {
            // Exactly a run: growing by doubling would take twice that.
            self.buffer.reserve_exact(self.run_bytes);
        }
        self.buffer.extend_from_slice(record);
        if self.buffer.len() + self.record_len > self.run_bytes {
            self.spill()?;
        }
        Ok(())
    }

    /// Sorts the buffered records and writes them out as a run.
    fn spill(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let records: Vec<&[u8]> = {
            let mut records: Vec<&[u8]> = self.buffer.chunks_exact(self.record_len).collect();
            records.sort_by_key(|record| key_of(record));
            records
        };
        let mut run = BufWriter::new(tempfile::tempfile()?);
        for record in records {
            run.write_all(record)?;
        }
        let mut run = run.into_inner().map_err(io::IntoInnerError::into_error)?;
        run.seek(SeekFrom::Start(0))?;
        self.runs.push(run);
        self.buffer.clear();
        Ok(())
    }

    /// Every record pushed, in key order (records of equal keys in the order they were pushed).
    pub fn merged(mut self) -> io::Result<Merged> {
        self.spill()?;
        self.buffer = Vec::new();
        let record_len = self.record_len;
        let mut readers = Vec::with_capacity(self.runs.len());
        let mut heads = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::with_capacity(self.runs.len());
        for (run, file) in self.runs.into_iter().enumerate() {
            let mut reader = BufReader::with_capacity(READ_BUFFER, file);
            let mut head = vec![0; record_len];
            if read_record(&mut reader, &mut head)? {
                heap.push(Reverse((key_of(&head), run)));
            }
            readers.push(reader);
            heads.push(head);
        }
        Ok(Merged { readers, heads, heap, current: vec![0; record_len] })
    }
}

/// Reads one record; false at the end of the run.
fn read_record(reader: &mut impl Read, record: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(record) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The runs' records, merged in key order, one at a time.
pub struct Merged {
    readers: Vec<BufReader<File>>,
    heads: Vec<Vec<u8>>,
    /// (key, run) of each run's next record; ties go to the earlier run, which was pushed first.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    current: Vec<u8>,
}

impl Merged {
    /// The next record in key order, or None after the last.
    pub fn next_record(&mut self) -> io::Result<Option<&[u8]>> {
        let Some(Reverse((_, run))) = self.heap.pop() else { return Ok(None) };
        std::mem::swap(&mut self.current, &mut self.heads[run]);
        if read_record(&mut self.readers[run], &mut self.heads[run])? {
            self.heap.push(Reverse((key_of(&self.heads[run]), run)));
        }
        Ok(Some(&self.current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn record(key: i64, tag: u32) -> Vec<u8> {
        let mut record = key.to_le_bytes().to_vec();
        record.extend_from_slice(&tag.to_le_bytes());
        record
    }

    #[test]
    fn merges_many_runs_into_key_order_keeping_equal_keys_in_push_order() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // 12-byte records, 1,000 to a run: more than seven runs' worth.
        let count = 7_234;
        let keys: Vec<i64> = (0..count).map(|_| rng.gen_range(-1000..1_000_000)).collect();
        let mut runs = SortedRuns::with_run_bytes(12, 12_000);
        for (tag, &key) in keys.iter().enumerate() {
            runs.push(&record(key, tag as u32)).unwrap();
        }
        assert_eq!(runs.runs.len(), 7, "the eighth run is still in the buffer");
        let mut expected: Vec<(i64, u32)> = keys.iter().enumerate().map(|(tag, &key)| (key, tag as u32)).collect();
        expected.sort_by_key(|&(key, _)| key);
        let mut merged = runs.merged().unwrap();
        let mut got = Vec::with_capacity(count);
        while let Some(record) = merged.next_record().unwrap() {
            got.push((key_of(record), u32::from_le_bytes(record[8..12].try_into().unwrap())));
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn no_records_merge_to_nothing() {
        let mut merged = SortedRuns::new(8).merged().unwrap();
        assert!(merged.next_record().unwrap().is_none());
    }
}
