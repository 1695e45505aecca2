//! NumPy `.npy` files: reading plain little-endian C-order arrays (format versions 1.0, 2.0
//! and 3.0), writing f32/i64 arrays as numpy does, and reading a dataset from an inputs file,
//! a labels file and an optional groups file.

use std::io::Write;
use std::path::Path;

use super::inputs::Inputs;
use super::{read_file, Dataset, SourceError};

const MAGIC: &[u8] = b"\x93NUMPY";

/// An array read from a `.npy` file, in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

/// The values of an [`NpyArray`]; every integer dtype up to 32 bits (and i8) widens to `I64`.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// How the inputs array of [`read`] is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyLayout {
    /// N × channels × time.
    Series,
    /// N × height × width (one channel) or N × channels × height × width.
    Image,
}

/// Reads a whole `.npy` file.
pub fn read_array(path: &Path) -> Result<NpyArray, SourceError> {
    let bytes = read_file(path)?;
    let bad = |detail: String| SourceError::malformed(path, detail);
    if !bytes.starts_with(MAGIC) {
        return Err(bad("not a .npy file: missing the \\x93NUMPY magic".into()));
    }
    if bytes.len() < 12 {
        return Err(bad(format!("truncated header: {} bytes", bytes.len())));
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        major => return Err(bad(format!("unsupported .npy format version {major}.{}", bytes[7]))),
    };
    let header = bytes.get(start..start + header_len).ok_or_else(|| {
        let found = bytes.len() - start;
        bad(format!("truncated header: expected {header_len} bytes, found {found}"))
    })?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text".into()))?;
    let (descr, shape) = parse_header(header).map_err(|e| bad(format!("header {:?}: {e}", header.trim_end())))?;
    let payload = &bytes[start + header_len..];
    let size: usize = match &descr[1..] {
        "f4" | "i4" | "u4" => 4,
        "f8" | "i8" => 8,
        "i2" | "u2" => 2,
        "i1" | "u1" => 1,
        _ => return Err(bad(format!("unsupported dtype {descr:?} (expected f4, f8, i1, i2, i4, i8, u1, u2 or u4)"))),
    };
    let needed = shape
        .iter()
        .try_fold(size, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    if payload.len() != needed {
        return Err(bad(format!("shape {shape:?} of {descr} needs {needed} data bytes, found {}", payload.len())));
    }
    let data = match &descr[1..] {
        "f4" => NpyData::F32(decode(payload, f32::from_le_bytes)),
        "f8" => NpyData::F64(decode(payload, f64::from_le_bytes)),
        "i8" => NpyData::I64(decode(payload, i64::from_le_bytes)),
        "i4" => NpyData::I64(decode(payload, |b| i32::from_le_bytes(b).into())),
        "u4" => NpyData::I64(decode(payload, |b| u32::from_le_bytes(b).into())),
        "i2" => NpyData::I64(decode(payload, |b| i16::from_le_bytes(b).into())),
        "u2" => NpyData::I64(decode(payload, |b| u16::from_le_bytes(b).into())),
        "i1" => NpyData::I64(decode(payload, |b| i8::from_le_bytes(b).into())),
        // "u1", the last kind the size match above lets through.
        _ => NpyData::I64(decode(payload, |b| u8::from_le_bytes(b).into())),
    };
    Ok(NpyArray { shape, data })
}

/// Decodes consecutive `W`-byte little-endian items.
fn decode<const W: usize, T>(payload: &[u8], from: impl Fn([u8; W]) -> T) -> Vec<T> {
    payload.chunks_exact(W).map(|b| from(std::array::from_fn(|i| b[i]))).collect()
}

/// Parses the header dict `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` into
/// the descr (byte order checked) and the shape.
fn parse_header(header: &str) -> Result<(String, Vec<usize>), String> {
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .or_else(|| header.find(&format!("\"{key}\"")))
            .ok_or_else(|| format!("no '{key}' field"))?;
        let rest = header[at + key.len() + 2..].trim_start();
        Ok(rest.strip_prefix(':').ok_or_else(|| format!("no ':' after '{key}'"))?.trim_start())
    };
    let descr = field("descr")?;
    let quote = descr.chars().next().filter(|&q| q == '\'' || q == '"').ok_or("descr is not a simple dtype string")?;
    let descr = descr[1..].split(quote).next().unwrap_or_default();
    match descr.chars().next() {
        Some('<' | '|') if descr.len() > 1 => {}
        Some('>') => return Err(format!("big-endian dtype {descr} is not supported")),
        _ => return Err(format!("unsupported dtype {descr:?} (expected little-endian '<' or '|')")),
    }
    if !field("fortran_order")?.starts_with("False") {
        return Err("fortran_order=True is not supported (save a C-ordered array)".into());
    }
    let shape = field("shape")?;
    let inner = shape.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or("shape is not a tuple")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| format!("bad shape dimension {d:?}")))
        .collect::<Result<_, _>>()?;
    Ok((descr.to_string(), shape))
}

/// Writes a C-order `<f4` array (format version 1.0).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write(path, "<f4", shape, data.len(), &bytes)
}

/// Writes a C-order `<i8` array (format version 1.0).
pub fn write_i64(path: &Path, shape: &[usize], data: &[i64]) -> std::io::Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write(path, "<i8", shape, data.len(), &bytes)
}

/// A C-order `<f4` array written a piece at a time: the header first (the shape is known up front),
/// then the values in order, so that an array larger than memory can be written.
pub struct F32Writer {
    file: std::io::BufWriter<std::fs::File>,
    remaining: usize,
}

impl F32Writer {
    pub fn create(path: &Path, shape: &[usize]) -> std::io::Result<F32Writer> {
        Ok(F32Writer { file: start(path, "<f4", shape)?, remaining: shape.iter().product() })
    }

    /// The next values, in C order.
    pub fn write(&mut self, values: &[f32]) -> std::io::Result<()> {
        if values.len() > self.remaining {
            return Err(invalid(format!("{} values more than the shape holds", values.len() - self.remaining)));
        }
        self.remaining -= values.len();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.file.write_all(&bytes)
    }

    /// Ends the array, which must have received every value.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.remaining != 0 {
            return Err(invalid(format!("{} values missing for the shape", self.remaining)));
        }
        self.file.flush()
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

fn write(path: &Path, descr: &str, shape: &[usize], count: usize, payload: &[u8]) -> std::io::Result<()> {
    if shape.iter().product::<usize>() != count {
        return Err(invalid(format!("shape {shape:?} does not hold {count} values")));
    }
    let mut file = start(path, descr, shape)?;
    file.write_all(payload)?;
    file.flush()
}

/// Creates `path` and writes the header of a C-order array of `descr` and `shape` (format 1.0).
fn start(path: &Path, descr: &str, shape: &[usize]) -> std::io::Result<std::io::BufWriter<std::fs::File>> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    // Pad with spaces and end with a newline so that magic + version + length + header is a
    // multiple of 64 bytes.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len =
        u16::try_from(header.len()).map_err(|_| invalid(format!("shape {shape:?} gives too long a header")))?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    file.write_all(MAGIC)?;
    file.write_all(&[1, 0])?;
    file.write_all(&header_len.to_le_bytes())?;
    file.write_all(header.as_bytes())?;
    Ok(file)
}

/// More classes than any classification dataset has: a larger label is a damaged file.
const MAX_CLASSES: i64 = 1 << 20;

/// Reads a dataset: float inputs laid out as `layout` says, integer labels of shape (N,)
/// already in 0..K-1 (K = largest label + 1, classes named "0".."K-1") and optional integer
/// groups of shape (N,).
pub fn read(inputs: &Path, labels: &Path, groups: Option<&Path>, layout: NpyLayout) -> Result<Dataset, SourceError> {
    let x = read_array(inputs)?;
    let values = match x.data {
        NpyData::F32(v) => v,
        NpyData::F64(v) => v.into_iter().map(|v| v as f32).collect(),
        NpyData::I64(_) => {
            return Err(SourceError::malformed(inputs, "expected float32 or float64 inputs, found integers"))
        }
    };
    let sample_shape = match (layout, x.shape.as_slice()) {
        (NpyLayout::Series, [_, c, t]) => vec![*c, *t],
        (NpyLayout::Image, [_, h, w]) => vec![1, *h, *w],
        (NpyLayout::Image, [_, c, h, w]) => vec![*c, *h, *w],
        (NpyLayout::Series, shape) => {
            return Err(SourceError::malformed(
                inputs,
                format!("expected series inputs of shape N×C×T, found {shape:?}"),
            ));
        }
        (NpyLayout::Image, shape) => {
            return Err(SourceError::malformed(
                inputs,
                format!("expected image inputs of shape N×H×W or N×C×H×W, found {shape:?}"),
            ));
        }
    };
    let n = x.shape[0];
    let labels_values = read_per_sample(labels, inputs, n)?;
    if let Some((i, label)) = labels_values.iter().enumerate().find(|(_, &l)| l < 0) {
        return Err(SourceError::malformed(
            labels,
            format!("label {label} at index {i} is negative; labels must already be 0..K-1"),
        ));
    }
    let classes = labels_values.iter().max().map_or(0, |&max| max + 1);
    if classes > MAX_CLASSES {
        let (i, label) = labels_values.iter().enumerate().max_by_key(|&(_, l)| *l).expect("a label");
        return Err(SourceError::malformed(
            labels,
            format!("label {label} at index {i} would make {classes} classes; at most {MAX_CLASSES} are supported"),
        ));
    }
    let data = Dataset {
        sample_shape,
        inputs: Inputs::Held(values),
        labels: labels_values,
        groups: groups.map(|g| read_per_sample(g, inputs, n)).transpose()?,
        given_split: None,
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        channel_names: Vec::new(),
    };
    data.check(inputs)?;
    Ok(data)
}

/// Reads an integer array of shape (n,) that holds one value per sample of `inputs`.
fn read_per_sample(path: &Path, inputs: &Path, n: usize) -> Result<Vec<i64>, SourceError> {
    let array = read_array(path)?;
    let NpyData::I64(values) = array.data else {
        return Err(SourceError::malformed(path, "expected an integer array, found floats"));
    };
    if array.shape != [n] {
        return Err(SourceError::malformed(
            path,
            format!("shape {:?} does not match the {n} samples of {}; expected [{n}]", array.shape, inputs.display()),
        ));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `np.save` of `np.array([[0.5,-1.25,2],[3,4.5,-6]], dtype='<f4')`.
    const NUMPY_F32_2X3: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }                                                          \x0a\x00\x00\x00?\x00\x00\xa0\xbf\x00\x00\x00@\x00\x00@@\x00\x00\x90@\x00\x00\xc0\xc0";
    /// `np.save` of `np.array([-2,0,3,32767], dtype='<i2')`.
    const NUMPY_I2_4: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<i2', 'fortran_order': False, 'shape': (4,), }                                                            \x0a\xfe\xff\x00\x00\x03\x00\xff\x7f";
    /// `format.write_array(f, np.array([0,7,255], dtype='u1'), version=(2,0))`.
    const NUMPY_U1_V2: &[u8] = b"\x93NUMPY\x02\x00t\x00\x00\x00{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }                                                          \x0a\x00\x07\xff";
    /// `format.write_array(f, np.array([1.5,-2.0]), version=(3,0))`.
    const NUMPY_F8_V3: &[u8] = b"\x93NUMPY\x03\x00t\x00\x00\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }                                                          \x0a\x00\x00\x00\x00\x00\x00\xf8?\x00\x00\x00\x00\x00\x00\x00\xc0";
    /// `np.save` of `np.array([1.0], dtype='>f4')`.
    const NUMPY_BIG_ENDIAN: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }                                                            \x0a?\x80\x00\x00";
    /// `np.save` of a Fortran-ordered 2×2 `<f4` array.
    const NUMPY_FORTRAN: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }                                                           \x0a\x00\x00\x80?\x00\x00@@\x00\x00\x00@\x00\x00\x80@";

    fn put(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn error(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let e = read_array(&put(&dir, "a.npy", bytes)).unwrap_err().to_string();
        e.replace(&dir.path().display().to_string(), "D")
    }

    #[test]
    fn reads_files_written_by_numpy() {
        let dir = tempfile::tempdir().unwrap();
        let read = |bytes| read_array(&put(&dir, "a.npy", bytes)).unwrap();
        assert_eq!(
            read(NUMPY_F32_2X3),
            NpyArray { shape: vec![2, 3], data: NpyData::F32(vec![0.5, -1.25, 2.0, 3.0, 4.5, -6.0]) }
        );
        assert_eq!(read(NUMPY_I2_4), NpyArray { shape: vec![4], data: NpyData::I64(vec![-2, 0, 3, 32767]) });
        assert_eq!(read(NUMPY_U1_V2), NpyArray { shape: vec![3], data: NpyData::I64(vec![0, 7, 255]) });
        assert_eq!(read(NUMPY_F8_V3), NpyArray { shape: vec![2], data: NpyData::F64(vec![1.5, -2.0]) });
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert_eq!(
            error(NUMPY_BIG_ENDIAN),
            r#"D/a.npy: header "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }": big-endian dtype >f4 is not supported"#
        );
        assert!(error(NUMPY_FORTRAN).ends_with(": fortran_order=True is not supported (save a C-ordered array)"));
        assert_eq!(
            error(&NUMPY_F32_2X3[..NUMPY_F32_2X3.len() - 1]),
            "D/a.npy: shape [2, 3] of <f4 needs 24 data bytes, found 23"
        );
        assert_eq!(error(b"PK\x03\x04"), "D/a.npy: not a .npy file: missing the \\x93NUMPY magic");
        let mut unsigned64 = NUMPY_I2_4.to_vec();
        let at = unsigned64.windows(3).position(|w| w == b"<i2").unwrap();
        unsigned64[at + 1..at + 3].copy_from_slice(b"u8");
        assert_eq!(
            error(&unsigned64),
            r#"D/a.npy: unsupported dtype "<u8" (expected f4, f8, i1, i2, i4, i8, u1, u2 or u4)"#
        );
    }

    #[test]
    fn writes_what_numpy_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.npy");
        write_f32(&path, &[2, 3], &[0.5, -1.25, 2.0, 3.0, 4.5, -6.0]).unwrap();
        let written = std::fs::read(&path).unwrap();
        // Same header length, dict and data as numpy's file; numpy pads the dict differently.
        assert_eq!(written.len(), NUMPY_F32_2X3.len());
        assert_eq!(written[..10], NUMPY_F32_2X3[..10]);
        assert!(written[10..].starts_with(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } "));
        assert_eq!(written[127..], NUMPY_F32_2X3[127..]);

        write_i64(&path, &[3], &[-1, 0, i64::MAX]).unwrap();
        let back = read_array(&path).unwrap();
        assert_eq!(back, NpyArray { shape: vec![3], data: NpyData::I64(vec![-1, 0, i64::MAX]) });
        assert_eq!(std::fs::read(&path).unwrap().len(), 128 + 24);

        write_f32(&path, &[], &[7.0]).unwrap();
        assert_eq!(read_array(&path).unwrap(), NpyArray { shape: vec![], data: NpyData::F32(vec![7.0]) });
        assert!(write_f32(&path, &[2, 2], &[1.0]).is_err());
    }

    #[test]
    fn a_piecewise_array_is_the_whole_one_and_must_be_complete() {
        let dir = tempfile::tempdir().unwrap();
        let (whole, pieces) = (dir.path().join("whole.npy"), dir.path().join("pieces.npy"));
        let values = [0.5, -1.25, 2.0, 3.0, 4.5, -6.0];
        write_f32(&whole, &[2, 3], &values).unwrap();
        let mut writer = F32Writer::create(&pieces, &[2, 3]).unwrap();
        writer.write(&values[..1]).unwrap();
        writer.write(&values[1..]).unwrap();
        writer.finish().unwrap();
        assert_eq!(std::fs::read(&pieces).unwrap(), std::fs::read(&whole).unwrap());
        let mut short = F32Writer::create(&pieces, &[2, 3]).unwrap();
        short.write(&values[..5]).unwrap();
        assert!(short.finish().unwrap_err().to_string().contains("1 values missing"));
        let mut long = F32Writer::create(&pieces, &[2]).unwrap();
        assert!(long.write(&values[..3]).unwrap_err().to_string().contains("1 values more"));
    }

    #[test]
    fn reads_a_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let x = dir.path().join("x.npy");
        let y = dir.path().join("y.npy");
        let g = dir.path().join("g.npy");
        write_f32(&x, &[2, 1, 2, 2], &[1., 2., 3., 4., 5., 6., 7., 8.]).unwrap();
        write_i64(&y, &[2], &[2, 0]).unwrap();
        write_i64(&g, &[2], &[10, 11]).unwrap();
        let d = read(&x, &y, Some(&g), NpyLayout::Image).unwrap();
        assert_eq!(d.sample_shape, vec![1, 2, 2]);
        assert_eq!(d.sample(1), &[5., 6., 7., 8.]);
        assert_eq!(d.labels, vec![2, 0]);
        assert_eq!(d.class_names, vec!["0", "1", "2"]);
        assert_eq!(d.groups, Some(vec![10, 11]));
        let d = read(&x, &y, None, NpyLayout::Series);
        assert!(d
            .unwrap_err()
            .to_string()
            .ends_with("x.npy: expected series inputs of shape N×C×T, found [2, 1, 2, 2]"));

        write_f32(&x, &[2, 4], &[0.; 8]).unwrap();
        let e = read(&x, &y, None, NpyLayout::Image).unwrap_err().to_string();
        assert!(e.ends_with("expected image inputs of shape N×H×W or N×C×H×W, found [2, 4]"), "{e}");
        write_f32(&x, &[2, 2, 2], &[0.; 8]).unwrap();
        assert_eq!(read(&x, &y, None, NpyLayout::Image).unwrap().sample_shape, vec![1, 2, 2]);
        assert_eq!(read(&x, &y, None, NpyLayout::Series).unwrap().sample_shape, vec![2, 2]);

        write_i64(&y, &[3], &[0, 1, 0]).unwrap();
        let e = read(&x, &y, None, NpyLayout::Series).unwrap_err().to_string();
        assert_eq!(
            e.replace(&dir.path().display().to_string(), "D"),
            "D/y.npy: shape [3] does not match the 2 samples of D/x.npy; expected [2]"
        );
        write_i64(&y, &[2], &[0, -1]).unwrap();
        let e = read(&x, &y, None, NpyLayout::Series).unwrap_err().to_string();
        assert!(e.ends_with("y.npy: label -1 at index 1 is negative; labels must already be 0..K-1"), "{e}");
        write_f32(&y, &[2], &[0., 1.]).unwrap();
        let e = read(&x, &y, None, NpyLayout::Series).unwrap_err().to_string();
        assert!(e.ends_with("y.npy: expected an integer array, found floats"), "{e}");
    }
}
