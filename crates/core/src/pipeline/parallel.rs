//! Work split into fixed chunks of rows and spread over worker threads. The chunks never depend on
//! the number of threads, so whatever a chunk computes (rendered views, a teacher's logits on one
//! intra-op thread) is identical however many threads run; threads only decide how many chunks
//! run at once. The first error stops the other workers and is returned.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::progress::Task;

/// Rows rendered or labelled together; fixed so that results never depend on the thread count.
pub const CHUNK: usize = 256;

/// Work on one chunk of rows, with a worker's own state.
pub type ChunkWork<'a, W, T, E> = dyn Fn(&mut W, Range<usize>) -> Result<Vec<T>, E> + Sync + 'a;

/// Runs `work` over fixed chunks of `0..items` on up to `threads` threads, each with its own
/// state made by `init`, and returns the outputs in order.
pub fn parallel_chunks<W, T: Send, E: Send>(
    items: usize,
    threads: usize,
    task: &dyn Task,
    init: &(dyn Fn() -> Result<W, E> + Sync),
    work: &ChunkWork<'_, W, T, E>,
) -> Result<Vec<T>, E> {
    let chunks = items.div_ceil(CHUNK);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Vec<T>>>> = Mutex::new((0..chunks).map(|_| None).collect());
    let first_error: Mutex<Option<E>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, chunks.max(1)) {
            scope.spawn(|| {
                let fail = |e: E| {
                    failed.store(true, Ordering::SeqCst);
                    first_error.lock().unwrap().get_or_insert(e);
                };
                let mut state = match init() {
                    Ok(state) => state,
                    Err(e) => return fail(e),
                };
                loop {
                    let chunk = next.fetch_add(1, Ordering::SeqCst);
                    if chunk >= chunks || failed.load(Ordering::SeqCst) {
                        return;
                    }
                    let range = chunk * CHUNK..((chunk + 1) * CHUNK).min(items);
                    let len = range.len() as u64;
                    match work(&mut state, range) {
                        Ok(out) => results.lock().unwrap()[chunk] = Some(out),
                        Err(e) => return fail(e),
                    }
                    task.advance(len);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(results.into_inner().unwrap().into_iter().flat_map(|r| r.expect("every chunk ran")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{Progress, Silent};

    #[test]
    fn outputs_come_back_in_order_whatever_the_threads() {
        let task = Silent.task("test", 0);
        let square =
            |_: &mut (), range: Range<usize>| -> Result<Vec<usize>, String> { Ok(range.map(|i| i * i).collect()) };
        let expected: Vec<usize> = (0..1000).map(|i| i * i).collect();
        for threads in [1, 2, 5] {
            assert_eq!(parallel_chunks(1000, threads, task.as_ref(), &|| Ok(()), &square).unwrap(), expected);
        }
    }

    #[test]
    fn the_first_error_is_returned() {
        let task = Silent.task("test", 0);
        let work = |_: &mut (), range: Range<usize>| -> Result<Vec<usize>, String> {
            if range.start >= CHUNK {
                Err(format!("chunk at {}", range.start))
            } else {
                Ok(range.collect())
            }
        };
        let error = parallel_chunks(3 * CHUNK, 1, task.as_ref(), &|| Ok(()), &work).unwrap_err();
        assert_eq!(error, format!("chunk at {CHUNK}"));
    }
}
