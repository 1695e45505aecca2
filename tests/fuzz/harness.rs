//! The fuzz loop: mutate a seed, hand it to a target in a worker thread, and judge the outcome.
//! A panic, a hang (no answer within `HANG`) or an error that does not name the input's file is a
//! problem; the input is saved under `$KDSTORE_FUZZ_FINDINGS` (default: the temporary directory's
//! `kdstore-fuzz-findings/`) and the test fails. Inputs kept under `tests/fuzz/regressions/<target>/`
//! (ones that once failed, see its README) run first, every time.
//!
//! `KDSTORE_FUZZ_SECONDS` sets how long each target runs (default 2: the suite's short run; `make
//! fuzz` runs each for 600), `KDSTORE_FUZZ_SEED` the first seed (default 2026, so that the suite's
//! run is the same every time; `make fuzz` draws one from the clock; it is printed either way).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use crate::mutate::{mutate, Rng};

/// Longer than any accepted input takes; a target that needs more has hung.
const HANG: Duration = Duration::from_secs(20);

/// A real input a target starts from.
pub struct Seed {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What a target did with an input.
pub enum Outcome {
    /// The input was read (a mutation may leave a valid file).
    Accepted,
    /// The input was refused with this message.
    Refused(String),
}

/// Hands an input to the parser: what it did, or the problem with what it did.
pub type Run = Box<dyn Fn(&[u8], &mut Rng) -> Result<Outcome, String> + Send>;

/// A parser under test: `run` writes the input where the parser reads it and returns what it did;
/// `names` is what a clear refusal must mention (the file's name); `check` may add its own judgement
/// of a refusal, such as "damaged data must be refused" (`Err` is the problem).
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Seed>,
    pub text: bool,
    pub run: Run,
    pub names: Vec<String>,
}

/// What a run of one target tried and found.
#[derive(Debug, Default)]
pub struct Summary {
    pub target: &'static str,
    pub tried: usize,
    pub accepted: usize,
    pub refused: usize,
    pub problems: Vec<String>,
    pub seconds: f64,
}

pub fn seconds() -> f64 {
    std::env::var("KDSTORE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0)
}

fn first_seed() -> u64 {
    std::env::var("KDSTORE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2026)
}

/// The panic message of the last panic in this process (the hook keeps fuzzing quiet).
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let message = kdstore_core::panics::payload_text(info.payload());
            *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{message}{place}"));
        }));
    });
}

fn regressions(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions").join(target);
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn findings_dir(target: &str) -> PathBuf {
    let base = std::env::var_os("KDSTORE_FUZZ_FINDINGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("kdstore-fuzz-findings"));
    base.join(target)
}

/// Runs `target` for `seconds` (regression inputs and unmutated seeds first) and returns what it found.
pub fn fuzz(target: Target, seconds: f64) -> Summary {
    quiet_panics();
    let seed = first_seed();
    let mut rng = Rng::new(seed);
    let name = target.name;
    let names = target.names.clone();
    let text = target.text;
    let seeds: Vec<Vec<u8>> = target.seeds.iter().map(|s| s.bytes.clone()).collect();
    // Regression inputs run under five fixed seeds each, so that a target's own random choices
    // (gzipped or not, which of two ways a store is damaged) take both ways.
    let mut queue: Vec<(Vec<u8>, u64)> =
        regressions(name).into_iter().flat_map(|input| (0..5).map(move |seed| (input.clone(), seed))).collect();
    queue.extend(seeds.iter().map(|seed| (seed.clone(), 0)));
    queue.reverse();

    // The target lives in one worker thread; inputs go in, outcomes come back.
    let (to_worker, inputs) = mpsc::channel::<(Vec<u8>, u64)>();
    let (to_main, outcomes) = mpsc::channel::<Result<Result<Outcome, String>, String>>();
    let run = target.run;
    std::thread::spawn(move || {
        for (input, seed) in inputs {
            let mut rng = Rng::new(seed);
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| run(&input, &mut rng)));
            let answer = result.map_err(|_| {
                LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_else(|| "panic".into())
            });
            if to_main.send(answer).is_err() {
                break;
            }
        }
    });

    let start = Instant::now();
    let mut summary = Summary { target: name, ..Summary::default() };
    while !queue.is_empty() || start.elapsed().as_secs_f64() < seconds {
        let (input, run_seed) = queue.pop().unwrap_or_else(|| {
            let base = rng.pick(&seeds).clone();
            (mutate(&mut rng, &base, &seeds, text), rng.next())
        });
        // Kept until the answer comes: an input that aborts the process (one that asks for more
        // memory than there is) is found here afterwards.
        let last = findings_dir(name).join("last-input");
        let _ = std::fs::create_dir_all(findings_dir(name)).and_then(|()| std::fs::write(&last, &input));
        to_worker.send((input.clone(), run_seed)).expect("the worker runs");
        summary.tried += 1;
        let problem = match outcomes.recv_timeout(HANG) {
            Err(_) => Some(format!("no answer within {} s (a hang)", HANG.as_secs())),
            Ok(Err(panic)) => Some(format!("panic: {panic}")),
            Ok(Ok(Err(problem))) => Some(problem),
            Ok(Ok(Ok(Outcome::Accepted))) => {
                summary.accepted += 1;
                None
            }
            Ok(Ok(Ok(Outcome::Refused(message)))) => {
                summary.refused += 1;
                let clear = !message.trim().is_empty() && names.iter().any(|n| message.contains(n.as_str()));
                (!clear).then(|| format!("an error that names none of {names:?}: {message}"))
            }
        };
        let _ = std::fs::remove_file(&last);
        if let Some(problem) = problem {
            let saved = save_finding(name, &input);
            summary.problems.push(format!("{problem} (input saved as {})", saved.display()));
            if problem.contains("a hang") || summary.problems.len() >= 5 {
                break;
            }
        }
    }
    summary.seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {name}: seed {seed}, {} inputs in {:.0} s ({} accepted, {} refused), {} problems",
        summary.tried,
        summary.seconds,
        summary.accepted,
        summary.refused,
        summary.problems.len()
    );
    summary
}

fn save_finding(target: &str, input: &[u8]) -> PathBuf {
    let dir = findings_dir(target);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(input)));
    let _ = std::fs::write(&path, input);
    path
}

/// Fails the test with every problem found.
pub fn assert_clean(summary: &Summary) {
    // The fuzz panic hook is quiet, so the problems are printed before the assertion fails.
    for problem in &summary.problems {
        eprintln!("fuzz {}: {problem}", summary.target);
    }
    assert!(summary.problems.is_empty(), "fuzz {}: {} problems", summary.target, summary.problems.len());
}
