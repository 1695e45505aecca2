"""Checks a `kdstore export` directory independently of the Rust code.

For every exported view it rebuilds the view from the raw sample (read with pyarrow from the
store's samples table) and the parameters stored in rows.parquet, with numpy, scipy and torch
following the reference algorithms (uchidalab/Um et al. for series, torchvision and the official
Cutout/CutMix code for images), and compares; it recomputes every input_hash with the xxhash
package; and it checks the statistics of the ops whose draws are not stored (jitter's noise).

usage: check_export.py EXPORT_DIR STORE_DIR PIPELINE.toml
Prints one line per recipe and exits 1 on the first disagreement.
"""

import glob
import json
import math
import os
import sys
import tomllib

import duckdb
import numpy as np
import pyarrow.parquet as pq
import torch
import xxhash
from scipy.interpolate import CubicSpline


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def load_samples(store):
    files = [f for f in glob.glob(os.path.join(store, "samples", "part-*.parquet"))]
    table = pq.read_table(files).to_pydict()
    order = np.argsort(table["sample_id"])
    shape = table["shape"][0]
    inputs = np.asarray([table["input"][i] for i in order], dtype=np.float32)
    return inputs.reshape([len(order)] + list(shape))


# ---- series ops, from the stored draws ---------------------------------------------------------

def axangle2mat(axis, angle):
    x, y, z = np.asarray(axis) / np.linalg.norm(axis)
    c, s = math.cos(angle), math.sin(angle)
    t = 1 - c
    return np.array([
        [t * x * x + c, t * x * y - z * s, t * x * z + y * s],
        [t * x * y + z * s, t * y * y + c, t * y * z - x * s],
        [t * x * z - y * s, t * y * z + x * s, t * z * z + c],
    ])


def rotation(x, row, op):
    axes = np.asarray(row["rotation_axes"]).reshape(-1, 3)
    out = x.astype(np.float64).copy()
    for sensor, axis, angle in zip(op["sensors"], axes, row["rotation_angles"]):
        matrix = axangle2mat(axis, angle)
        for triplet in np.asarray(sensor).reshape(-1, 3):
            out[triplet] = (x[triplet].astype(np.float64).T @ matrix).T  # row vector times matrix
    return out


def permutation(x, row, op):
    segments = np.array_split(np.arange(x.shape[1]), row["permutation_segments"])
    order = np.concatenate([segments[s] for s in row["permutation_order"]])
    return x[:, order]


def curves(knots_flat, channels, length, knots):
    values = np.asarray(knots_flat).reshape(channels, knots + 2)
    steps = np.linspace(0, length - 1, knots + 2)
    return np.array([CubicSpline(steps, v)(np.arange(length)) for v in values])  # not-a-knot


def magnitude_warp(x, row, op):
    return x * curves(row["magnitude_warp_knots"], x.shape[0], x.shape[1], op.get("knots", 4))


def time_warp(x, row, op):
    speeds = curves(row["time_warp_knots"], x.shape[0], x.shape[1], op.get("knots", 4))
    out = np.empty_like(x, dtype=np.float64)
    for c in range(x.shape[0]):
        positions = np.cumsum(np.maximum(speeds[c], 0.01))
        positions *= (x.shape[1] - 1) / positions[-1]
        out[c] = np.interp(np.arange(x.shape[1]), positions, x[c])
    return out


def window_slice(x, row, op):
    start, window = row["window_slice_start"], row["window_slice_length"]
    steps = np.linspace(0, window - 1, x.shape[1])
    return np.array([np.interp(steps, np.arange(window), c[start:start + window]) for c in x])


def window_warp(x, row, op):
    start, window, scale = row["window_warp_start"], row["window_warp_length"], row["window_warp_scale"]
    out = []
    for c in x.astype(np.float64):
        warped = np.interp(np.linspace(0, window - 1, int(window * scale)), np.arange(window), c[start:start + window])
        joined = np.concatenate((c[:start], warped, c[start + window:]))
        out.append(np.interp(np.arange(x.shape[1]), np.linspace(0, x.shape[1] - 1, joined.size), joined))
    return np.array(out)


def scaling(x, row, op):
    factors = np.asarray(row["scaling_factors"], dtype=np.float32)
    return x * factors.reshape([-1] + [1] * (x.ndim - 1))


# ---- image ops ---------------------------------------------------------------------------------

def random_crop(x, row, op):
    pad = op.get("padding", 4)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    top, left = row["random_crop_top"], row["random_crop_left"]
    return padded[:, top:top + x.shape[1], left:left + x.shape[2]]


def horizontal_flip(x, row, op):
    return x[:, :, ::-1]


def random_resized_crop(x, row, op):
    top, left = row["random_resized_crop_top"], row["random_resized_crop_left"]
    h, w = row["random_resized_crop_height"], row["random_resized_crop_width"]
    crop = torch.from_numpy(np.ascontiguousarray(x[:, top:top + h, left:left + w]))[None]
    return torch.nn.functional.interpolate(crop, size=x.shape[1:], mode="bilinear", align_corners=False)[0].numpy()


def cutout(x, row, op):
    out = x.copy()
    out[:, row["cutout_y0"]:row["cutout_y1"], row["cutout_x0"]:row["cutout_x1"]] = op.get("value", 0.0)
    return out


def color_jitter(x, row, op):
    bound = op.get("bound", 1.0)
    out = np.clip(np.float32(row["color_jitter_brightness"]) * x, 0, bound)
    gray = np.tensordot(np.float32([0.2989, 0.587, 0.114]), out, axes=1) if out.shape[0] == 3 else out
    mean = np.float32(gray.mean(dtype=np.float64))
    contrast = np.float32(row["color_jitter_contrast"])
    return np.clip(contrast * out + (np.float32(1) - contrast) * mean, 0, bound)


REPLAYABLE = {
    "scaling": scaling, "rotation": rotation, "permutation": permutation,
    "magnitude_warp": magnitude_warp, "time_warp": time_warp, "window_slice": window_slice,
    "window_warp": window_warp, "random_crop": random_crop, "horizontal_flip": horizontal_flip,
    "random_resized_crop": random_resized_crop, "cutout": cutout, "color_jitter": color_jitter,
}


def mixed(x, row, samples, op_name):
    """The exact mixing arithmetic from the stored partner and lam."""
    partner = samples[row["partner_id"]]
    lam = np.float32(row["lam"])
    if op_name == "mixup":
        return lam * x + (np.float32(1) - lam) * partner, True
    out = x.copy()
    if x.ndim == 3:
        y0, y1, x0, x1 = row["cutmix_y0"], row["cutmix_y1"], row["cutmix_x0"], row["cutmix_x1"]
        out[:, y0:y1, x0:x1] = partner[:, y0:y1, x0:x1]
        area, total = (y1 - y0) * (x1 - x0), x.shape[1] * x.shape[2]
    else:
        x0, x1 = row["cutmix_x0"], row["cutmix_x1"]
        out[:, x0:x1] = partner[:, x0:x1]
        area, total = x1 - x0, x.shape[1]
    if np.float32(1 - area / total) != lam:
        fail(f"view {row['view_id']}: lam {lam} is not 1 - {area}/{total}")
    return out, True


def main(export_dir, store, pipeline_path):
    meta = json.load(open(os.path.join(export_dir, "export.json")))
    inputs = np.load(os.path.join(export_dir, "inputs.npy"))
    logits = np.load(os.path.join(export_dir, "teacher_logits.npy"))
    rows = pq.read_table(os.path.join(export_dir, "rows.parquet")).to_pylist()
    recipes = {r["name"]: r["ops"] for r in tomllib.load(open(pipeline_path, "rb")).get("recipe", [])}
    samples = load_samples(store)
    if not (len(rows) == len(inputs) == len(logits) == meta["rows"]):
        fail(f"row counts differ: rows {len(rows)}, inputs {len(inputs)}, logits {len(logits)}, json {meta['rows']}")
    if list(inputs.shape[1:]) != meta["sample_shape"] or inputs.dtype != np.float32:
        fail(f"inputs.npy is {inputs.dtype} {inputs.shape}")

    checked, jitter_noise = {}, []
    for i, row in enumerate(rows):
        view = inputs[i]
        if xxhash.xxh3_64_intdigest(view.astype("<f4").tobytes()) != row["input_hash"]:
            fail(f"view {row['view_id']}: xxh3 of the exported input differs from input_hash")
        if int(np.argmax(logits[i])) != row["teacher_pred"]:
            fail(f"view {row['view_id']}: argmax of teacher_logits.npy is not teacher_pred")
        expected = samples[row["sample_id"]].copy()
        exact = True
        for op in recipes.get(row["recipe"], []):
            name = op["op"]
            if not row.get(name):
                continue
            if name == "jitter":
                jitter_noise.append((view - expected, row["jitter_sigma"]))
                expected = view  # the noise is redrawn from the seed, not stored
            elif name in ("mixup", "cutmix"):
                expected, _ = mixed(expected, row, samples, name)
            else:
                expected = REPLAYABLE[name](expected, row, op)
                exact = exact and name in ("permutation", "random_crop", "horizontal_flip", "cutout")
        expected = np.asarray(expected)
        if exact:
            if not np.array_equal(view, expected.astype(np.float32)):
                fail(f"view {row['view_id']} ({row['recipe']}): differs from the reference, max |d| "
                     f"{np.abs(view - expected).max()}")
        elif not np.allclose(view, expected, rtol=1e-5, atol=1e-5):
            fail(f"view {row['view_id']} ({row['recipe']}): max |d| {np.abs(view - expected).max()} from the reference")
        checked[row["recipe"]] = checked.get(row["recipe"], 0) + 1

    for noise, sigma in jitter_noise[:1]:
        all_noise = np.concatenate([n.ravel() for n, _ in jitter_noise]).astype(np.float64)
        if abs(all_noise.mean()) > 0.05 * sigma or abs(all_noise.std() / sigma - 1) > 0.05:
            fail(f"jitter noise has mean {all_noise.mean():.4g} and std {all_noise.std():.4g}, expected 0 and {sigma}")
    if meta["where"] is None:
        # The drawn parameters are ordinary typed columns: DuckDB filters the store's own files by them.
        views = os.path.join(store, "views", "part-*.parquet")
        for name in ("horizontal_flip", "mixup", "cutmix", "scaling"):
            if name not in rows[0]:
                continue
            found = [v for (v,) in duckdb.sql(f"SELECT view_id FROM read_parquet('{views}') WHERE {name} ORDER BY view_id").fetchall()]
            if found != sorted(r["view_id"] for r in rows if r[name]):
                fail(f"duckdb's views WHERE {name} differs from the export")
            print(f"duckdb: views WHERE {name} selects the {len(found)} exported views that drew it")
    for recipe, count in sorted(checked.items()):
        print(f"{recipe}: {count} views match the reference")


if __name__ == "__main__":
    main(*sys.argv[1:4])
