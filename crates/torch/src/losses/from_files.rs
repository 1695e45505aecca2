//! One loss value for inputs given as `.npy` files (what `kdstore loss` prints), computed in
//! float64 so that users can check parity with their own code. Shapes and labels are checked
//! against each other and every problem names the flag it came from.

use std::path::{Path, PathBuf};

use tch::{nn, Kind, Tensor};

use super::dlkd::{load_heads, Heads};
use super::ensemble::{self, Ensemble};
use super::{LossConfig, LossInputs, Targets};
use kdstore_core::source::npy::{read_array, NpyData};
use kdstore_core::store::columns as c;
use kdstore_core::store::topk;

/// The files of one `kdstore loss` call (flags named as on the command line).
#[derive(Debug, Default, Clone)]
pub struct LossFiles {
    pub student: Option<PathBuf>,
    /// One teacher's logits, or several combined by `ensemble`.
    pub teachers: Vec<PathBuf>,
    pub ensemble: Option<Ensemble>,
    pub labels: Option<PathBuf>,
    pub partner_labels: Option<PathBuf>,
    pub lam: Option<PathBuf>,
    pub student_features: Option<PathBuf>,
    pub teacher_features: Option<PathBuf>,
    /// The 1-based epoch, for warm-ups; `None` means after the warm-up.
    pub epoch: Option<usize>,
    /// The trainable heads of `dlkd`, as an `.npz` of PyTorch state-dict entries.
    pub heads: Option<PathBuf>,
    /// Each row's group (subject), integers `[batch]`, for `mmd`.
    pub groups: Option<PathBuf>,
}

fn tensor(path: &Path, integers: bool) -> Result<Tensor, String> {
    let array = read_array(path).map_err(|e| e.to_string())?;
    let shape: Vec<i64> = array.shape.iter().map(|&d| d as i64).collect();
    let tensor = match array.data {
        NpyData::F32(v) if !integers => Tensor::from_slice(&v).to_kind(Kind::Double),
        NpyData::F64(v) if !integers => Tensor::from_slice(&v),
        NpyData::I64(v) if integers => Tensor::from_slice(&v),
        NpyData::I64(v) => Tensor::from_slice(&v).to_kind(Kind::Double),
        _ => return Err(format!("{}: expected integers, got floats", path.display())),
    };
    Ok(tensor.reshape(shape))
}

fn optional(path: &Option<PathBuf>, integers: bool) -> Result<Option<Tensor>, String> {
    path.as_deref().map(|p| tensor(p, integers)).transpose()
}

/// A top-k teacher (an `.npz` holding the store's `topk_index`, `topk_logprob` and `lse`
/// columns) as dense logits over `classes`, rebuilt as the store rebuilds them ([`topk`]).
fn top_k_teacher(path: &Path, classes: i64) -> Result<Tensor, String> {
    let shown = path.display();
    let named = Tensor::read_npz(path).map_err(|e| format!("{shown}: {e}"))?;
    let array = |name: &str| {
        named.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| {
            format!("{shown}: holds no `{name}` array (a top-k teacher needs topk_index, topk_logprob and lse)")
        })
    };
    let (index, logprob, lse) = (array(c::TOPK_INDEX)?, array(c::TOPK_LOGPROB)?, array(c::LSE)?);
    let &[batch, k] = &index.size()[..] else {
        return Err(format!("{shown}: topk_index must be [batch, k], got {:?}", index.size()));
    };
    if logprob.size() != [batch, k] || lse.size() != [batch] {
        return Err(format!(
            "{shown}: topk_logprob must be [{batch}, {k}] and lse [{batch}] like topk_index, got {:?} and {:?}",
            logprob.size(),
            lse.size()
        ));
    }
    let stored = if logprob.kind() == Kind::Uint8 { topk::TopKValues::Q8 } else { topk::TopKValues::F16 };
    let values = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).map_err(|e| e.to_string());
    let index = Vec::<i64>::try_from(index.to_kind(Kind::Int64).flatten(0, -1)).map_err(|e| e.to_string())?;
    let (logprob, lse) = (values(logprob)?, values(lse)?);
    let (k, width) = (k as usize, classes as usize);
    let mut dense = vec![0.0; batch as usize * width];
    for (row, out) in dense.chunks_mut(width.max(1)).enumerate() {
        let kept = index[row * k..(row + 1) * k]
            .iter()
            .map(|&class| u32::try_from(class).map_err(|_| format!("{shown}: row {row}: class {class} is negative")))
            .collect::<Result<Vec<_>, _>>()?;
        let logprobs: Vec<f64> = logprob[row * k..(row + 1) * k].iter().map(|&v| stored.logprob(v)).collect();
        topk::fill_dense(&kept, &logprobs, lse[row], out).map_err(|detail| format!("{shown}: row {row}: {detail}"))?;
    }
    Ok(Tensor::from_slice(&dense).reshape([batch, classes]))
}

/// The value of `config` on the files.
pub fn loss_from_files(config: &LossConfig, files: &LossFiles) -> Result<f64, String> {
    Ok(compute(config, files, false)?.double_value(&[]))
}

/// The per-sample values of `config` on the files (their mean is [`loss_from_files`]'s value).
pub fn loss_rows_from_files(config: &LossConfig, files: &LossFiles) -> Result<Vec<f64>, String> {
    Vec::<f64>::try_from(compute(config, files, true)?).map_err(|e| e.to_string())
}

fn compute(config: &LossConfig, files: &LossFiles, per_row: bool) -> Result<Tensor, String> {
    let name = config.name();
    let needed =
        |flag: &str, value: &Option<PathBuf>| value.clone().ok_or_else(|| format!("loss {name}: needs {flag}"));
    let student_path = needed("--student", &files.student)?;
    let student = tensor(&student_path, false)?;
    let size = student.size();
    let [batch, classes] = size[..] else {
        return Err(format!("{}: expected [batch, classes], got {size:?}", student_path.display()));
    };
    let teacher = |path: &PathBuf| match path.extension().and_then(|e| e.to_str()) {
        Some("npz") => top_k_teacher(path, classes),
        _ => tensor(path, false),
    };
    let teachers = files.teachers.iter().map(teacher).collect::<Result<Vec<_>, _>>()?;
    if teachers.is_empty() && config.needs_teacher_logits() {
        return Err(format!("loss {name}: needs --teacher"));
    }
    for (teacher, path) in teachers.iter().zip(&files.teachers) {
        if teacher.size() != size {
            return Err(format!("--teacher {} has shape {:?}, --student {size:?}", path.display(), teacher.size()));
        }
    }
    match (files.ensemble, teachers.len()) {
        (None, 2..) => {
            return Err(format!("{} teachers need --ensemble ({})", teachers.len(), Ensemble::NAMES.join(", ")))
        }
        (Some(e), 0 | 1) => {
            return Err(format!(
                "--ensemble {}: an ensemble needs at least two --teacher files, got {}",
                e.name(),
                teachers.len()
            ))
        }
        _ => {}
    }
    let labels = match optional(&files.labels, true)? {
        Some(labels) => labels,
        None if !config.needs_labels() => Tensor::zeros([batch], (Kind::Int64, tch::Device::Cpu)),
        None => return Err(format!("loss {name}: needs --labels")),
    };
    let check_labels = |t: &Tensor, flag: &str| -> Result<(), String> {
        let out_of_range = batch > 0 && (t.min().int64_value(&[]) < 0 || t.max().int64_value(&[]) >= classes);
        if t.size() != [batch] || out_of_range {
            return Err(format!("{flag} must hold {batch} class indices in 0..{classes}"));
        }
        Ok(())
    };
    check_labels(&labels, "--labels")?;
    let targets = match (optional(&files.partner_labels, true)?, optional(&files.lam, false)?) {
        (Some(partner_labels), Some(lam)) => {
            check_labels(&partner_labels, "--partner-labels")?;
            Targets::new(labels, partner_labels, lam, classes)
        }
        (None, None) => Targets::plain(labels, classes),
        _ => return Err("--partner-labels and --lam go together".into()),
    };
    let student_features = optional(&files.student_features, false)?;
    let teacher_features = optional(&files.teacher_features, false)?;
    let heads_store = nn::VarStore::new(tch::Device::Cpu);
    let heads = match (config, &student_features, &teacher_features) {
        (LossConfig::Dlkd(dlkd), Some(s), Some(t)) => {
            let path = needed("--heads", &files.heads)?;
            let width = |f: &Tensor| f.size()[1..].iter().product::<i64>();
            let heads = Heads::new(&heads_store.root(), dlkd, width(s), width(t));
            let mut heads_store = heads_store;
            heads_store.double();
            let named = Tensor::read_npz(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            load_heads(&heads_store, &named, &path.display().to_string())?;
            Some(heads)
        }
        _ => None,
    };
    let groups: Option<Vec<i64>> = match optional(&files.groups, true)? {
        Some(t) if t.size() == [batch] => Some(Vec::<i64>::try_from(t).map_err(|e| e.to_string())?),
        Some(_) => return Err(format!("--groups must hold {batch} integers, one per row")),
        None if config.needs_groups() => return Err(format!("loss {name}: needs --groups")),
        None => None,
    };
    // pskd's teacher is the student of the previous epoch.
    let is_pskd = matches!(config, LossConfig::Pskd(_));
    let inputs = LossInputs {
        teacher: teachers.first().filter(|_| !is_pskd),
        previous: teachers.first().filter(|_| is_pskd),
        student_features: student_features.as_ref(),
        teacher_features: teacher_features.as_ref(),
        epoch: files.epoch,
        heads: heads.as_ref(),
        per_row,
        groups: groups.as_deref(),
        ..LossInputs::new(&student, &targets)
    };
    let value = match files.ensemble {
        Some(e) => ensemble::compute(config, e, &student, &teachers, &targets, per_row, |target| {
            config.compute(&LossInputs { teacher: Some(target), ..inputs })
        }),
        None => config.compute(&inputs),
    };
    value.map_err(|e| e.to_string())
}
