//! Reader for HAPT (UCI smartphone activity recognition with postural transitions) as shipped
//! in `HAPT.pkl.gz`: a gzipped pickle (protocol 2) of `dict[user] → list[pandas DataFrame]`.
//!
//! The DataFrames are not rebuilt: their pickled block-manager state is walked to find two raw
//! numpy blocks, float64 (6, N) with columns acc-x … gyro-z and int64 (2, N) with columns
//! sequence and label. Windows are cut inside each maximal run of one activity label 1–6.

use std::path::Path;

use serde_pickle::{DeOptions, HashableValue, Value};

use super::inputs::Inputs;
use super::{is_gzip, read_file, Dataset, SourceError};

/// The six channels, in sample order: accelerometer (g) then gyroscope (rad/s).
pub const CHANNELS: [&str; 6] = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"];

/// Class names for labels 0..6 (HAPT activities 1..=6).
const CLASS_NAMES: [&str; 6] = ["walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying"];

/// Column names of the float block in the pickled DataFrames, in `CHANNELS` order.
const SIGNAL_COLUMNS: [&str; 6] = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"];
const LABEL_COLUMNS: [&str; 2] = ["sequence", "label"];

/// Reads `HAPT.pkl.gz` into windows of `window` samples taken every `step` samples inside each
/// labelled activity segment. Sample shape is `[6, window]` (channel-major), label is the
/// activity − 1, group is the user id; order is users ascending, recordings in file order,
/// windows in time order.
pub fn read(path: &Path, window: usize, step: usize) -> Result<Dataset, SourceError> {
    let bad = |detail: String| SourceError::malformed(path, detail);
    if window == 0 || step == 0 {
        return Err(bad(format!("window ({window}) and step ({step}) must be positive")));
    }
    let bytes = read_file(path)?;
    if !is_gzip(&bytes) {
        return Err(bad("expected a gzip-compressed pickle, but the file lacks the gzip magic 1f 8b".into()));
    }
    let options = DeOptions::new().keep_restore_state().replace_unresolved_globals().replace_recursive_structures();
    let value = serde_pickle::value_from_reader(flate2::read::MultiGzDecoder::new(&bytes[..]), options)
        .map_err(|e| bad(format!("expected a pickle of dict user → list of pandas DataFrames: {e}")))?;
    let Value::Dict(users) = value else {
        return Err(bad("expected a pickled dict of user id → recordings at the top".into()));
    };
    let mut users = users
        .into_iter()
        .map(|(key, recordings)| match key {
            HashableValue::I64(user) => Ok((user, recordings)),
            other => Err(bad(format!("expected integer user ids as dict keys, found {other:?}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    users.sort_by_key(|&(user, _)| user);

    let mut inputs = Vec::new();
    let mut data = Dataset {
        sample_shape: vec![CHANNELS.len(), window],
        inputs: Inputs::Held(Vec::new()),
        labels: Vec::new(),
        groups: None,
        given_split: None,
        class_names: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        channel_names: CHANNELS.iter().map(|s| s.to_string()).collect(),
    };
    let mut groups = Vec::new();
    for (user, recordings) in users {
        let Value::List(recordings) = recordings else {
            return Err(bad(format!("user {user}: expected a list of recordings")));
        };
        for (r, recording) in recordings.iter().enumerate() {
            let (signals, labels) =
                recording_blocks(recording).map_err(|e| bad(format!("user {user} recording {r}: {e}")))?;
            let n = labels.len();
            for (start, activity) in windows(&labels, window, step) {
                for c in 0..CHANNELS.len() {
                    inputs.extend_from_slice(&signals[c * n + start..][..window]);
                }
                data.labels.push(activity - 1);
                groups.push(user);
            }
        }
    }
    data.groups = Some(groups);
    data.inputs = Inputs::Held(inputs);
    data.check(path)?;
    Ok(data)
}

/// Start and activity of each window: inside every maximal run of one activity 1..=6,
/// windows start at the run's start and then every `step` samples while they fit in the run.
fn windows(labels: &[i64], window: usize, step: usize) -> Vec<(usize, i64)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for run in labels.chunk_by(|a, b| a == b) {
        if (1..=6).contains(&run[0]) {
            let starts = (0..).step_by(step).take_while(|s| s + window <= run.len());
            out.extend(starts.map(|s| (offset + s, run[0])));
        }
        offset += run.len();
    }
    out
}

/// Digs one recording's signals (6 × N, channel-major, as f32) and labels (N) out of the
/// pickled DataFrame state `{'_data': (axes, block values, block items, extra), …}`.
fn recording_blocks(frame: &Value) -> Result<(Vec<f32>, Vec<i64>), String> {
    let parts = match frame {
        Value::Dict(state) => match state.get(&HashableValue::String("_data".into())) {
            Some(Value::Tuple(parts)) if parts.len() >= 3 => parts,
            _ => return Err("expected a DataFrame state whose '_data' is a block-manager state tuple".into()),
        },
        _ => return Err("expected a pickled pandas DataFrame".into()),
    };
    let (Value::List(values), Value::List(items)) = (&parts[1], &parts[2]) else {
        return Err("expected lists of block values and block items in the block-manager state".into());
    };
    let mut signals = None;
    let mut labels = None;
    for (block, item) in values.iter().zip(items) {
        let columns = column_names(item)?;
        if columns == SIGNAL_COLUMNS {
            signals = Some(raw_block(block, SIGNAL_COLUMNS.len())?);
        } else if columns == LABEL_COLUMNS {
            labels = Some(raw_block(block, LABEL_COLUMNS.len())?);
        }
    }
    let (Some((signals, n)), Some((labels, m))) = (signals, labels) else {
        return Err(format!("expected a float64 block with columns {SIGNAL_COLUMNS:?} and an int64 block with columns {LABEL_COLUMNS:?}"));
    };
    if n != m {
        return Err(format!("signal block has {n} time steps but label block has {m}"));
    }
    let words = |bytes: &[u8]| -> Vec<[u8; 8]> {
        bytes.chunks_exact(8).map(|b| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]).collect()
    };
    let counter_and_labels: Vec<i64> = words(labels).into_iter().map(i64::from_le_bytes).collect();
    // The counter 0..N-1 confirms the block holds little-endian int64.
    if let Some(t) = (0..n).find(|&t| counter_and_labels[t] != t as i64) {
        return Err(format!(
            "expected the 'sequence' column to count 0..{n}, found {} at step {t}",
            counter_and_labels[t]
        ));
    }
    let signals = words(signals).into_iter().map(|w| f64::from_le_bytes(w) as f32).collect();
    Ok((signals, counter_and_labels[n..].to_vec()))
}

/// Column names of a pickled block-items Index: `(_new_Index args: (cls, {'data': ndarray of str, …}))`.
fn column_names(item: &Value) -> Result<Vec<&str>, String> {
    let not_names = || "expected block items to be a pickled pandas Index of column names".to_string();
    let Value::Tuple(args) = item else {
        return Err(not_names());
    };
    let Some(Value::Dict(index)) = args.get(1) else {
        return Err(not_names());
    };
    let Some(Value::Tuple(array)) = index.get(&HashableValue::String("data".into())) else {
        return Err(not_names());
    };
    let Some(Value::List(names)) = array.get(4) else {
        return Err(not_names());
    };
    names
        .iter()
        .map(|name| match name {
            Value::String(s) => Ok(s.as_str()),
            _ => Err(not_names()),
        })
        .collect()
}

/// The raw little-endian bytes of a pickled C-order 8-byte ndarray of shape (rows, N), and N.
/// The state is `(version, shape, dtype, is_fortran, raw bytes)`.
fn raw_block(block: &Value, rows: usize) -> Result<(&[u8], usize), String> {
    let Value::Tuple(state) = block else {
        return Err("expected a pickled numpy array state for a block".into());
    };
    let (Some(Value::Tuple(shape)), Some(Value::Bool(fortran)), Some(Value::Bytes(raw))) =
        (state.get(1), state.get(3), state.get(4))
    else {
        return Err("expected a numpy array state (version, shape, dtype, is_fortran, raw bytes)".into());
    };
    let n = match shape.as_slice() {
        [Value::I64(r), Value::I64(n)] if *r == rows as i64 && *n >= 0 => *n as usize,
        _ => return Err(format!("expected a block of shape ({rows}, N), found {shape:?}")),
    };
    if *fortran {
        return Err("expected a C-ordered block, found a Fortran-ordered one".into());
    }
    if raw.len() != rows * n * 8 {
        return Err(format!(
            "block of shape ({rows}, {n}) needs {} bytes of 8-byte values, found {}",
            rows * n * 8,
            raw.len()
        ));
    }
    Ok((raw, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Write;

    /// Gzipped protocol-2 pickle with HAPT's object layout (stand-in classes registered under
    /// pandas' module names): `{7: [df(labels [-1,1,1,1,1,1,2,2,7,6,6,6])], 3: [df([4,4,4,4,-1,5,5]),
    /// df([3,3,3])]}`, where df's signal block (6, n) holds `(c*n + t + base) / 4` with base 0
    /// for user 7 and 100, 200 for user 3's recordings.
    const FIXTURE_HEX: &str = "\
1f8b0800000000000203a55567741455147ee9c91290de7b1dda9255d054b241449395459f6d15d7cdcc669217d96c72\
7767214156414d42ac60c51e3b7654545414050bd8b1f7de7bfdadefcddcbb6c56397a8e9b73f27d73e7be3b33f77df7\
7b6bb393c0345f4110b2c26d7ab4418fbbc3ad31d3dd18d35b4cd762ddd297d80cb267ae839c24e46a813cc658a841de\
81bc3e4b9aa396198bea91b8bb458fea4d662cee5a14690daf58ea5cb9205f9628d08250a865ac6b30dbcdb8dbd0e3a6\
2b143557856a55c40545fb4fc30c5712fa69815cf942f6fb1487a38996b60e77c85ed0928858cd7a2ca677b8423133dc\
1a8d5bb144d872417f27cd256bdb7761808f75c20161b9acc10cc75d665411170c0c64c9ca060c0ae44b8ce85673d403\
83bb600887a1dd308cc370cd97e52bec841158b0c1ea6893eb4606b265feb25218d5b3be1b467318a3f972ec5a6b60ac\
dfefaffb53feec7fbe6a0bc6193d4118efb4550f87e7b6c38414ef808929be1a26d9efd1d4116b954993f75d74c0947d\
17ab616aa0505ec44d48c80f31619a5d21a21b6604a69b16cc30ec8645e5ae82e64f74c14c0eb3c43ff73aa6479b4c17\
57ffb1e3b3933047139adf2e1ab7f49805737dccae18b75adbc0ed2bc60bb30de6f9b264fd120e1e3308076aa2bfb03b\
7d9090ed9bcf61816a5fbeafb80b0e164ecf1a4be110d5b3520e65d4b34a28efdb33664185d123060696ab257d7ebb36\
5423e925b299c816225b896c23b21d09f33a908d988b988f5888e8422c461c8038107110e260c42188431187210e471c\
8138127114e268c431886311c7218e479c8038d1c19d6b91b0491440c2265300099b4201246c2a0590b0691440c2a653\
00099b4101244ca3001236930248d82c0a2061b3298084cda1001236970248989b0248d83c0a2061250e7a4be806925d\
449807333c94e1a10c8f172a851cf62a0e0b2da83648bc5e25de1a0e8b9478b395780f45f13697c26225dec3382c91e2\
157f97ede1b66c77a709360b91949c83988b9887988f588058885884e842ec4783b0a3ef5f56c6f3f687d9195890f1fc\
4c8423548f6a39d459e033e4941fa98922216d79a9268aa9657ed5b2651c8eb2e7bd138e1663a4e5714d4c1013c52431\
594c1153a5311d6308db8f8ee5709c53e4f8b42227a822010e27da7def8493ec22cb35314d28573b191707399c622621\
641b6289db33dfed81fa24e8ce29a14b5303c36fdf34d4d9148770101ab424989a1d5ca9471232a5512cb04db4a52916\
926971680a874246a2591e28d150c8158f3487a5cf0b1f93f695d50dcd1c4e4d246185261ac522d124840c17aa1b110e\
2d093311b720eab86e489e10d01a28c213cb3e65a1cdbe0eb598966e1f6310849863fb96158b433c0956c2d07d394148\
68429dc32b93b04a1379421da8edf240edc0a6af4eebd769aa5f6b3824f18c3addeed7197d9a8ebd5b8bbd5bc7e14c59\
485afc59cae2853476e1f61508c7c6cfe6d02937b82b65e3ddea09eb39f438365ed005e7883225f00652132bc3f12aa3\
f12aa3f142c2ca31a39c32ca290309abc08c0acaa8a00c24ac12332a29a3923290b02acca8a28c2aca40c21662c642ca\
58481948583566545346356520615e2fba306622d67b6905915e2f2d25421156833510bd88f5355483486f8d17ce55c3\
771e87f32db820655017aa6dd9c061a36350725b2e124bd4b6b4ff0fdfc9fd17ccf49bbc8c3a70b17ad54b385c6ac165\
ca272e47c96e4a93ec15eacdafe47015fac4d5b664afc9f4896b51aed771e8758a5c9f56e40655e4460e37a14fdc6c17\
b9857ce2565cbc99c36dd2276e17d21ceed084e117d208ee944670971ae21e7b8871baefe6708f9cee2deac6c6f4e9be\
97c37dce74df6f8856d126e4e06e15725c1f4818f69c3e988487684eb7c9397d183ffa91b4f77d54bdef760e8fe19c3e\
6ebfef8e7f9ad327f0dd9fe4b0d399d35d69739a8373fa1487a765839f49cde9b3ea09bb39ec71e634a70b9e73e67453\
4a0eb5a83a442f627d2da98e486f2d29970845581dd640f422d6d7510d22bd7554830845980f6bf8bcf0bc12cc0b1c5e\
b4e0a594b65f569ff20a87bd8eb6e5a7bcea68bbe43f683b13e135f588d739bc61c19b4a936fe1f6bc9db63defa827be\
cbe13dd4e4fbf6f67c90a9c90f716b3ee2f0b153e493b4229faa229f71f81c35f9855de44bd2e457b8f86b0edf484d7e\
ab34f91d69f27ba9c91f94f4f6a46bf2470e3f494dfeac6eec4dd7e42f1c7e7534f95b4a93bf2b4dfe9130cc84fb2f46\
07286cef0d0000";

    fn fixture(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let bytes: Vec<u8> = (0..FIXTURE_HEX.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&FIXTURE_HEX[i..i + 2], 16).unwrap())
            .collect();
        let path = dir.path().join("HAPT.pkl.gz");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn windows_inside_labelled_segments() {
        let dir = tempfile::tempdir().unwrap();
        let d = read(&fixture(&dir), 3, 2).unwrap();
        // User 3: [4,4,4,4] → start 0; [3,3,3] → start 0. User 7: run of 1 at 1..6 → starts
        // 1 and 3; run of 6 at 9..12 → start 9. Runs shorter than 3, -1 and 7 give nothing.
        assert_eq!(d.labels, vec![3, 2, 0, 0, 5]);
        assert_eq!(d.groups, Some(vec![3, 3, 7, 7, 7]));
        assert_eq!(d.sample_shape, vec![6, 3]);
        assert_eq!(d.class_names[5], "laying");
        let expected = |n: usize, base: usize, start: usize| -> Vec<f32> {
            (0..6).flat_map(|c| (0..3).map(move |t| (c * n + start + t + base) as f32 / 4.0)).collect()
        };
        assert_eq!(d.sample(0), expected(7, 100, 0).as_slice());
        assert_eq!(d.sample(1), expected(3, 200, 0).as_slice());
        assert_eq!(d.sample(3), expected(12, 0, 3).as_slice());
        assert_eq!(d.sample(4), expected(12, 0, 9).as_slice());
        assert_eq!(read(&fixture(&dir), 2, 1).unwrap().len(), 3 + 1 + 2 + 4 + 1 + 2);
    }

    #[test]
    fn windows_fit_inside_runs() {
        let labels = [-1, 2, 2, 2, 2, 2, 2, 2, 5, 5, 7, 7, 7, 1, 1, 1];
        assert_eq!(windows(&labels, 3, 2), vec![(1, 2), (3, 2), (5, 2), (13, 1)]);
        assert_eq!(windows(&labels, 2, 3), vec![(1, 2), (4, 2), (8, 5), (13, 1)]);
        assert_eq!(windows(&labels, 8, 1), vec![]);
    }

    #[test]
    fn rejects_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pkl.gz");
        let message = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            read(&path, 4, 2).unwrap_err().to_string().replace(&path.display().to_string(), "x")
        };
        assert_eq!(
            message(b"\x80\x02}q\x00."),
            "x: expected a gzip-compressed pickle, but the file lacks the gzip magic 1f 8b"
        );
        assert!(message(&gzip(b"not a pickle"))
            .starts_with("x: expected a pickle of dict user → list of pandas DataFrames: "));
        let list = serde_pickle::to_vec(&vec![1, 2], Default::default()).unwrap();
        assert_eq!(message(&gzip(&list)), "x: expected a pickled dict of user id → recordings at the top");
        let frames: BTreeMap<i64, Vec<BTreeMap<String, i64>>> =
            [(5, vec![BTreeMap::from([("_typ".into(), 1)])])].into();
        let frames = serde_pickle::to_vec(&frames, Default::default()).unwrap();
        assert_eq!(
            message(&gzip(&frames)),
            "x: user 5 recording 0: expected a DataFrame state whose '_data' is a block-manager state tuple"
        );
        assert_eq!(
            read(&fixture(&dir), 0, 1).unwrap_err().to_string().rsplit(": ").next(),
            Some("window (0) and step (1) must be positive")
        );
    }
}
