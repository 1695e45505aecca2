//! `kdstore loss NAME --student S.npy --teacher T.npy --labels Y.npy [--set key=value ...]`: one
//! loss value for given logits (float64), so that users can check parity with their own code.

use std::path::PathBuf;

use kdstore_torch::losses::ensemble::Ensemble;
use kdstore_torch::losses::from_files::{loss_from_files, loss_rows_from_files, LossFiles};
use kdstore_torch::losses::{keys_help, LossConfig};
use kdstore_torch::train::sample_weights::{lambda_at, self_paced_weights_of, SampleWeight};

use kdstore::cli::{print_stdout, UserError};

#[derive(Debug, clap::Args)]
#[command(after_long_help = keys_help())]
pub struct Args {
    /// The loss: ce, kd, reverse-kl, jsd, dist, dkd, mixkd, sp, sk, dlkd, tfkd, tfkd-self, pskd,
    /// bdkd or mmd (keys: --help). pskd's --teacher is the student's logits of the previous epoch and its
    /// alpha is α_t; bdkd is kdstore's documented construction of BD-KD (the paper's equations
    /// were not available), see --help.
    name: String,
    /// Student logits, [batch, classes] float32 or float64.
    #[arg(long)]
    student: Option<PathBuf>,
    /// Teacher logits, [batch, classes]; repeat for several teachers, combined by --ensemble. A
    /// top-k teacher is an .npz of the store's top-k columns: topk_index [batch, k] integers,
    /// topk_logprob [batch, k] (floats, or uint8 q8 codes) and lse [batch]; its logits are rebuilt
    /// over the student's classes as the store rebuilds them (the tail mass spread evenly).
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
    /// Student features, [batch, ...] (sp, sk, dlkd, mmd).
    #[arg(long)]
    student_features: Option<PathBuf>,
    /// Teacher features, [batch, ...] (sp, sk, dlkd).
    #[arg(long)]
    teacher_features: Option<PathBuf>,
    /// dlkd's heads: an .npz of the PyTorch state-dict entries align.*, corr.*, embed_s.*, embed_t.*
    /// (rows in groups of `views`, each sample's identity view first).
    #[arg(long)]
    heads: Option<PathBuf>,
    /// Each row's group (subject), integers [batch] (mmd).
    #[arg(long)]
    groups: Option<PathBuf>,
    /// The 1-based epoch, for losses with a warm-up (default: after the warm-up).
    #[arg(long)]
    epoch: Option<usize>,
    /// Print each sample's value, one per line (with --sample-weight: the value and its weight).
    #[arg(long)]
    per_sample: bool,
    /// Weigh the samples as `kdstore train --sample-weight` does: spl, spl-hard or spl-soft (CuDFKD's
    /// curr_v) at λ = spl.lambda_0 + spl.alpha·--iteration; prints the weighted mean (v·l).mean().
    #[arg(long, value_name = "spl|spl-hard|spl-soft")]
    sample_weight: Option<String>,
    /// With --sample-weight: the 0-based training iteration that λ has reached.
    #[arg(long, default_value_t = 0, requires = "sample_weight")]
    iteration: usize,
    /// Print {"loss", "config", "value"} as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (spl_settings, settings): (Vec<String>, Vec<String>) =
        args.settings.iter().cloned().partition(|s| s.starts_with("spl."));
    let config = LossConfig::parse(&args.name, &settings).map_err(UserError::msg)?;
    let spl_settings: Vec<String> = spl_settings.iter().map(|s| s["spl.".len()..].to_string()).collect();
    let weighting = match &args.sample_weight {
        Some(name) => match SampleWeight::parse(name, &spl_settings).map_err(UserError::msg)? {
            SampleWeight::SelfPaced { variant, lambda_0, alpha } => Some((variant, lambda_at(lambda_0, alpha, args.iteration))),
            SampleWeight::Stored { expression } => {
                return Err(UserError::msg(format!(
                    "--sample-weight {expression}: a stored weight is read from a store (kdstore train); kdstore loss takes spl, spl-hard or spl-soft"
                )))
            }
        },
        None if !spl_settings.is_empty() => {
            return Err(UserError::msg(format!("--set spl.{}: self-paced settings go with --sample-weight", spl_settings[0])))
        }
        None => None,
    };
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
        groups: args.groups,
    };
    if !args.per_sample && weighting.is_none() {
        let value = loss_from_files(&config, &files).map_err(UserError::msg)?;
        if args.json {
            let json =
                serde_json::json!({ "loss": config.name(), "config": config, "ensemble": ensemble, "value": value });
            return print_stdout(&(serde_json::to_string_pretty(&json)? + "\n"));
        }
        return print_stdout(&format!("{value}\n"));
    }
    let rows = loss_rows_from_files(&config, &files).map_err(UserError::msg)?;
    let weights: Option<Vec<f64>> = weighting.map(|(variant, lambda)| self_paced_weights_of(variant, &rows, lambda));
    let value = match &weights {
        Some(v) => v.iter().zip(&rows).map(|(v, l)| v * l).sum::<f64>() / rows.len().max(1) as f64,
        None => rows.iter().sum::<f64>() / rows.len().max(1) as f64,
    };
    if args.json {
        let json = serde_json::json!({
            "loss": config.name(), "config": config, "ensemble": ensemble, "value": value,
            "per_sample": rows, "weights": weights,
            "lambda": weighting.map(|(_, lambda)| lambda),
        });
        return print_stdout(&(serde_json::to_string_pretty(&json)? + "\n"));
    }
    let text = match (args.per_sample, &weights) {
        (true, Some(v)) => rows.iter().zip(v).map(|(l, v)| format!("{l}\t{v}\n")).collect(),
        (true, None) => rows.iter().map(|l| format!("{l}\n")).collect(),
        (false, _) => format!("{value}\n"),
    };
    print_stdout(&text)
}
