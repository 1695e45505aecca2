//! Reader for UEA/UCR `.ts` time-series classification files.
//!
//! `#` lines are comments, `@` lines the header (`@classLabel true a b c` names the classes),
//! and after `@data` each line holds one series: channels separated by `:`, values by `,`,
//! the class label last. Only equal-length series without missing values are supported.
//! Lines, channels and values are numbered from 1 in error messages.

use std::path::Path;

use super::inputs::Inputs;
use super::{concat_given_splits, Dataset, SourceError};

/// Reads one `.ts` file; sample shape is `[channels, length]`, labels index the classes in
/// `@classLabel` header order.
pub fn read(path: &Path) -> Result<Dataset, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|e| SourceError::io(path, e))?;
    let mut class_names: Option<Vec<String>> = None;
    let mut in_data = false;
    let mut shape = None;
    let mut inputs = Vec::new();
    let mut labels = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = if in_data {
            parse_series(line, class_names.as_deref(), &mut shape, &mut inputs).map(|label| labels.push(label))
        } else {
            parse_header(line, &mut class_names, &mut in_data)
        };
        parsed.map_err(|e| SourceError::malformed(path, format!("line {}: {e}", index + 1)))?;
    }
    let Some((channels, length)) = shape else {
        let what = if in_data { "no series after @data" } else { "no @data line" };
        return Err(SourceError::malformed(path, what));
    };
    let data = Dataset {
        sample_shape: vec![channels, length],
        inputs: Inputs::Held(inputs),
        labels,
        groups: None,
        given_split: None,
        class_names: class_names.unwrap_or_default(),
        channel_names: Vec::new(),
    };
    data.check(path)?;
    Ok(data)
}

/// Handles one line before `@data`.
fn parse_header(line: &str, class_names: &mut Option<Vec<String>>, in_data: &mut bool) -> Result<(), String> {
    let mut words = line.split_whitespace();
    let keyword = words.next().unwrap_or_default().to_ascii_lowercase();
    let flag = words.next().map(str::to_ascii_lowercase);
    match (keyword.as_str(), flag.as_deref()) {
        ("@classlabel", Some("true")) => *class_names = Some(words.map(String::from).collect()),
        ("@classlabel", _) => {
            return Err("expected `@classLabel true <labels>` (only classification sets are supported)".into())
        }
        ("@timestamps", Some("true")) => return Err("timestamped series are not supported".into()),
        ("@data", _) => *in_data = true,
        (keyword, _) if keyword.starts_with('@') => {}
        _ => return Err(format!("expected a header line starting with '@' before @data, found {line:?}")),
    }
    Ok(())
}

/// Parses one series line, appending its values to `inputs`, and returns its label. The first
/// series fixes `shape` (channels, length); every later one must match it.
fn parse_series(
    line: &str,
    classes: Option<&[String]>,
    shape: &mut Option<(usize, usize)>,
    inputs: &mut Vec<f32>,
) -> Result<i64, String> {
    let classes = classes.ok_or("series before any `@classLabel true ...` header")?;
    let mut parts: Vec<&str> = line.split(':').collect();
    let label = parts.pop().unwrap_or_default().trim();
    if parts.is_empty() {
        return Err("expected channels separated by ':' followed by the class label".into());
    }
    let label = classes
        .iter()
        .position(|c| c == label)
        .ok_or_else(|| format!("class label {label:?} is not one of @classLabel {classes:?}"))?;
    let (channels, length) = *shape.get_or_insert_with(|| (parts.len(), parts[0].split(',').count()));
    if parts.len() != channels {
        return Err(format!("series has {} channels, expected {channels}", parts.len()));
    }
    for (c, part) in (1..).zip(parts) {
        let before = inputs.len();
        for (j, value) in (1..).zip(part.split(',')) {
            let value = value.trim();
            if value == "?" {
                return Err(format!(
                    "missing value '?' at value {j} of channel {c} (missing values are not supported)"
                ));
            }
            let value = value
                .parse::<f32>()
                .map_err(|_| format!("value {j} of channel {c}: cannot parse {value:?} as a number"))?;
            inputs.push(value);
        }
        let found = inputs.len() - before;
        if found != length {
            return Err(format!(
                "series has {found} values in channel {c}, expected {length} (unequal lengths are not supported)"
            ));
        }
    }
    Ok(label as i64)
}

/// Reads a train and a test `.ts` file and concatenates them (train first) with the given
/// split marked; both files must declare the same classes and have the same sample shape.
pub fn read_train_test(train: &Path, test: &Path) -> Result<Dataset, SourceError> {
    concat_given_splits(read(train)?, read(test)?, train, test)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::GivenSplit;

    const HEADER: &str = "# comment\n@problemName Tiny\n@classLabel true walk run\n@data\n";

    fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{HEADER}{body}")).unwrap();
        path
    }

    fn error(body: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "x.ts", body);
        read(&path).unwrap_err().to_string().replace(&path.display().to_string(), "x.ts")
    }

    #[test]
    fn reads_channels_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "a.ts", "1,2,3:4,5,6:run\n\n-1.5, 0 ,2e1:7,8,9:walk\n");
        let d = read(&path).unwrap();
        assert_eq!(d.sample_shape, vec![2, 3]);
        assert_eq!(d.labels, vec![1, 0]);
        assert_eq!(d.class_names, vec!["walk", "run"]);
        assert_eq!(d.sample(0), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(d.sample(1), &[-1.5, 0.0, 20.0, 7.0, 8.0, 9.0]);
        assert!(d.groups.is_none() && d.given_split.is_none());
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            error("1,2,3:4,5,6:run\n1,2,3:4,5:walk\n"),
            "x.ts: line 6: series has 2 values in channel 2, expected 3 (unequal lengths are not supported)"
        );
        assert_eq!(error("1,2:3,4:run\n1,2:walk\n"), "x.ts: line 6: series has 1 channels, expected 2");
        assert_eq!(
            error("1,?:3,4:run\n"),
            "x.ts: line 5: missing value '?' at value 2 of channel 1 (missing values are not supported)"
        );
        assert_eq!(
            error("1,2:3,4:jump\n"),
            r#"x.ts: line 5: class label "jump" is not one of @classLabel ["walk", "run"]"#
        );
        assert_eq!(error("1,x:3,4:run\n"), r#"x.ts: line 5: value 2 of channel 1: cannot parse "x" as a number"#);
        assert_eq!(error("1,2,3\n"), "x.ts: line 5: expected channels separated by ':' followed by the class label");
        assert_eq!(error(""), "x.ts: no series after @data");
        assert_eq!(error("1,nan:3,4:run\n"), "x.ts: sample 0: value 1 is not finite (NaN)");
    }

    #[test]
    fn header_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.ts");
        std::fs::write(&path, "@classLabel false\n@data\n1:2\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("h.ts: line 1: expected `@classLabel true <labels>` (only classification sets are supported)"),
            "{e}"
        );
        std::fs::write(&path, "@data\n1,2:walk\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.ends_with("h.ts: line 2: series before any `@classLabel true ...` header"), "{e}");
    }

    #[test]
    fn train_test_concatenates_and_checks_shape() {
        let dir = tempfile::tempdir().unwrap();
        let train = write(&dir, "tr.ts", "1,2:3,4:run\n");
        let test = write(&dir, "te.ts", "5,6:7,8:walk\n0,0:0,0:walk\n");
        let d = read_train_test(&train, &test).unwrap();
        assert_eq!(d.labels, vec![1, 0, 0]);
        assert_eq!(d.given_split, Some(vec![GivenSplit::Train, GivenSplit::Test, GivenSplit::Test]));
        assert_eq!(d.sample(1), &[5.0, 6.0, 7.0, 8.0]);
        let odd = write(&dir, "odd.ts", "1,2,3:4,5,6:run\n");
        let e = read_train_test(&train, &odd).unwrap_err().to_string();
        assert!(e.contains("odd.ts: sample shape [2, 3] differs from [2, 2] in"), "{e}");
    }
}
