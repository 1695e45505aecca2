//! Image folders in torchvision's `ImageFolder` layout, read by reference.
//!
//! `ROOT/train/<class>/*`, `ROOT/test/<class>/*` and, if present, `ROOT/val/<class>/*` give the
//! splits; a root without `train/` holds the class folders itself and the pipeline's split rule
//! applies. Classes are the training folders' names, sorted as torchvision sorts them (by their
//! bytes), and the files of a class are sorted by name; files that are not `.png`, `.jpg` or `.jpeg`
//! (any case) are skipped, as torchvision skips them.
//!
//! Each file is decoded with the `image` crate on rayon's pool into channels × height × width f32
//! values in [0, 1] (byte / 255), after the optional resize and center crop ([`ImageDecode`]). The
//! store keeps each file's relative path, size and xxh3-64 content hash ([`FileRef`]) instead of
//! its pixels; [`FolderFiles`] reads them back and refuses a file that changed since. Decoded
//! samples are held while a command runs when they fit `inputs::decoded_limit`, and decoded on
//! each use otherwise.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::imageops::FilterType;
use image::DynamicImage;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::inputs::{self, Inputs};
use super::{Dataset, GivenSplit, SourceError};

/// Which channels a decoded image has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageColor {
    /// Three channels, as torchvision's loader converts every image (`.convert("RGB")`).
    #[default]
    Rgb,
    /// One channel: a grey file's own values; colour files as the `image` crate's luma (Rec. 709
    /// weights).
    Gray,
}

impl ImageColor {
    pub fn channels(self) -> usize {
        match self {
            ImageColor::Rgb => 3,
            ImageColor::Gray => 1,
        }
    }
}

/// A target size: one number sets the shorter side and keeps the aspect ratio (torchvision's
/// `Resize(n)`; for a crop, a square), `[height, width]` sets both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ImageSize {
    Side(u32),
    HeightWidth([u32; 2]),
}

/// How every file becomes one sample of the same shape: resize (bilinear, antialiased: the `image`
/// crate's triangle filter), then center crop (torchvision's `CenterCrop` offsets), then the colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageDecode {
    #[serde(default)]
    pub color: ImageColor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<ImageSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center_crop: Option<ImageSize>,
}

/// A sample's file, as the `samples` table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// Relative to the root, `/`-separated.
    pub path: String,
    pub size: u64,
    /// xxh3-64 of the file's bytes.
    pub hash: u64,
}

/// One image file found under the root, before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub label: i64,
    pub split: Option<GivenSplit>,
}

/// The files under `root` in sample order (split folders train, val, test; classes sorted; files
/// sorted), and the class names.
pub fn list(root: &Path) -> Result<(Vec<Listed>, Vec<String>), SourceError> {
    let train = root.join("train");
    if !train.is_dir() {
        let classes = class_folders(root)?;
        let files = list_split(root, "", &classes, &classes, None)?;
        return Ok((files, classes));
    }
    let classes = class_folders(&train)?;
    let mut files = list_split(root, "train", &classes, &classes, Some(GivenSplit::Train))?;
    let test = root.join("test");
    let val = root.join("val");
    if val.is_dir() && !test.is_dir() {
        return Err(SourceError::malformed(
            root,
            "has val/ but no test/: add test/, or move val/ into train/ and let the split rule carve it",
        ));
    }
    for (name, split) in [("val", GivenSplit::Val), ("test", GivenSplit::Test)] {
        let dir = root.join(name);
        if dir.is_dir() {
            let present = class_folders(&dir)?;
            if let Some(extra) = present.iter().find(|c| !classes.contains(c)) {
                return Err(SourceError::malformed(
                    &dir,
                    format!("class folder '{extra}' is not in train/ ({classes:?})"),
                ));
            }
            files.extend(list_split(root, name, &present, &classes, Some(split))?);
        }
    }
    Ok((files, classes))
}

/// The sub-folders of `dir`, sorted by name; none is an error.
fn class_folders(dir: &Path) -> Result<Vec<String>, SourceError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| SourceError::io(dir, e))? {
        let entry = entry.map_err(|e| SourceError::io(dir, e))?;
        if entry.path().is_dir() {
            let name = entry
                .file_name()
                .into_string()
                .map_err(|name| SourceError::malformed(dir, format!("folder name {name:?} is not UTF-8")))?;
            names.push(name);
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(SourceError::malformed(dir, "holds no class folders (expected DIR/<class>/*.png|jpg)"));
    }
    Ok(names)
}

fn is_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg"].iter().any(|ext| lower.ends_with(ext))
}

/// The image files of `classes` under `root/split`, labelled by their index in `all_classes`.
fn list_split(
    root: &Path,
    split_dir: &str,
    classes: &[String],
    all_classes: &[String],
    split: Option<GivenSplit>,
) -> Result<Vec<Listed>, SourceError> {
    let mut out = Vec::new();
    for class in classes {
        let relative_dir = if split_dir.is_empty() { class.clone() } else { format!("{split_dir}/{class}") };
        let dir = root.join(&relative_dir);
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| SourceError::io(&dir, e))? {
            let entry = entry.map_err(|e| SourceError::io(&dir, e))?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if is_image(&name) && entry.path().is_file() {
                names.push(name);
            }
        }
        if names.is_empty() && split != Some(GivenSplit::Test) && split != Some(GivenSplit::Val) {
            return Err(SourceError::malformed(&dir, "holds no .png, .jpg or .jpeg files"));
        }
        names.sort();
        let label = all_classes.iter().position(|c| c == class).expect("a listed class") as i64;
        out.extend(names.into_iter().map(|name| Listed { path: format!("{relative_dir}/{name}"), label, split }));
    }
    Ok(out)
}

/// Reads every image under `root`: the dataset (with the given splits where the folders give them)
/// and each sample's file. Every file is decoded, so that a broken one is named now; the decoded
/// samples are kept only when they fit `inputs::decoded_limit`, and decoded again on each use
/// otherwise.
pub fn read(root: &Path, decode: &ImageDecode) -> Result<(Dataset, Vec<FileRef>), SourceError> {
    read_holding(root, decode, &inputs::hold_decoded)
}

/// [`read`], with `hold(count, sample_len)` saying whether the decoded samples are kept.
fn read_holding(
    root: &Path,
    decode: &ImageDecode,
    hold: &dyn Fn(usize, usize) -> Result<bool, SourceError>,
) -> Result<(Dataset, Vec<FileRef>), SourceError> {
    let (listed, class_names) = list(root)?;
    let first = listed.first().ok_or_else(|| SourceError::malformed(root, "holds no images"))?;
    let shape = decoded_shape(&root.join(&first.path), &read_bytes(root, &first.path)?, decode)?;
    let sample_len: usize = shape.iter().product();
    let read_one = |out: &mut [f32], file: &Listed| {
        let bytes = read_bytes(root, &file.path)?;
        decode_into(&root.join(&file.path), &bytes, decode, &shape, out)?;
        Ok(FileRef { path: file.path.clone(), size: bytes.len() as u64, hash: xxh3_64(&bytes) })
    };
    let (inputs, files) = if hold(listed.len(), sample_len)? {
        let mut values = vec![0f32; listed.len() * sample_len];
        let files: Vec<FileRef> = values
            .par_chunks_mut(sample_len)
            .zip(listed.par_iter())
            .map(|(out, file)| read_one(out, file))
            .collect::<Result<_, SourceError>>()?;
        (Inputs::Held(values), files)
    } else {
        let files: Vec<FileRef> = listed
            .par_iter()
            .map_init(|| vec![0f32; sample_len], |out, file| read_one(out, file))
            .collect::<Result<_, SourceError>>()?;
        let folder =
            FolderFiles { root: root.to_path_buf(), files: files.clone(), decode: *decode, shape: shape.clone() };
        (Inputs::Decoded(Arc::new(folder)), files)
    };
    // Without test images (no test/ folder), the pipeline's split rule makes the splits.
    let given_split =
        listed.iter().map(|f| f.split).collect::<Option<Vec<_>>>().filter(|splits| splits.contains(&GivenSplit::Test));
    let dataset = Dataset {
        sample_shape: shape,
        inputs,
        labels: listed.iter().map(|f| f.label).collect(),
        groups: None,
        given_split,
        class_names,
        channel_names: Vec::new(),
    };
    Ok((dataset, files))
}

/// The files a store recorded and how they decode into `shape`d samples. Every read refuses a file
/// that is missing or whose size or content hash differs from the record (the image changed since
/// the store was built), naming it.
#[derive(Debug, Clone)]
pub struct FolderFiles {
    pub root: PathBuf,
    pub files: Vec<FileRef>,
    pub decode: ImageDecode,
    pub shape: Vec<usize>,
}

impl FolderFiles {
    /// Sample `index`, decoded.
    pub fn decode(&self, index: usize) -> Result<Vec<f32>, SourceError> {
        let mut out = vec![0f32; self.shape.iter().product()];
        self.decode_into(index, &mut out)?;
        Ok(out)
    }

    /// Sample `index`, decoded into `out` (which holds exactly one sample).
    pub fn decode_into(&self, index: usize, out: &mut [f32]) -> Result<(), SourceError> {
        let file = &self.files[index];
        let path = self.root.join(&file.path);
        let bytes = read_bytes(&self.root, &file.path)?;
        check_recorded(&path, &bytes, file)?;
        decode_into(&path, &bytes, &self.decode, &self.shape, out)
    }

    /// Every sample, decoded on rayon's pool, one after the other.
    pub fn decode_all(&self) -> Result<Vec<f32>, SourceError> {
        let sample_len: usize = self.shape.iter().product();
        let mut inputs = vec![0f32; self.files.len() * sample_len];
        inputs.par_chunks_mut(sample_len).enumerate().try_for_each(|(index, out)| self.decode_into(index, out))?;
        Ok(inputs)
    }
}

/// Every recorded file that is missing or whose size or content hash differs from the record, each
/// as its error (all of them, not only the first); nothing is decoded.
pub fn changed_files(root: &Path, files: &[FileRef]) -> Vec<SourceError> {
    files
        .par_iter()
        .filter_map(|file| {
            let path = root.join(&file.path);
            read_bytes(root, &file.path).and_then(|bytes| check_recorded(&path, &bytes, file)).err()
        })
        .collect()
}

/// The file's bytes agree with what the store recorded.
fn check_recorded(path: &Path, bytes: &[u8], file: &FileRef) -> Result<(), SourceError> {
    let changed = |what: String| {
        SourceError::malformed(
            path,
            format!("{what}; the file changed since the store was built (rebuild the store, or restore the file)"),
        )
    };
    if bytes.len() as u64 != file.size {
        return Err(changed(format!("{} bytes, the store recorded {}", bytes.len(), file.size)));
    }
    let hash = xxh3_64(bytes);
    if hash != file.hash {
        return Err(changed(format!("content hash {hash:016x}, the store recorded {:016x}", file.hash)));
    }
    Ok(())
}

fn read_bytes(root: &Path, relative: &str) -> Result<Vec<u8>, SourceError> {
    super::read_file(&root.join(relative))
}

fn open(path: &Path, bytes: &[u8]) -> Result<DynamicImage, SourceError> {
    image::load_from_memory(bytes).map_err(|e| SourceError::malformed(path, format!("cannot decode the image: {e}")))
}

/// The shape every sample takes: that of the first file after the resize and crop.
fn decoded_shape(path: &Path, bytes: &[u8], decode: &ImageDecode) -> Result<Vec<usize>, SourceError> {
    let image = transform(path, open(path, bytes)?, decode)?;
    Ok(vec![decode.color.channels(), image.height() as usize, image.width() as usize])
}

/// Decodes one file into `out` (channel planes, row-major), which must hold exactly `shape`.
fn decode_into(
    path: &Path,
    bytes: &[u8],
    decode: &ImageDecode,
    shape: &[usize],
    out: &mut [f32],
) -> Result<(), SourceError> {
    let image = transform(path, open(path, bytes)?, decode)?;
    let (height, width) = (image.height() as usize, image.width() as usize);
    if [height, width] != shape[1..] {
        return Err(SourceError::malformed(
            path,
            format!(
                "is {width}×{height} after decoding, the other samples {}×{}; set the source's resize and center_crop to give every image one size",
                shape[2], shape[1]
            ),
        ));
    }
    let plane = height * width;
    match decode.color {
        ImageColor::Gray => {
            for (value, &byte) in out.iter_mut().zip(image.to_luma8().as_raw()) {
                *value = f32::from(byte) / 255.0;
            }
        }
        ImageColor::Rgb => {
            for (pixel, rgb) in image.to_rgb8().as_raw().chunks_exact(3).enumerate() {
                for (channel, &byte) in rgb.iter().enumerate() {
                    out[channel * plane + pixel] = f32::from(byte) / 255.0;
                }
            }
        }
    }
    Ok(())
}

/// Resize, then center crop, as [`ImageDecode`] says.
fn transform(path: &Path, image: DynamicImage, decode: &ImageDecode) -> Result<DynamicImage, SourceError> {
    let image = match decode.resize {
        None => image,
        Some(size) => {
            let [height, width] = resized(image.height(), image.width(), size);
            image.resize_exact(width, height, FilterType::Triangle)
        }
    };
    let Some(crop) = decode.center_crop else { return Ok(image) };
    let [crop_height, crop_width] = match crop {
        ImageSize::Side(side) => [side, side],
        ImageSize::HeightWidth(size) => size,
    };
    if crop_height > image.height() || crop_width > image.width() {
        return Err(SourceError::malformed(
            path,
            format!(
                "is {}×{} after the resize, smaller than center_crop {crop_width}×{crop_height}",
                image.width(),
                image.height()
            ),
        ));
    }
    let top = centred_offset(image.height(), crop_height);
    let left = centred_offset(image.width(), crop_width);
    Ok(image.crop_imm(left, top, crop_width, crop_height))
}

/// torchvision's `Resize`: one number sets the shorter side (the longer one truncated), two set both.
fn resized(height: u32, width: u32, size: ImageSize) -> [u32; 2] {
    match size {
        ImageSize::HeightWidth(size) => size,
        ImageSize::Side(side) if width <= height => {
            [(u64::from(side) * u64::from(height) / u64::from(width)) as u32, side]
        }
        ImageSize::Side(side) => [side, (u64::from(side) * u64::from(width) / u64::from(height)) as u32],
    }
}

/// torchvision's `CenterCrop` offset: `int(round((size - crop) / 2))`, rounding half to even.
fn centred_offset(size: u32, crop: u32) -> u32 {
    ((size - crop) as f64 / 2.0).round_ties_even() as u32
}

/// The absolute form of a source root, as the manifest records it.
pub fn absolute_root(root: &Path) -> Result<PathBuf, SourceError> {
    std::fs::canonicalize(root).map_err(|e| SourceError::io(root, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, width: u32, height: u32, pixels: &[u8], color: image::ColorType) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::save_buffer(path, pixels, width, height, color).unwrap();
    }

    fn held(dataset: &Dataset) -> &[f32] {
        match &dataset.inputs {
            Inputs::Held(values) => values,
            Inputs::Decoded(_) => panic!("decoded on use"),
        }
    }

    fn recorded(root: &Path, files: &[FileRef], decode: ImageDecode, shape: &[usize]) -> FolderFiles {
        FolderFiles { root: root.to_path_buf(), files: files.to_vec(), decode, shape: shape.to_vec() }
    }

    fn grey_tree(root: &Path) {
        png(&root.join("train/b/1.png"), 2, 2, &[0, 51, 102, 255], image::ColorType::L8);
        png(&root.join("train/b/0.png"), 2, 2, &[255, 0, 0, 0], image::ColorType::L8);
        png(&root.join("train/a/x.PNG"), 2, 2, &[1, 2, 3, 4], image::ColorType::L8);
        std::fs::write(root.join("train/a/notes.txt"), "not an image").unwrap();
        png(&root.join("test/b/9.png"), 2, 2, &[9, 9, 9, 9], image::ColorType::L8);
    }

    #[test]
    fn lists_classes_sorted_then_files_sorted_and_marks_splits() {
        let dir = tempfile::tempdir().unwrap();
        grey_tree(dir.path());
        let (files, classes) = list(dir.path()).unwrap();
        assert_eq!(classes, ["a", "b"]);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["train/a/x.PNG", "train/b/0.png", "train/b/1.png", "test/b/9.png"]);
        assert_eq!(files.iter().map(|f| f.label).collect::<Vec<_>>(), [0, 1, 1, 1]);
        assert_eq!(files[3].split, Some(GivenSplit::Test));
    }

    #[test]
    fn decodes_grey_bytes_over_255_and_records_each_file() {
        let dir = tempfile::tempdir().unwrap();
        grey_tree(dir.path());
        let decode = ImageDecode { color: ImageColor::Gray, ..Default::default() };
        let (dataset, files) = read(dir.path(), &decode).unwrap();
        assert_eq!(dataset.sample_shape, [1, 2, 2]);
        assert_eq!(&held(&dataset)[8..12], &[0.0, 51.0 / 255.0, 102.0 / 255.0, 1.0]);
        let bytes = std::fs::read(dir.path().join("train/b/1.png")).unwrap();
        assert_eq!(files[2], FileRef { path: "train/b/1.png".into(), size: bytes.len() as u64, hash: xxh3_64(&bytes) });
        assert_eq!(recorded(dir.path(), &files, decode, &dataset.sample_shape).decode_all().unwrap(), held(&dataset));
        // Above the memory limit, the same files are recorded and each sample decodes to the same values.
        let (streamed, streamed_files) = read_holding(dir.path(), &decode, &|_, _| Ok(false)).unwrap();
        assert_eq!(streamed_files, files);
        assert_eq!((streamed.sample_shape.as_slice(), streamed.labels.as_slice()), (&[1, 2, 2][..], &[0, 1, 1, 1][..]));
        let Inputs::Decoded(folder) = &streamed.inputs else { panic!("held above the limit") };
        assert_eq!(folder.files, files);
        assert_eq!(streamed.inputs.gather(&[0, 1, 2, 3], 4).unwrap(), held(&dataset));
    }

    #[test]
    fn rgb_is_three_planes() {
        let dir = tempfile::tempdir().unwrap();
        png(&dir.path().join("c/p.png"), 2, 1, &[255, 0, 0, 0, 0, 255], image::ColorType::Rgb8);
        let (dataset, _) = read(dir.path(), &ImageDecode::default()).unwrap();
        assert_eq!(dataset.sample_shape, [3, 1, 2]);
        assert_eq!(held(&dataset), [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(dataset.given_split, None);
    }

    #[test]
    fn jpeg_files_decode_and_resize_then_crop_gives_one_shape() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..6 * 4).flat_map(|_| [200, 100, 50]).collect();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        image::save_buffer(dir.path().join("a/wide.JPG"), &pixels, 6, 4, image::ColorType::Rgb8).unwrap();
        image::save_buffer(dir.path().join("a/tall.jpeg"), &pixels, 4, 6, image::ColorType::Rgb8).unwrap();
        let decode = ImageDecode {
            resize: Some(ImageSize::Side(3)),
            center_crop: Some(ImageSize::HeightWidth([2, 3])),
            ..Default::default()
        };
        let (dataset, files) = read(dir.path(), &decode).unwrap();
        assert_eq!(files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a/tall.jpeg", "a/wide.JPG"]);
        assert_eq!(dataset.sample_shape, [3, 2, 3]);
        // A flat colour stays that colour through JPEG, the resize and the crop (within JPEG's loss).
        for (channel, plane) in held(&dataset)[18..].chunks(6).enumerate() {
            let expected = [200.0, 100.0, 50.0][channel] / 255.0;
            assert!(plane.iter().all(|v| (v - expected).abs() < 0.03), "channel {channel}: {plane:?}");
        }
    }

    #[test]
    fn a_changed_or_truncated_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        grey_tree(dir.path());
        let decode = ImageDecode { color: ImageColor::Gray, ..Default::default() };
        let (dataset, files) = read(dir.path(), &decode).unwrap();
        let path = dir.path().join("train/b/0.png");
        let bytes = std::fs::read(&path).unwrap();
        let mut edited = bytes.clone();
        *edited.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &edited).unwrap();
        let e = recorded(dir.path(), &files, decode, &dataset.sample_shape).decode_all().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}: content hash {:016x}, the store recorded {:016x}",
                path.display(),
                xxh3_64(&edited),
                xxh3_64(&bytes)
            )),
            "{e}"
        );
        assert_eq!(changed_files(dir.path(), &files).len(), 1);
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = recorded(dir.path(), &files, decode, &dataset.sample_shape).decode_all().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}: {} bytes, the store recorded {}",
                path.display(),
                bytes.len() / 2,
                bytes.len()
            )),
            "{e}"
        );
        let e = read(dir.path(), &decode).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: cannot decode the image", path.display())), "{e}");
        let e = read_holding(dir.path(), &decode, &|_, _| Ok(false)).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: cannot decode the image", path.display())), "{e}");
        let e = recorded(dir.path(), &files, decode, &dataset.sample_shape).decode(1).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: {} bytes, the store recorded", path.display(), bytes.len() / 2)), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = recorded(dir.path(), &files, decode, &dataset.sample_shape).decode_all().unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot read {}", path.display())), "{e}");
    }

    #[test]
    fn sizes_differ_without_resize_and_agree_with_it() {
        let dir = tempfile::tempdir().unwrap();
        png(&dir.path().join("a/0.png"), 4, 4, &[7; 16], image::ColorType::L8);
        png(&dir.path().join("a/1.png"), 6, 4, &[7; 24], image::ColorType::L8);
        let gray = ImageDecode { color: ImageColor::Gray, ..Default::default() };
        let e = read(dir.path(), &gray).unwrap_err().to_string();
        assert!(e.contains("a/1.png: is 6×4 after decoding, the other samples 4×4"), "{e}");
        let fitted = ImageDecode { resize: Some(ImageSize::Side(4)), center_crop: Some(ImageSize::Side(4)), ..gray };
        let (dataset, _) = read(dir.path(), &fitted).unwrap();
        assert_eq!(dataset.sample_shape, [1, 4, 4]);
        assert!(held(&dataset).iter().all(|&v| (v - 7.0 / 255.0).abs() < 1e-6));
    }

    #[test]
    fn resize_and_crop_follow_torchvision() {
        assert_eq!(resized(480, 640, ImageSize::Side(256)), [256, 341]);
        assert_eq!(resized(640, 480, ImageSize::Side(256)), [341, 256]);
        assert_eq!(resized(5, 5, ImageSize::HeightWidth([2, 3])), [2, 3]);
        assert_eq!(centred_offset(341, 224), 58);
        assert_eq!(centred_offset(5, 2), 2);
        assert_eq!(centred_offset(7, 2), 2);
    }
}
