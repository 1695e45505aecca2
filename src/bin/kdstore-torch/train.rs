//! `kdstore train STORE`: train a built-in student from the store with a weighted sum of losses.

use std::path::PathBuf;

use kdstore_core::arch::ArchKind;
use kdstore_core::pacing::Pacing;
use kdstore_core::select::ReplayError;
use kdstore_torch::losses::parse_terms;
use kdstore_torch::train::amal::AmalSettings;
use kdstore_torch::train::curriculum::CurriculumConfig;
use kdstore_torch::train::sample_weights::SampleWeight;
use kdstore_torch::train::schedule::Schedule;
use kdstore_torch::train::{self, EnsembleChoice, Optimizer, TrainConfig, TrainError, ViewsPerEpoch};

use kdstore::cli::progress::Bars;
use kdstore::cli::{classify_store, print_stdout, teacher_or_first, Interrupted, StoreAt, UserError};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Student {
    Cnn1d,
    Cnn2d,
    Mlp,
    /// CIFAR-style ResNet; --depth 8, 14 or 20 (6n + 2), --width the first stage's channels.
    Resnet,
    /// Encoder-only transformer for series: --width per token, --depth layers, --heads, --patch.
    Transformer,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OptimizerChoice {
    Adamw,
    Sgd,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ScheduleChoice {
    Cosine,
    Step,
    Constant,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum EnsembleName {
    /// The average of the teachers' probabilities at each loss's temperature.
    Mean,
    /// CA-MKD's per-sample weights from each teacher's cross-entropy on the label (kd only).
    Camkd,
    /// EBKD's per-sample weights from each teacher's entropy (kd only).
    Ebkd,
    /// Fixed weights found by differential evolution on the validation split's stored logits.
    De,
    /// One teacher per sample per step, drawn from the step's seed (RoS-KD).
    Random,
    /// One teacher per view by difficulty: the easiest stratum from the smallest teacher (CES-KD).
    Curriculum,
    /// AMAL: per-sample weights of CE and each teacher's KD, meta-learnt on the validation split
    /// every --set amal.select_every=10 epochs (one teacher or more; --loss kd).
    Amal,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Views {
    OnePerSample,
    All,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreAt,
    /// Teacher whose stored logits are distilled (default: the store's first teacher). Repeat, or
    /// use a glob ('ta*'), for several teachers; --ensemble says how they make the target.
    #[arg(long = "teacher", value_name = "NAME|GLOB")]
    teachers: Vec<String>,
    /// How several teachers make the target that the losses see.
    #[arg(long, value_enum)]
    ensemble: Option<EnsembleName>,
    /// --ensemble curriculum: the difficulty (SQL over `labels`, read from the largest teacher's
    /// rows) that ranks the training views into one stratum per teacher.
    #[arg(long, value_name = "SQL", default_value = "teacher_loss")]
    ensemble_difficulty: String,
    /// --ensemble random: draw only among the teachers whose training subset left the sample out
    /// (RoS-KD); a sample that every teacher saw draws among all.
    #[arg(long)]
    random_unseen: bool,
    /// A loss of the objective, NAME or NAME=WEIGHT (repeatable; `kdstore loss --help` lists them):
    /// --loss kd, or --loss ce --loss dist=2.
    #[arg(long = "loss", value_name = "NAME[=WEIGHT]", default_values_t = ["kd".to_string()])]
    losses: Vec<String>,
    /// A loss setting, KEY=VALUE or LOSS.KEY=VALUE (repeatable): --set temperature=2.
    #[arg(long = "set", value_name = "[LOSS.]KEY=VALUE")]
    settings: Vec<String>,
    /// SQL condition over the `labels` view selecting the training views, e.g. "recipe IN ('identity','mixup')".
    #[arg(long = "where")]
    filter: Option<String>,
    /// Views per epoch: one stored view per training sample, or all selected views.
    #[arg(long, value_enum, default_value = "one-per-sample")]
    views: Views,
    #[arg(long, value_enum, default_value = "cnn1d")]
    student: Student,
    /// Train this TorchScript module (exported from PyTorch: [batch, *sample_shape] -> logits)
    /// instead of a built-in student; saved back as student.pt.
    #[arg(long, conflicts_with = "student")]
    student_torchscript: Option<PathBuf>,
    /// Channels of the first layer (cnn, resnet) or units per layer (mlp).
    #[arg(long, default_value_t = 16)]
    width: i64,
    /// Convolution blocks (cnn), hidden layers (mlp) or layers (resnet: 8, 14, 20, …).
    #[arg(long, default_value_t = 2)]
    depth: i64,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Views per batch (with dlkd: samples per batch, each bringing its `views` views).
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long = "lr", default_value_t = 3e-3)]
    learning_rate: f64,
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    #[arg(long, value_enum, default_value = "adamw")]
    optimizer: OptimizerChoice,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    nesterov: bool,
    /// Learning-rate schedule after the warm-up.
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: ScheduleChoice,
    /// Step schedule: epochs between decays.
    #[arg(long, default_value_t = 30)]
    step_size: usize,
    /// Step schedule: the factor of each decay.
    #[arg(long, default_value_t = 0.1)]
    step_gamma: f64,
    /// Epochs of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0)]
    warmup_epochs: usize,
    /// Clip the gradients' global L2 norm to this value.
    #[arg(long)]
    clip_grad_norm: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Intra-op threads for libtorch (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Replay every training view and check it against its stored input hash (default: 256 of them).
    #[arg(long)]
    verify_replay: bool,
    /// Render every selected view once before training and batch from memory instead of replaying.
    #[arg(long)]
    preload: bool,
    /// Benchmark the store's cost in one run: render every view once (as --preload), then batch
    /// odd epochs from memory and even ones from the store (the same batches, so the same
    /// training); results.json's epochs record `fed_from` and `train_seconds`.
    #[arg(long)]
    alternate_feed: bool,
    /// Run the frozen teachers on every batch instead of reading their stored logits (the baseline).
    #[arg(long)]
    online: bool,
    /// Online KD: train a fresh teacher of the store teacher's built-in architecture together with
    /// the student (Deep Mutual Learning: the teacher minimises CE + KL(student ‖ teacher); with
    /// --loss bdkd, CE + beta·T²·KL(teacher ‖ student)); the student's losses read its current
    /// logits. Stored logits are not used.
    #[arg(long, conflicts_with = "online")]
    co_train: bool,
    /// Order the training samples by this difficulty (SQL over `labels`, on each sample's identity
    /// view: teacher_loss, 1 - p_label, entropy, -margin, …), easiest first, and admit them at the
    /// pace of --pacing.
    #[arg(long, value_name = "SQL")]
    curriculum: Option<String>,
    /// With --curriculum: order every selected view by its own difficulty (not each sample by its
    /// identity view's), and admit views.
    #[arg(long, requires = "curriculum")]
    curriculum_per_view: bool,
    /// With --curriculum: hardest first.
    #[arg(long, requires = "curriculum")]
    anti_curriculum: bool,
    /// With --curriculum: interleave the classes, the easiest of each first (balance_order).
    #[arg(long, requires = "curriculum")]
    class_balanced: bool,
    /// With --curriculum: how many of the easiest samples each step admits (`kdstore pacing --help`);
    /// its settings are --set pacing.KEY=VALUE.
    #[arg(long, requires = "curriculum", default_value = "linear")]
    pacing: String,
    /// --student transformer: attention heads (default 2; --width must be a multiple).
    #[arg(long)]
    heads: Option<i64>,
    /// --student transformer: time steps per token (default 1; must divide the series' length).
    #[arg(long)]
    patch: Option<i64>,
    /// Put this many groups (subjects) in every batch, about batch-size / N samples each (default 4
    /// with --loss mmd, which aligns them).
    #[arg(long, value_name = "N")]
    groups_per_batch: Option<usize>,
    /// Weigh each sample's objective: spl (CuDFKD's self-paced log weights, v = (1 + e^-λ) /
    /// (1 + e^(l-λ)), λ = λ0 + α·step; --set spl.lambda_0=1 --set spl.alpha=0.0001), spl-hard,
    /// spl-soft, or a static weight per view, an SQL expression over the first teacher's `labels`.
    #[arg(long, value_name = "spl|spl-hard|spl-soft|SQL")]
    sample_weight: Option<String>,
    /// The input channels the student sees, e.g. 0,1,2 (default all); the teachers see theirs.
    #[arg(long, value_delimiter = ',', value_name = "C,C,…")]
    student_channels: Option<Vec<usize>>,
    /// Output folder (default: <store>-train-<loss>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the interrupted training in the output folder from its last finished epoch (same
    /// settings; --threads and --device may change). It ends with the weights an uninterrupted run
    /// would have.
    #[arg(long)]
    resume: bool,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, bars: &Bars) -> anyhow::Result<()> {
    let store = args.store.open()?;
    let config = resolve(&args, &store)?;
    let loss_name = loss_name(&config.losses);
    let out = args.out.clone().unwrap_or_else(|| {
        let name = args.store.store.file_name().map_or("store".into(), |n| n.to_string_lossy().to_string());
        args.store.store.with_file_name(format!("{name}-train-{loss_name}"))
    });
    kdstore_core::interrupt::install();
    let results = train::train(&store, &config, &out, bars).map_err(|e| match e {
        TrainError::Interrupted { .. } => anyhow::Error::new(Interrupted(e.to_string())),
        TrainError::Store(s) => classify_store(s),
        TrainError::Selection(_)
        | TrainError::Config(_)
        | TrainError::Diverged(_)
        | TrainError::Input(_)
        | TrainError::Replay(ReplayError::Input { .. }) => UserError::from_error(e),
        other => anyhow::Error::new(other),
    })?;
    if args.json {
        print_stdout(&(serde_json::to_string_pretty(&results)? + "\n"))?;
    }
    eprintln!(
        "trained {} ({} parameters) with {} on {} views of {} samples: test accuracy {:.2}% ({}), results in {}",
        if config.torchscript_student.is_some() { "the torchscript student" } else { config.student.as_str() },
        results.student_parameters,
        loss_name,
        results.train_views,
        results.train_samples,
        results.test_accuracy * 100.0,
        match (&results.co_trained_teacher, &results.ensemble) {
            (Some(co), _) => format!("co-trained teacher {:.2}%", co.accuracy * 100.0),
            (None, Some(ensemble)) => format!(
                "{} ensemble of {} teachers {}",
                ensemble.kind,
                ensemble.teachers.len(),
                ensemble.test_accuracy.map_or("?".into(), |a| format!("{:.2}%", a * 100.0))
            ),
            (None, None) => format!(
                "teacher {}",
                results.teacher_test_accuracy.map_or("?".into(), |a| format!("{:.2}%", a * 100.0))
            ),
        },
        out.join("results.json").display()
    );
    Ok(())
}

/// The objective's short name: `kd`, `ce+dist=2`.
fn loss_name(losses: &[kdstore_torch::losses::LossTerm]) -> String {
    losses
        .iter()
        .map(
            |t| if t.weight == 1.0 { t.config.name().to_string() } else { format!("{}={}", t.config.name(), t.weight) },
        )
        .collect::<Vec<_>>()
        .join("+")
}

/// The training configuration `args` ask for on `store`, every setting checked (what a study
/// resolves each cell with, before it runs anything).
pub fn resolve(args: &Args, store: &kdstore_core::store::Store) -> anyhow::Result<TrainConfig> {
    if args.random_unseen && !matches!(args.ensemble, Some(EnsembleName::Random)) {
        return Err(UserError::msg("--random-unseen goes with --ensemble random".into()));
    }
    let teachers = match args.teachers.is_empty() {
        true => vec![teacher_or_first(store, None)?],
        false => args.teachers.clone(),
    };
    let (pacing_settings, settings): (Vec<String>, Vec<String>) =
        args.settings.iter().cloned().partition(|s| s.starts_with("pacing."));
    let (spl_settings, settings): (Vec<String>, Vec<String>) =
        settings.into_iter().partition(|s| s.starts_with("spl."));
    let (amal_settings, loss_settings): (Vec<String>, Vec<String>) =
        settings.into_iter().partition(|s| s.starts_with("amal."));
    let amal_settings: Vec<String> = amal_settings.iter().map(|s| s["amal.".len()..].to_string()).collect();
    let amal = match args.ensemble {
        Some(EnsembleName::Amal) => Some(AmalSettings::parse(&amal_settings).map_err(UserError::msg)?),
        _ if !amal_settings.is_empty() => {
            return Err(UserError::msg(format!(
                "--set amal.{}: AMAL's settings go with --ensemble amal",
                amal_settings[0]
            )))
        }
        _ => None,
    };
    let losses = parse_terms(&args.losses, &loss_settings).map_err(UserError::msg)?;
    let spl_settings: Vec<String> = spl_settings.iter().map(|s| s["spl.".len()..].to_string()).collect();
    let sample_weight = match &args.sample_weight {
        Some(name) => Some(SampleWeight::parse(name, &spl_settings).map_err(UserError::msg)?),
        None if !spl_settings.is_empty() => {
            return Err(UserError::msg(format!(
                "--set spl.{}: self-paced settings go with --sample-weight spl",
                spl_settings[0]
            )))
        }
        None => None,
    };
    let curriculum = match &args.curriculum {
        Some(difficulty) => Some(CurriculumConfig {
            difficulty: difficulty.clone(),
            anti: args.anti_curriculum,
            class_balanced: args.class_balanced,
            per_view: args.curriculum_per_view,
            pacing: Pacing::parse(&args.pacing, &pacing_settings).map_err(UserError::msg)?,
        }),
        None if !pacing_settings.is_empty() => {
            return Err(UserError::msg(format!("--set {}: pacing settings go with --curriculum", pacing_settings[0])))
        }
        None => None,
    };
    if !(0.0..1.0).contains(&args.momentum) {
        return Err(UserError::msg(format!("--momentum must be in [0, 1), got {}", args.momentum)));
    }
    if args.clip_grad_norm.is_some_and(|c| !(c.is_finite() && c > 0.0)) || args.step_size == 0 {
        return Err(UserError::msg("--clip-grad-norm must be > 0 and --step-size >= 1".into()));
    }
    if !(args.learning_rate.is_finite() && args.learning_rate > 0.0) {
        return Err(UserError::msg(format!("--lr must be > 0, got {}", args.learning_rate)));
    }
    let mmd = losses.iter().any(|t| t.config.needs_groups());
    Ok(TrainConfig {
        teachers,
        ensemble: args.ensemble.map(|name| match name {
            EnsembleName::Mean => EnsembleChoice::Mean,
            EnsembleName::Camkd => EnsembleChoice::Camkd,
            EnsembleName::Ebkd => EnsembleChoice::Ebkd,
            EnsembleName::De => EnsembleChoice::De,
            EnsembleName::Random => EnsembleChoice::Random { unseen: args.random_unseen },
            EnsembleName::Curriculum => EnsembleChoice::Curriculum { difficulty: args.ensemble_difficulty.clone() },
            EnsembleName::Amal => EnsembleChoice::Amal(amal.clone().expect("parsed above")),
        }),
        filter: args.filter.clone(),
        student: match args.student {
            Student::Cnn1d => ArchKind::Cnn1d,
            Student::Cnn2d => ArchKind::Cnn2d,
            Student::Mlp => ArchKind::Mlp,
            Student::Resnet => ArchKind::Resnet,
            Student::Transformer => ArchKind::Transformer,
        },
        torchscript_student: args.student_torchscript.clone(),
        width: args.width,
        depth: args.depth,
        heads: args.heads,
        patch: args.patch,
        losses,
        epochs: args.epochs,
        batch_size: args.batch_size.max(1),
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        optimizer: match args.optimizer {
            OptimizerChoice::Adamw => Optimizer::Adamw,
            OptimizerChoice::Sgd => Optimizer::Sgd { momentum: args.momentum, nesterov: args.nesterov },
        },
        schedule: match args.schedule {
            ScheduleChoice::Cosine => Schedule::Cosine,
            ScheduleChoice::Constant => Schedule::Constant,
            ScheduleChoice::Step => Schedule::Step { step: args.step_size, gamma: args.step_gamma },
        },
        warmup_epochs: args.warmup_epochs,
        curriculum,
        sample_weight,
        groups_per_batch: match args.groups_per_batch {
            None if mmd => Some(4),
            given => given,
        },
        clip_grad_norm: args.clip_grad_norm,
        views: match args.views {
            Views::OnePerSample => ViewsPerEpoch::OnePerSample,
            Views::All => ViewsPerEpoch::All,
        },
        seed: args.seed,
        device: args.device.clone(),
        verify_replay: if args.verify_replay { usize::MAX } else { 256 },
        preload: args.preload,
        alternate_feed: args.alternate_feed,
        online: args.online,
        co_train: args.co_train,
        threads: args.threads,
        student_channels: args.student_channels.clone(),
        keep_epochs: Vec::new(),
        only_samples: None,
        title: None,
        resume: args.resume,
    })
}
