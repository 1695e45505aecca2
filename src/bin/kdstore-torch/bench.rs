//! `kdstore bench STORE`: time the labelling stage against the teacher's bare forward passes, and
//! how fast each recipe's views replay.

use kdstore_core::pipeline::BuildError;
use kdstore_torch::bench;

use kdstore::cli::progress::Bars;
use kdstore::cli::{
    classify_store, classify_views, print_stdout, teacher_or_first, worker_threads, StoreAt, UserError,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreAt,
    /// Teacher to time (default: the store's first teacher).
    #[arg(long)]
    teacher: Option<String>,
    /// Worker threads, as for `kdstore build` (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the timings as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Only time the replay of each recipe's views (skips the labelling benchmark).
    #[arg(long)]
    replay_only: bool,
    /// Instead, time one training epoch's loader: read the samples (an image folder's files
    /// decoded and checked), then replay, normalise and batch the views in shuffled order.
    #[arg(long, conflicts_with = "replay_only")]
    loader: bool,
    /// With --loader: the views, SQL over views joined with the samples' split and label.
    #[arg(long = "where", requires = "loader", default_value = "split = 'train'")]
    condition: String,
    /// With --loader: views per batch.
    #[arg(long, requires = "loader", default_value_t = 128)]
    batch_size: usize,
}

pub fn run(args: Args, bars: &Bars) -> anyhow::Result<()> {
    let store = args.store.open()?;
    if args.loader {
        return loader(&store, &args);
    }
    let teacher = teacher_or_first(&store, args.teacher.as_deref())?;
    let threads = worker_threads(args.threads);
    let classify = |e| match e {
        BuildError::Store(s) => classify_store(s),
        BuildError::TeacherSetup { .. } | BuildError::Recipe(_) | BuildError::Source(_) => UserError::from_error(e),
        other => anyhow::Error::new(other),
    };
    let labelling = if args.replay_only {
        None
    } else {
        Some(bench::labelling(&store, &teacher, threads, bars).map_err(classify)?)
    };
    let replay = bench::replay(&store, bars).map_err(classify)?;
    if args.json {
        let json = serde_json::json!({ "labelling": labelling, "replay": replay });
        return print_stdout(&(serde_json::to_string_pretty(&json)? + "\n"));
    }
    let mut text = labelling.map(|result| labelling_text(&result)).unwrap_or_default();
    text.push_str("replaying views (one thread, as the training loader does; includes normalisation)\n");
    for timing in &replay {
        text.push_str(&format!(
            "  {:<24} {:>8} views {:>8.3} s {:>10.0} views/s\n",
            timing.recipe,
            timing.views,
            timing.seconds,
            timing.views_per_second()
        ));
    }
    print_stdout(&text)
}

fn loader(store: &kdstore_core::store::Store, args: &Args) -> anyhow::Result<()> {
    let threads = worker_threads(args.threads);
    let timing = bench::loader(store, &args.condition, args.batch_size, threads).map_err(classify_views)?;
    if args.json {
        return print_stdout(&(serde_json::to_string_pretty(&serde_json::json!({ "loader": timing }))? + "\n"));
    }
    print_stdout(&format!(
        "loader: {} views in batches of {} on {} thread{}\n  reading the samples   {:>8.3} s\n  replay + batch        {:>8.3} s ({:.0} views/s)\n  first epoch           {:>8.3} s ({:.0} views/s)\n",
        timing.views,
        timing.batch_size,
        timing.threads,
        if timing.threads == 1 { "" } else { "s" },
        timing.load_seconds,
        timing.epoch_seconds,
        timing.epoch_views_per_second(),
        timing.load_seconds + timing.epoch_seconds,
        timing.first_epoch_views_per_second()
    ))
}

fn labelling_text(result: &bench::LabellingBench) -> String {
    format!(
        "labelling {} views with teacher {} on {} thread{}\n  bare forward passes   {:>8.2} s ({:.0} views/s)\n  labelling stage       {:>8.2} s ({:.0} views/s; replay, hash check, forward, statistics)\n  overhead              {:>+8.1}%\n",
        result.views,
        result.teacher,
        result.threads,
        if result.threads == 1 { "" } else { "s" },
        result.bare_forward_seconds,
        result.views as f64 / result.bare_forward_seconds,
        result.labelling_seconds,
        result.views as f64 / result.labelling_seconds,
        result.overhead() * 100.0
    )
}
