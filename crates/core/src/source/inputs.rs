//! Where the samples' input values are: held in memory (the array sources, and image folders whose
//! decoded samples fit [`decoded_limit`]), or an image folder's files, read, checked and decoded on
//! each use, so that a folder larger than memory trains as a small one does.

use std::borrow::Cow;
use std::sync::Arc;

use rayon::prelude::*;

use super::image_folder::FolderFiles;
use super::SourceError;

/// The environment variable that sets [`decoded_limit`], in MiB.
pub const DECODED_LIMIT_VARIABLE: &str = "KDSTORE_DECODED_LIMIT_MB";

/// How many samples a pass over decoded files decodes at once (on rayon's pool) before handing them
/// out in order.
const DECODE_CHUNK: usize = 256;

/// The samples' input values, sample after sample.
#[derive(Debug, Clone)]
pub enum Inputs {
    /// Every sample's values, `len × sample_len` of them.
    Held(Vec<f32>),
    /// An image folder's files, decoded whenever a sample is used.
    Decoded(Arc<FolderFiles>),
}

impl Inputs {
    /// The values of sample `index`: borrowed when held, decoded from its file otherwise (a file
    /// that changed since the store recorded it is an error naming it).
    pub fn sample(&self, index: usize, sample_len: usize) -> Result<Cow<'_, [f32]>, SourceError> {
        match self {
            Inputs::Held(values) => Ok(Cow::Borrowed(&values[index * sample_len..(index + 1) * sample_len])),
            Inputs::Decoded(folder) => folder.decode(index).map(Cow::Owned),
        }
    }

    /// The samples `ids`, one after the other; decoded files are decoded on rayon's pool.
    pub fn gather(&self, ids: &[usize], sample_len: usize) -> Result<Vec<f32>, SourceError> {
        match self {
            Inputs::Held(values) => {
                let mut out = Vec::with_capacity(ids.len() * sample_len);
                for &id in ids {
                    out.extend_from_slice(&values[id * sample_len..(id + 1) * sample_len]);
                }
                Ok(out)
            }
            Inputs::Decoded(folder) => {
                let mut out = vec![0f32; ids.len() * sample_len];
                out.par_chunks_mut(sample_len.max(1))
                    .zip(ids.par_iter())
                    .try_for_each(|(values, &id)| folder.decode_into(id, values))?;
                Ok(out)
            }
        }
    }

    /// Calls `visit` with each sample of `ids`, in order; decoded files a chunk at a time, so that
    /// a pass over a folder holds one chunk, not the folder.
    pub fn for_each(&self, ids: &[usize], sample_len: usize, mut visit: impl FnMut(&[f32])) -> Result<(), SourceError> {
        match self {
            Inputs::Held(values) => {
                ids.iter().for_each(|&id| visit(&values[id * sample_len..(id + 1) * sample_len]));
            }
            Inputs::Decoded(_) => {
                for chunk in ids.chunks(DECODE_CHUNK) {
                    self.gather(chunk, sample_len)?.chunks_exact(sample_len.max(1)).for_each(&mut visit);
                }
            }
        }
        Ok(())
    }
}

/// The most memory, in bytes, an image folder's decoded samples may take to be held while a command
/// runs (decoded once); a larger folder is decoded on each use instead. `KDSTORE_DECODED_LIMIT_MB`
/// sets it (0: always decode on use); by default, a quarter of the machine's memory.
pub fn decoded_limit() -> Result<u64, SourceError> {
    match std::env::var(DECODED_LIMIT_VARIABLE) {
        Ok(text) => {
            text.trim().parse::<u64>().map(|mib| mib.saturating_mul(1 << 20)).map_err(|_| SourceError::Setting {
                name: DECODED_LIMIT_VARIABLE.into(),
                detail: format!("'{text}' is not a whole number of MiB (0 decodes image files on each use)"),
            })
        }
        Err(_) => Ok(physical_memory().unwrap_or(16 << 30) / 4),
    }
}

/// Whether `count` decoded samples of `sample_len` values are held in memory (see [`decoded_limit`]).
pub fn hold_decoded(count: usize, sample_len: usize) -> Result<bool, SourceError> {
    let bytes = (count as u64).saturating_mul(sample_len as u64).saturating_mul(4);
    Ok(bytes <= decoded_limit()?)
}

/// The machine's memory (`MemTotal` of `/proc/meminfo`), where the system says.
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_samples_borrow_gather_and_visit_in_order() {
        let inputs = Inputs::Held(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(matches!(inputs.sample(1, 2).unwrap(), Cow::Borrowed(&[3.0, 4.0])));
        assert_eq!(inputs.gather(&[2, 0], 2).unwrap(), [5.0, 6.0, 1.0, 2.0]);
        let mut seen = Vec::new();
        inputs.for_each(&[1, 2], 2, |sample| seen.extend_from_slice(sample)).unwrap();
        assert_eq!(seen, [3.0, 4.0, 5.0, 6.0]);
    }
}
