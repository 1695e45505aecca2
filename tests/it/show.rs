//! `kdstore show`: the SVG holds each view next to its sample — the replayed pixels as embedded
//! PNGs, series as one named panel per channel with axes — and bad requests are errors.

use base64::Engine;

use crate::common::*;

/// The `<image>` elements' pictures: (width, height, RGB bytes) each, in drawing order.
fn embedded_images(svg: &str) -> Vec<(u32, u32, Vec<u8>)> {
    let prefix = "href=\"data:image/png;base64,";
    svg.match_indices(prefix)
        .map(|(at, _)| {
            let data = &svg[at + prefix.len()..];
            let data = &data[..data.find('"').unwrap()];
            let bytes = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
            let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
            let mut pixels = vec![0; reader.output_buffer_size()];
            let info = reader.next_frame(&mut pixels).unwrap();
            assert_eq!(info.color_type, png::ColorType::Rgb);
            (info.width, info.height, pixels)
        })
        .collect()
}

/// The texts of the SVG's `<text>` elements.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()].trim().to_string())
        .collect()
}

fn count(texts: &[String], wanted: &str) -> usize {
    texts.iter().filter(|t| t.as_str() == wanted).count()
}

#[test]
fn a_flipped_view_is_drawn_as_the_mirror_of_its_sample() {
    let dir = tempdir();
    let (store, _) = fashion_mnist_ops_store(dir.path());
    let flipped = stdout(&run_ok(&[
        "query",
        path_str(&store),
        "SELECT view_id FROM views WHERE recipe = 'crop_flip' AND horizontal_flip AND random_crop_top = 4 AND random_crop_left = 4 ORDER BY view_id LIMIT 1",
        "--format",
        "csv",
    ]));
    let view_id = flipped.lines().nth(1).expect("a flipped view that the crop did not move").to_string();
    let out = dir.path().join("flip.svg");
    let output = run_ok(&["show", path_str(&store), "--view", &view_id, "--out", path_str(&out)]);
    assert!(stderr(&output).contains("drew 1 view"), "{}", stderr(&output));
    let svg = std::fs::read_to_string(&out).unwrap();
    let images = embedded_images(&svg);
    assert_eq!(images.len(), 2, "the sample and the view");
    let ((w, h, sample), (_, _, view)) = (&images[0], &images[1]);
    assert_eq!((*w, *h), (28, 28), "native resolution");
    let at = |pixels: &[u8], x: u32, y: u32| pixels[((y * w + x) * 3) as usize];
    let mut bright = 0;
    for y in 0..28 {
        for x in 0..28 {
            assert_eq!(at(sample, x, y), at(view, 27 - x, y), "pixel ({x}, {y})");
            bright += usize::from(at(sample, x, y) > 128);
        }
    }
    assert!(bright > 30, "the sample is not blank ({bright} bright pixels)");
    let texts = texts(&svg);
    assert_eq!((count(&texts, "sample"), count(&texts, "view")), (1, 1), "panel titles: {texts:?}");
    for tick in ["0", "10", "20"] {
        assert_eq!(count(&texts, tick), 4, "tick {tick} on both axes of both panels: {texts:?}");
    }
    assert!(texts.iter().any(|t| t.starts_with(&format!("view {view_id} | crop_flip"))), "{texts:?}");
}

#[test]
fn series_views_get_one_panel_per_channel_and_bad_requests_are_errors() {
    let dir = tempdir();
    let store = basicmotions_store();
    let out = dir.path().join("series.svg");
    let output = run_ok(&[
        "show",
        path_str(store),
        "--where",
        "recipe IN ('cutmix', 'time_warp') AND split = 'train'",
        "--limit",
        "3",
        "--out",
        path_str(&out),
    ]);
    assert!(stderr(&output).contains("drew 3 views"), "{}", stderr(&output));
    let svg = std::fs::read_to_string(&out).unwrap();
    let texts = texts(&svg);
    // .ts files do not name their channels: they are numbered; each view has its own six panels.
    for channel in 0..6 {
        assert_eq!(count(&texts, &format!("channel {channel}")), 3, "{texts:?}");
    }
    assert_eq!(count(&texts, "time step"), 3);
    assert!(texts.iter().filter(|t| t.contains("| cutmix") || t.contains("| time_warp")).count() == 3, "{texts:?}");
    // Two lines of 100 steps per panel (the sample and the view) plus the legend's two.
    let lines: Vec<&str> = svg.split("<polyline").skip(1).collect();
    let points =
        |line: &&str| line.split("points=\"").nth(1).unwrap().split('"').next().unwrap().split_whitespace().count();
    let long = lines.iter().filter(|line| points(line) == 100).count();
    assert_eq!(long, 3 * 6 * 2, "series drawn");
    let output = run(&["show", path_str(store), "--view", "1", "--out", "views.png"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--out views.png: kdstore show writes SVG"), "{}", stderr(&output));
    let output = run(&["show", path_str(store), "--view", "1", "--out", path_str(&dir.path().join("none.svg"))]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no views of teacher cnn1d match --where view_id IN (1)"), "{}", stderr(&output));
}

#[test]
fn channels_named_in_the_pipeline_are_the_panels_names() {
    let dir = tempdir();
    let pipeline = synthetic_pipeline(dir.path(), 60, "");
    let name_channels = |names: &str| {
        let text = std::fs::read_to_string(&pipeline).unwrap();
        let text = text.replace("layout = \"series\"", &format!("layout = \"series\"\nchannel_names = {names}"));
        std::fs::write(&pipeline, text).unwrap();
    };
    name_channels(r#"["left_x", "left_y"]"#);
    let output = run(&["build", path_str(&pipeline)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("2 channel names for samples of 3 channels"), "{}", stderr(&output));
    assert!(!dir.path().join("store").join("_manifest").exists(), "nothing committed");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&pipeline, text.replace("\nchannel_names = [\"left_x\", \"left_y\"]", "")).unwrap();
    name_channels(r#"["left_x", "left_y", "left_z"]"#);
    run_ok(&["build", path_str(&pipeline)]);
    let store = dir.path().join("store");
    assert_eq!(manifest(&store)["dataset"]["channel_names"], serde_json::json!(["left_x", "left_y", "left_z"]));
    let out = dir.path().join("named.svg");
    run_ok(&["show", path_str(&store), "--where", "recipe = 'identity'", "--limit", "1", "--out", path_str(&out)]);
    let texts = texts(&std::fs::read_to_string(&out).unwrap());
    for name in ["left_x", "left_y", "left_z"] {
        assert_eq!(count(&texts, name), 1, "{texts:?}");
    }
}
