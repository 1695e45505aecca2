//! Column and table names of the store, in one place. Everything that reads or writes the store
//! (the writer, the reader, the SQL views, the schema generator and the docs) uses these constants,
//! so a rename is one edit and the generated `schemas/store.json` shows it.

pub const SAMPLES: &str = "samples";
pub const VIEWS: &str = "views";
pub const LOGITS: &str = "logits";
/// Optional: teachers' penultimate features, for feature losses.
pub const EMBEDDINGS: &str = "embeddings";
/// Which training samples each subset teacher (`NAME#k`, and its checkpoints) learnt from.
pub const SUBSETS: &str = "subsets";
/// The joined view `views ⋈ samples ⋈ logits` that `kdstore query` registers.
pub const LABELS: &str = "labels";

pub const SAMPLE_ID: &str = "sample_id";
pub const SPLIT: &str = "split";
pub const LABEL: &str = "label";
pub const GROUP: &str = "group";
pub const INPUT: &str = "input";
pub const PATH: &str = "path";
pub const FILE_SIZE: &str = "file_size";
pub const FILE_HASH: &str = "file_hash";
pub const SHAPE: &str = "shape";
pub const DTYPE: &str = "dtype";

pub const VIEW_ID: &str = "view_id";
pub const RECIPE: &str = "recipe";
pub const REPLICA: &str = "replica";
/// The column of each view's seed that schema 4 and older stored; readers ignore it, since the seed
/// is `augment::seed::view_seed(manifest seed, sample_id, recipe, replica)`.
pub const SEED: &str = "seed";
pub const PARTNER_ID: &str = "partner_id";
pub const LAM: &str = "lam";
pub const INPUT_HASH: &str = "input_hash";

pub const TEACHER: &str = "teacher";
pub const LOGITS_COLUMN: &str = "logits";
pub const TEACHER_PRED: &str = "teacher_pred";
pub const TEACHER_LOSS: &str = "teacher_loss";
pub const P_LABEL: &str = "p_label";
pub const ENTROPY: &str = "entropy";
pub const MARGIN: &str = "margin";
pub const TEACHER_CORRECT: &str = "teacher_correct";
pub const FEATURES: &str = "features";
/// Columns of a top-k teacher's logits files (see `store::topk`).
pub const TOPK_INDEX: &str = "topk_index";
pub const TOPK_LOGPROB: &str = "topk_logprob";
pub const LSE: &str = "lse";

/// One column of a table, as documented in `schemas/store.json` and the README.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ColumnDoc {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub nullable: bool,
    pub description: &'static str,
}

const fn col(name: &'static str, type_name: &'static str, nullable: bool, description: &'static str) -> ColumnDoc {
    ColumnDoc { name, type_name, nullable, description }
}

pub const SAMPLES_COLUMNS: &[ColumnDoc] = &[
    col(SAMPLE_ID, "int64", false, "dense sample index, 0..n, in source order"),
    col(SPLIT, "string", false, "train, val or test"),
    col(LABEL, "int64", false, "class index into the manifest's class_names"),
    col(GROUP, "int64", true, "group of the sample (HAPT: the subject); null when the source has none"),
    col(INPUT, "list<float32>", false, "the raw (un-normalised) input, row-major in `shape`"),
    col(SHAPE, "list<int64>", false, "shape of one input: [channels, time] or [channels, height, width]"),
    col(DTYPE, "string", false, "element type of `input` (always float32 in schema v2)"),
];

/// An image folder store's `samples` table: each file in place of its pixels.
pub const SAMPLES_BY_REFERENCE_COLUMNS: &[ColumnDoc] = &[
    col(
        SAMPLE_ID,
        "int64",
        false,
        "dense sample index, 0..n: split folders train, val, test; classes sorted by name; files sorted by name",
    ),
    col(SPLIT, "string", false, "train, val or test"),
    col(LABEL, "int64", false, "class index into the manifest's class_names (the class folders, sorted)"),
    col(GROUP, "int64", true, "always null (folders give no groups)"),
    col(PATH, "string", false, "the image file, relative to the manifest's dataset.files.root, `/`-separated"),
    col(FILE_SIZE, "uint64", false, "the file's size in bytes when the store was built"),
    col(FILE_HASH, "uint64", false, "xxh3-64 of the file's bytes when the store was built; every read checks it"),
    col(SHAPE, "list<int64>", false, "shape of one decoded input: [channels, height, width]"),
    col(DTYPE, "string", false, "element type of the decoded input (float32, byte / 255)"),
];

const VIEWS_CORE_COLUMNS: &[ColumnDoc] = &[
    col(VIEW_ID, "int64", false, "stable id derived from (recipe, replica, sample_id)"),
    col(SAMPLE_ID, "int64", false, "the sample the view was made from"),
    col(RECIPE, "string", false, "recipe name from the pipeline; `identity` is the un-augmented input"),
    col(REPLICA, "int64", false, "replica index within the recipe, 0..replicas"),
    col(PARTNER_ID, "int64", true, "mix partner sample (mixup, cutmix); null when the view is not mixed"),
    col(LAM, "float32", true, "weight of the view's own sample: mixup input = lam*sample + (1-lam)*partner; cutmix: 1 - the pasted box's share of the area; null when not mixed"),
    col(INPUT_HASH, "uint64", false, "xxh3-64 of the view's float32 input in raw units, before normalisation (little-endian bytes)"),
];

/// The `views` table's columns: the fixed ones, then every op's flag and drawn-parameter columns.
pub fn views_columns() -> Vec<ColumnDoc> {
    let params =
        crate::augment::param_columns().into_iter().map(|p| col(p.name, p.kind.type_name(), true, p.description));
    VIEWS_CORE_COLUMNS.iter().copied().chain(params).collect()
}

pub const LOGITS_COLUMNS: &[ColumnDoc] = &[
    col(VIEW_ID, "int64", false, "the view the teacher labelled"),
    col(TEACHER, "string", false, "teacher name from the pipeline (also the partition directory teacher=<name>)"),
    col(LOGITS_COLUMN, "list<float32|float16>", false, "raw (temperature-free) logits over the class space"),
    col(TEACHER_PRED, "int64", false, "argmax of the logits"),
    col(TEACHER_LOSS, "float32", false, "cross-entropy on the label; for a mixed view lam*CE(label)+(1-lam)*CE(partner label)"),
    col(P_LABEL, "float32", false, "softmax probability of the label; for a mixed view lam*p(label)+(1-lam)*p(partner label)"),
    col(ENTROPY, "float32", false, "entropy of the softmax in nats"),
    col(MARGIN, "float32", false, "p(target) minus the largest other probability, target = the label, or for a mixed view the label of the sample with the larger weight; negative when wrong"),
    col(TEACHER_CORRECT, "bool", false, "argmax equals the target used by `margin`"),
];

/// The logits files of a top-k teacher (`logits_format = { top_k = K, values = ... }`). They hold
/// no `view_id`: like every logits part, their rows are in the row order of the views part they
/// label (the manifest's `views_key`), and readers take the ids from there. Every reader (SQL,
/// export, training, `verify`) sees the `logits` table's columns, with dense logits rebuilt as
/// `store::topk` documents and `teacher_pred` = the first class.
pub const TOPK_LOGITS_COLUMNS: &[ColumnDoc] = &[
    col(TEACHER, "string", false, "teacher name from the pipeline (also the partition directory teacher=<name>)"),
    col(TOPK_INDEX, "list<uint8|uint16|uint32>", false, "the K most probable classes, most probable first (ties: the lower class); the narrowest type that holds the class count"),
    col(TOPK_LOGPROB, "list<float16|uint8>", false, "their log-probabilities log p = logit - lse: float16, or q8 bytes standing for -byte/16 nats"),
    col(LSE, "float32", false, "log-sum-exp of all the teacher's logits (logit = lse + log p)"),
    col(TEACHER_LOSS, "float16", false, "as in `logits`, computed from all the logits before truncation, stored as float16"),
    col(P_LABEL, "float16", false, "as in `logits`, from all the logits, stored as float16"),
    col(ENTROPY, "float16", false, "as in `logits`, from all the logits, stored as float16"),
    col(MARGIN, "float16", false, "as in `logits`, from all the logits, stored as float16"),
    col(TEACHER_CORRECT, "bool", false, "as in `logits`"),
];

pub const EMBEDDINGS_COLUMNS: &[ColumnDoc] = &[
    col(VIEW_ID, "int64", false, "the view the teacher saw"),
    col(TEACHER, "string", false, "teacher name (also the partition directory teacher=<name>)"),
    col(FEATURES, "list<float32|float16>", false, "the teacher's penultimate features for the view (built-in teachers: the pooled features before the linear head)"),
];

pub const SUBSETS_COLUMNS: &[ColumnDoc] = &[
    col(
        TEACHER,
        "string",
        false,
        "a subset teacher (`NAME#k`, `NAME#k@eN`; also the partition directory teacher=<name>)",
    ),
    col(SAMPLE_ID, "int64", false, "a training sample it learnt from"),
];

/// The names of every float column of every table (what SQL rewriting needs to know of types).
pub fn float_columns() -> Vec<&'static str> {
    let tables = [SAMPLES_COLUMNS.to_vec(), views_columns(), LOGITS_COLUMNS.to_vec(), EMBEDDINGS_COLUMNS.to_vec()];
    let mut names: Vec<&'static str> = tables
        .iter()
        .flatten()
        .filter(|column| column.type_name.starts_with("float") || column.type_name.starts_with("list<float"))
        .map(|column| column.name)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}
