//! `kdstore loss NAME --student S.npy --teacher T.npy --labels Y.npy [--set key=value ...]`: one
//! loss value for given logits (float64), so that users can check parity with their own code.

use std::path::PathBuf;

use kdstore_torch::losses::ensemble::Ensemble;
use kdstore_torch::losses::from_files::{loss_from_files, LossFiles};
use kdstore_torch::losses::{keys_help, LossConfig};

use kdstore::cli::{print_stdout, UserError};

#[derive(Debug, clap::Args)]
#[command(after_long_help = keys_help())]
pub struct Args {
    /// The loss: ce, kd, reverse-kl, jsd, dist, dkd, mixkd, sp, sk or dlkd (keys: --help).
    name: String,
    /// Student logits, [batch, classes] float32 or float64.
    #[arg(long)]
    student: Option<PathBuf>,
    /// Teacher logits, [batch, classes]; repeat for several teachers, combined by --ensemble.
    #[arg(long = "teacher")]
    teachers: Vec<PathBuf>,
    /// How several teachers make one target: mean (of their probabilities at the loss's
    /// temperature), camkd or ebkd (per-sample weights, as CA-MKD's official code; kd only).
    #[arg(long)]
    ensemble: Option<String>,
    /// Integer labels, [batch].
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Mix partners' labels, [batch] (mixed targets: with --lam).
    #[arg(long)]
    partner_labels: Option<PathBuf>,
    /// Weights of the own labels, [batch] (mixed targets: with --partner-labels).
    #[arg(long)]
    lam: Option<PathBuf>,
    /// A setting of the loss, as the papers name it (repeatable): --set temperature=4.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Student features, [batch, ...] (sp, sk, dlkd).
    #[arg(long)]
    student_features: Option<PathBuf>,
    /// Teacher features, [batch, ...] (sp, sk, dlkd).
    #[arg(long)]
    teacher_features: Option<PathBuf>,
    /// dlkd's heads: an .npz of the PyTorch state-dict entries align.*, corr.*, embed_s.*, embed_t.*
    /// (rows in groups of `views`, each sample's identity view first).
    #[arg(long)]
    heads: Option<PathBuf>,
    /// The 1-based epoch, for losses with a warm-up (default: after the warm-up).
    #[arg(long)]
    epoch: Option<usize>,
    /// Print {"loss", "config", "value"} as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = LossConfig::parse(&args.name, &args.settings).map_err(UserError::msg)?;
    let ensemble = args.ensemble.as_deref().map(Ensemble::parse).transpose().map_err(UserError::msg)?;
    let files = LossFiles {
        student: args.student,
        teachers: args.teachers,
        ensemble,
        labels: args.labels,
        partner_labels: args.partner_labels,
        lam: args.lam,
        student_features: args.student_features,
        teacher_features: args.teacher_features,
        epoch: args.epoch,
        heads: args.heads,
    };
    let value = loss_from_files(&config, &files).map_err(UserError::msg)?;
    if args.json {
        let json = serde_json::json!({ "loss": config.name(), "config": config, "ensemble": ensemble, "value": value });
        return print_stdout(&(serde_json::to_string_pretty(&json)? + "\n"));
    }
    print_stdout(&format!("{value}\n"))
}
