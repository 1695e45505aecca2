//! libtorch's OpenMP team, lent to CPU work between libtorch's own operations. When libtorch's
//! threads fill every core, a helper thread of ours can only run by preempting one of them, and a
//! preempted team member stalls the whole team at the next barrier; work that runs on the team
//! itself, between two operations, takes nothing from it. The team is libgomp's (the runtime
//! PyTorch's wheels ship and libtorch_cpu loads), found at run time; where it is absent (another
//! OpenMP runtime without its entry points, a build without OpenMP) [`Team::find`] says so and the
//! caller keeps its own thread.

use std::any::Any;
use std::ffi::c_void;
use std::sync::Mutex;

type ParallelFn = unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, u32, u32);
type IndexFn = unsafe extern "C" fn() -> i32;

/// libgomp's entry points, resolved in the running process.
#[derive(Clone, Copy)]
pub struct Team {
    parallel: ParallelFn,
    thread_num: IndexFn,
    num_threads: IndexFn,
}

/// What one parallel region runs: the caller's work and the first panic of any member.
struct Region<'a> {
    work: &'a (dyn Fn(usize, usize) + Sync),
    team: Team,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

extern "C" fn member(data: *mut c_void) {
    // SAFETY: `data` is the `Region` that `Team::run` passed to `GOMP_parallel`, alive until every
    // member has returned (`GOMP_parallel` returns only then).
    let region = unsafe { &*(data as *const Region) };
    // SAFETY: called inside a parallel region, as OpenMP allows.
    let (index, count) = unsafe { ((region.team.thread_num)(), (region.team.num_threads)()) };
    // A panic must not unwind through libgomp's frames: it is kept and raised after the region.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        (region.work)(index.max(0) as usize, count.max(1) as usize)
    }));
    if let Err(payload) = outcome {
        region.panic.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(payload);
    }
}

impl Team {
    /// libgomp's team, if libtorch brought libgomp into this process.
    pub fn find() -> Option<Team> {
        // SAFETY: dlsym with RTLD_DEFAULT only looks symbols up; each is cast to the signature
        // libgomp documents for it (GOMP_parallel since GCC 4.9, the omp_* functions of OpenMP).
        unsafe {
            let symbol = |name: &[u8]| {
                let address = libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr() as *const libc::c_char);
                (!address.is_null()).then_some(address)
            };
            let parallel = symbol(b"GOMP_parallel\0")?;
            let thread_num = symbol(b"omp_get_thread_num\0")?;
            let num_threads = symbol(b"omp_get_num_threads\0")?;
            Some(Team {
                parallel: std::mem::transmute::<*mut c_void, ParallelFn>(parallel),
                thread_num: std::mem::transmute::<*mut c_void, IndexFn>(thread_num),
                num_threads: std::mem::transmute::<*mut c_void, IndexFn>(num_threads),
            })
        }
    }

    /// Runs `work(member, members)` once on each of `threads` team members (the calling thread is
    /// member 0) and returns when all have; a member's panic is raised here afterwards. OpenMP may
    /// give fewer members than asked for (`members` says how many ran).
    pub fn run(&self, threads: usize, work: &(dyn Fn(usize, usize) + Sync)) {
        let region = Region { work, team: *self, panic: Mutex::new(None) };
        // SAFETY: `member` matches the outlined-function signature GOMP_parallel expects, the
        // region outlives the call, and flags 0 asks for nothing beyond the thread count.
        unsafe { (self.parallel)(member, &region as *const Region as *mut c_void, threads.max(1) as u32, 0) };
        if let Some(payload) = region.panic.into_inner().unwrap_or_else(|p| p.into_inner()) {
            std::panic::resume_unwind(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_member_runs_once_with_its_index() {
        let _ = tch::get_num_threads(); // loads libtorch, and with it libgomp
        let team = Team::find().expect("PyTorch's libtorch loads libgomp");
        let seen = Mutex::new(Vec::new());
        let calls = AtomicUsize::new(0);
        team.run(2, &|member, members| {
            calls.fetch_add(1, Ordering::Relaxed);
            seen.lock().unwrap().push((member, members));
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        let members = seen[0].1;
        assert!((1..=2).contains(&members), "{seen:?}");
        assert_eq!(calls.into_inner(), members);
        assert_eq!(seen, (0..members).map(|m| (m, members)).collect::<Vec<_>>());
    }

    #[test]
    fn a_members_panic_is_raised_after_the_region() {
        let _ = tch::get_num_threads();
        let team = Team::find().expect("libgomp");
        let finished = AtomicUsize::new(0);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            team.run(2, &|member, _| {
                if member == 0 {
                    panic!("member zero failed");
                }
                finished.fetch_add(1, Ordering::Relaxed);
            })
        }));
        let payload = outcome.expect_err("the panic comes back");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"member zero failed"));
        // The team still works afterwards.
        let runs = AtomicUsize::new(0);
        team.run(1, &|_, _| {
            runs.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(runs.into_inner(), 1);
    }
}
