//! `kdstore loss NAME --student S.npy --teacher T.npy --labels Y.npy [--set key=value ...]`: one
//! loss value for given logits (float64), so that users can check parity with their own code.

use std::path::{Path, PathBuf};

use kdstore::losses::{keys_help, LossConfig, LossInputs, Targets};
use kdstore::source::npy::{read_array, NpyData};
use tch::{Kind, Tensor};

use super::{print_stdout, UserError};

#[derive(Debug, clap::Args)]
#[command(after_long_help = keys_help())]
pub struct Args {
    /// The loss: ce, kd, reverse-kl, jsd, dist, dkd, mixkd, sp or sk (keys: --help).
    name: String,
    /// Student logits, [batch, classes] float32 or float64.
    #[arg(long)]
    student: Option<PathBuf>,
    /// Teacher logits, [batch, classes].
    #[arg(long)]
    teacher: Option<PathBuf>,
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
    /// Student features, [batch, ...] (sp, sk).
    #[arg(long)]
    student_features: Option<PathBuf>,
    /// Teacher features, [batch, ...] (sp, sk).
    #[arg(long)]
    teacher_features: Option<PathBuf>,
    /// The 1-based epoch, for losses with a warm-up (default: after the warm-up).
    #[arg(long)]
    epoch: Option<usize>,
    /// Print {"loss", "config", "value"} as JSON.
    #[arg(long)]
    json: bool,
}

fn tensor(path: &Path, kind: Kind) -> anyhow::Result<Tensor> {
    let array = read_array(path).map_err(UserError::from_error)?;
    let shape: Vec<i64> = array.shape.iter().map(|&d| d as i64).collect();
    let tensor = match array.data {
        NpyData::F32(v) => Tensor::from_slice(&v).to_kind(Kind::Double),
        NpyData::F64(v) => Tensor::from_slice(&v),
        NpyData::I64(v) => Tensor::from_slice(&v),
    };
    if kind == Kind::Int64 && tensor.kind() != Kind::Int64 {
        return Err(UserError::msg(format!("{}: expected integers, got floats", path.display())));
    }
    Ok(tensor.to_kind(kind).reshape(shape))
}

fn optional(path: &Option<PathBuf>, kind: Kind) -> anyhow::Result<Option<Tensor>> {
    path.as_deref().map(|p| tensor(p, kind)).transpose()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = LossConfig::parse(&args.name, &args.settings).map_err(UserError::msg)?;
    let needed = |flag: &str, value: &Option<PathBuf>| {
        value.clone().ok_or_else(|| UserError::msg(format!("loss {}: needs {flag}", config.name())))
    };
    let batch_logits = needed("--student", &args.student)?;
    let student = tensor(&batch_logits, Kind::Double)?;
    let size = student.size();
    let [batch, classes] = size[..] else {
        return Err(UserError::msg(format!("{}: expected [batch, classes], got {size:?}", batch_logits.display())));
    };
    let teacher = if config.needs_teacher() && !config.needs_features() {
        Some(tensor(&needed("--teacher", &args.teacher)?, Kind::Double)?)
    } else {
        optional(&args.teacher, Kind::Double)?
    };
    if let Some(teacher) = &teacher {
        if teacher.size() != size {
            return Err(UserError::msg(format!("--teacher has shape {:?}, --student {size:?}", teacher.size())));
        }
    }
    let labels = match optional(&args.labels, Kind::Int64)? {
        Some(labels) => labels,
        None if matches!(
            config,
            LossConfig::Sp(_) | LossConfig::Sk(_) | LossConfig::ReverseKl(_) | LossConfig::Jsd(_) | LossConfig::Dist(_)
        ) =>
        {
            Tensor::zeros([batch], (Kind::Int64, tch::Device::Cpu))
        }
        None => return Err(UserError::msg(format!("loss {}: needs --labels", config.name()))),
    };
    let check_labels = |t: &Tensor, flag: &str| -> anyhow::Result<()> {
        if t.size() != [batch] || (batch > 0 && (t.min().int64_value(&[]) < 0 || t.max().int64_value(&[]) >= classes)) {
            return Err(UserError::msg(format!("{flag} must hold {batch} class indices in 0..{classes}")));
        }
        Ok(())
    };
    check_labels(&labels, "--labels")?;
    let targets = match (optional(&args.partner_labels, Kind::Int64)?, optional(&args.lam, Kind::Double)?) {
        (Some(partner_labels), Some(lam)) => {
            check_labels(&partner_labels, "--partner-labels")?;
            Targets { labels, partner_labels, lam }
        }
        (None, None) => Targets::plain(labels),
        _ => return Err(UserError::msg("--partner-labels and --lam go together".into())),
    };
    let student_features = optional(&args.student_features, Kind::Double)?;
    let teacher_features = optional(&args.teacher_features, Kind::Double)?;
    let inputs = LossInputs {
        student: &student,
        teacher: teacher.as_ref(),
        targets: &targets,
        student_features: student_features.as_ref(),
        teacher_features: teacher_features.as_ref(),
        epoch: args.epoch,
    };
    let value = config.compute(&inputs).map_err(UserError::from_error)?.double_value(&[]);
    if args.json {
        let json = serde_json::json!({ "loss": config.name(), "config": config, "value": value });
        return print_stdout(&(serde_json::to_string_pretty(&json)? + "\n"));
    }
    print_stdout(&format!("{value}\n"))
}
