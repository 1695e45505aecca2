//! `kdstore show`: the PNG holds each view next to its sample, with the replayed pixels.

use std::path::Path;

use crate::common::*;

fn decode_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    (info.width, info.height, pixels)
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
    let out = dir.path().join("flip.png");
    let output = run_ok(&["show", path_str(&store), "--view", &view_id, "--out", path_str(&out)]);
    assert!(stderr(&output).contains("drew 1 view"), "{}", stderr(&output));
    // One cell: 28 × 28 images drawn 4× (112 px), sample at x = 8, view at x = 8 + 112 + 8, y = 20.
    let (width, height, pixels) = decode_png(&out);
    assert!(width >= 2 * 112 + 8 && height >= 20 + 112, "{width} × {height}");
    let at = |x: u32, y: u32| &pixels[((y * width + x) * 3) as usize..((y * width + x) * 3 + 3) as usize];
    let mut bright = 0;
    for y in 20..20 + 112 {
        for x in 0..112 {
            assert_eq!(at(8 + x, y), at(8 + 112 + 8 + 111 - x, y), "pixel ({x}, {y})");
            bright += usize::from(at(8 + x, y)[0] > 128);
        }
    }
    assert!(bright > 500, "the sample is not blank ({bright} bright pixels)");
}

#[test]
fn series_views_get_one_panel_per_channel_and_unknown_views_are_errors() {
    let dir = tempdir();
    let store = basicmotions_store();
    let out = dir.path().join("series.png");
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
    let (width, height, _) = decode_png(&out);
    // A header line, then per view three caption lines and six 56-px panels.
    assert_eq!((width, height), (760, 12 + 8 + 3 * (3 * 12 + 6 * 60 + 16)));
    let output = run(&["show", path_str(store), "--view", "1", "--out", path_str(&dir.path().join("none.png"))]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no views of teacher cnn1d match --where view_id IN (1)"), "{}", stderr(&output));
}
