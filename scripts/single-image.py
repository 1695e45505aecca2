"""Learning from one image (Asano & Saeed, "Extrapolating from a single image to a thousand classes
using distillation"), on Fashion-MNIST, for docs/benchmarks.md ("Learning from one image").

1. A teacher: a small CNN trained here on the 60,000 Fashion-MNIST training images (PyTorch,
   two epochs), exported with `torch.jit.script` behind a 2 × 2 average pooling, so that it takes
   56 × 56 inputs and sees a 28 × 28 image.
2. The one image: a 2 × 2 mosaic of four training images (56 × 56). A store whose training split is
   that single sample, cut by one recipe into --crops random resized crops (scale 0.08–1, flip),
   each labelled by the teacher (5,000 replicas per part); its test split is the 10,000 test images, enlarged 2 × 2 by
   repeating each pixel (which the teacher's pooling undoes exactly). Both live in one `.npy`
   source (groups 0 and 1, `test_groups = [1]`), because a store keeps one sample shape.
3. A student (built-in cnn2d) trained only on the crops with KD from the stored logits (no labels:
   `ce_weight = 0`) and evaluated on the test split; against chance (10%) and against the same
   student trained the same way on 10,000 real training images (one identity view and one
   resized crop each, the same teacher).

Prints one markdown table (test accuracy, mean ± std over the seeds) and draws the mosaic and some
crops. Everything goes under --out (default runs/single-image).

usage: single-image.py KDSTORE_BINARY [--crops 20000] [--epochs 10] [--seeds 1 2 3] [--out DIR]
"""

import argparse
import gzip
import json
import statistics
import subprocess
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DATA = Path("data/fashion-mnist")
MOSAIC = [0, 1, 2, 3]  # the first four training images (an ankle boot, two T-shirts, a dress)


def idx(name):
    with gzip.open(DATA / name) as f:
        raw = f.read()
    if name.startswith(("train-images", "t10k-images")):
        return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28).astype(np.float32) / 255.0
    return np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)


class Teacher(torch.nn.Module):
    def __init__(self, mean: float, std: float):
        super().__init__()
        self.mean, self.std = mean, std
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == 56:
            x = F.avg_pool2d(x, 2)
        return self.body((x - self.mean) / self.std)


def train_teacher(out, train_x, train_y, test_x, test_y):
    path = out / "teacher.pt"
    if path.exists():
        return json.loads((out / "teacher.json").read_text())["test_accuracy"]
    torch.manual_seed(0)
    teacher = Teacher(float(train_x.mean()), float(train_x.std()))
    optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    x, y = torch.tensor(train_x).unsqueeze(1), torch.tensor(train_y)
    for _ in range(2):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 128):
            batch = order[start:start + 128]
            optimizer.zero_grad()
            F.cross_entropy(teacher(x[batch]), y[batch]).backward()
            optimizer.step()
    teacher.eval()
    with torch.no_grad():
        accuracy = (teacher(torch.tensor(test_x).unsqueeze(1)).argmax(1) == torch.tensor(test_y)).float().mean().item()
    torch.jit.script(teacher).save(str(path))
    (out / "teacher.json").write_text(json.dumps({"test_accuracy": accuracy}))
    return accuracy


def enlarge(images):
    return images.repeat(2, axis=1).repeat(2, axis=2)


def write_source(folder, train_images, train_labels, test_x, test_y):
    """One .npy source: the training images (group 0) and the enlarged test images (group 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs = np.concatenate([train_images, enlarge(test_x)])[:, None].astype(np.float32)
    np.save(folder / "inputs.npy", inputs)
    np.save(folder / "labels.npy", np.concatenate([train_labels, test_y]).astype(np.int64))
    np.save(folder / "groups.npy", np.concatenate([np.zeros(len(train_images)), np.ones(len(test_y))]).astype(np.int64))


def pipeline(folder, name, recipe, teacher):
    text = f'''version = 1
name = "{name}"
seed = 3
store = "{folder / 'store'}"

[source]
kind = "npy"
inputs = "{folder / 'inputs.npy'}"
labels = "{folder / 'labels.npy'}"
groups = "{folder / 'groups.npy'}"
layout = "image"

[split]
test_groups = [1]
val_fraction = 0.0

[normalize]
mode = "none"

{recipe}

[[teacher]]
kind = "torchscript"
name = "fmnist-cnn"
path = "{teacher}"
'''
    path = folder / "pipeline.toml"
    path.write_text(text)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kdstore")
    parser.add_argument("--crops", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", default="runs/single-image")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    train_x, train_y = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
    test_x, test_y = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
    teacher_accuracy = train_teacher(out, train_x, train_y, test_x, test_y)

    mosaic = np.block([[train_x[MOSAIC[0]], train_x[MOSAIC[1]]], [train_x[MOSAIC[2]], train_x[MOSAIC[3]]]])
    one = out / "one-image"
    write_source(one, mosaic[None], np.array([0]), test_x, test_y)  # the mosaic's label is never read
    crops = f'''[[recipe]]
name = "crops"
replicas = {args.crops}
replicas_per_part = 5000
splits = ["train"]
ops = [{{ op = "random_resized_crop", scale = [0.08, 1.0] }}, {{ op = "horizontal_flip", p = 0.5 }}]'''
    real = out / "real"
    write_source(real, enlarge(train_x[:10000]), train_y[:10000], test_x, test_y)
    resized = '''[[recipe]]
name = "crops"
replicas = 1
splits = ["train"]
ops = [{ op = "random_resized_crop", scale = [0.08, 1.0] }, { op = "horizontal_flip", p = 0.5 }]'''
    for folder, recipe in [(one, crops), (real, resized)]:
        if not (folder / "store" / "_manifest").exists():
            subprocess.run([args.kdstore, "build", str(pipeline(folder, folder.name, recipe, out / "teacher.pt"))],
                           check=True)
    subprocess.run([args.kdstore, "show", str(one / "store"), "--where", "recipe = 'identity' AND split = 'train'",
                    "--out", str(out / "mosaic.svg")], check=True)
    subprocess.run([args.kdstore, "show", str(one / "store"), "--where", "recipe = 'crops'", "--limit", "4",
                    "--out", str(out / "crops.svg")], check=True)

    student = ["--student", "cnn2d", "--width", "16", "--depth", "3", "--loss", "kd", "--set", "ce_weight=0",
               "--set", "kd_weight=1", "--epochs", str(args.epochs), "--views", "all", "--batch-size", "128"]
    rows = [("one image", one, ["--where", "recipe = 'crops'"]), ("10,000 real training images", real, [])]
    print(f"| student trained on ({args.epochs} epochs, KD only, {len(args.seeds)} seeds) | test accuracy | views |")
    print("|---|---|---|")
    for label, folder, extra in rows:
        accuracy, views = [], 0
        for seed in args.seeds:
            run = out / f"{folder.name}-s{seed}"
            if not (run / "results.json").exists():
                subprocess.run([args.kdstore, "train", str(folder / "store"), *student, *extra, "--seed", str(seed),
                                "--quiet", "--out", str(run)], check=True)
            r = json.loads((run / "results.json").read_text())
            accuracy.append(r["test_accuracy"] * 100)
            views = r["train_views"]
        sd = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
        print(f"| {label} | {statistics.mean(accuracy):.2f} ± {sd:.2f}% ({', '.join(f'{a:.2f}' for a in accuracy)}) "
              f"| {views} |", flush=True)
    print(f"| (chance) | 10.00% | |")
    print(f"| (the teacher, trained on all 60,000) | {teacher_accuracy * 100:.2f}% | |")


if __name__ == "__main__":
    main()
