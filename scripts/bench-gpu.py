#!/usr/bin/env python3
"""docs/benchmarks.md's GPU check, in one run per store: how busy the store keeps the GPU.

For each store, the same TorchScript student (a CNN of `--width` channels: 1D for `[channels, length]`
samples, 2D for `[channels, height, width]`) trains with cross-entropy on the store's identity views
of its training samples, AdamW, batches of `--batch-size`, for `--epochs` epochs:

- by kdstore from the store: `kdstore train STORE --student-torchscript S.pt --views all --where
  "split = 'train' AND recipe = 'identity'" --loss ce --device D` (each batch read from the
  selection, normalised and copied to the device);
- by a plain PyTorch loop from GPU-resident tensors: the same samples read once from the store's
  `samples` table with pyarrow (the newest manifest's files), normalised with the store's
  per-channel statistics, moved to the device whole, batches gathered there by `torch.randperm`.

While each side trains, `nvidia-smi` samples the GPU's utilisation every 100 ms; a side's busy
figure is the mean over the samples from its first non-zero one to its last (the load before and the
evaluation after are left out by `kdstore`'s own timing, not by this window, so it is a lower
bound for kdstore). Without `nvidia-smi` (`--device cpu`, to check the script here) the
utilisation columns read n/a. Prints a Markdown table.

usage: bench-gpu.py KDSTORE STORE [STORE ...] [--device cuda] [--epochs 3] [--width 32]
       [--batch-size 256]

KDSTORE may be the `kdstore-torch` binary itself (it takes the same `train` command line).
"""

import argparse
import glob
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F


def _loop_benchmark():
    """scripts/bench-pytorch-loop.py as a module: its 1D student is the one used here for 1D samples."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-pytorch-loop.py")
    spec = importlib.util.spec_from_file_location("bench_pytorch_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Student1d = _loop_benchmark().Student


class Student2d(torch.nn.Module):
    def __init__(self, channels: int, classes: int, width: int):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


CONDITION = "split = 'train' AND recipe = 'identity'"


class Utilisation:
    """nvidia-smi's GPU utilisation, sampled every 100 ms on a thread while a side trains."""

    def __init__(self):
        self.samples = []
        self.process = None
        if shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"],
                stdout=subprocess.PIPE, text=True)
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            try:
                self.samples.append(float(line.strip().split(",")[0]))
            except ValueError:
                pass

    def stop(self):
        """The mean utilisation (percent) between the first and last non-zero samples, or None."""
        if self.process is None:
            return None
        self.process.terminate()
        self.process.wait()
        self.reader.join(timeout=1)
        busy = [i for i, value in enumerate(self.samples) if value > 0]
        if not busy:
            return 0.0
        return statistics.fmean(self.samples[busy[0]:busy[-1] + 1])


def newest_manifest(store):
    with open(sorted(glob.glob(os.path.join(store, "_manifest", "*.json")))[-1]) as f:
        return json.load(f)


def training_identity_inputs(store, manifest):
    """The normalised inputs and labels of the store's training samples, as numpy arrays."""
    files = [os.path.join(store, f["path"]) for f in manifest["files"] if f["table"] == "samples"]
    table = pa.concat_tables([pq.read_table(path, columns=["split", "label", "input"]) for path in files])
    train = np.array([split == "train" for split in table.column("split").to_pylist()])
    shape = manifest["dataset"]["sample_shape"]
    flat = table.column("input").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    inputs = flat.astype(np.float32).reshape([-1, *shape])[train]
    labels = table.column("label").to_numpy()[train].astype(np.int64)
    normalization = manifest["dataset"].get("normalization") or {}
    mean, std = normalization.get("mean"), normalization.get("std")
    if mean is not None and std is not None:
        mean, std = np.atleast_1d(np.array(mean, np.float32)), np.atleast_1d(np.array(std, np.float32))
        broadcast = [1, mean.size] + [1] * (len(shape) - 1)
        inputs = (inputs - mean.reshape(broadcast)) / std.reshape(broadcast)
    return inputs, labels


def kdstore_side(kdstore, store, module_path, out, args):
    command = [kdstore, "train", store, "--student-torchscript", module_path, "--views", "all", "--where", CONDITION,
               "--loss", "ce", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--device", args.device, "--quiet", "--out", out]
    utilisation = Utilisation()
    subprocess.run(command, check=True, capture_output=True)
    busy = utilisation.stop()
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    return results["train_views_per_second"], results["train_views"], busy


def loop_side(module_path, inputs, labels, args):
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torch.jit.load(module_path, map_location=device)
    model.train()
    x = torch.from_numpy(inputs).to(device)
    y = torch.from_numpy(labels).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    utilisation = Utilisation()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(len(y), device=device)
        for start in range(0, len(y), args.batch_size):
            batch = order[start:start + args.batch_size]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return args.epochs * len(y) / seconds, utilisation.stop()


def percent(value):
    return "n/a" if value is None else f"{value:.0f}%"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kdstore")
    parser.add_argument("stores", nargs="+")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    work = tempfile.mkdtemp()
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name(0)})" if args.device == "cuda" else "")
          + f", width {args.width}, batches of {args.batch_size}, {args.epochs} epochs, CE on identity views")
    print("| store | samples | kdstore from the store (views/s) | GPU busy | PyTorch loop, GPU-resident tensors (views/s) "
          "| GPU busy | busy, kdstore / loop |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for store in args.stores:
        manifest = newest_manifest(store)
        inputs, labels = training_identity_inputs(store, manifest)
        shape = manifest["dataset"]["sample_shape"]
        classes = len(manifest["dataset"]["class_names"])
        student = (Student1d if len(shape) == 2 else Student2d)(shape[0], classes, args.width)
        module_path = os.path.join(work, f"{os.path.basename(store.rstrip('/'))}.pt")
        torch.jit.script(student).save(module_path)
        out = os.path.join(work, f"run-{os.path.basename(store.rstrip('/'))}")
        ours, views, our_busy = kdstore_side(args.kdstore, store, module_path, out, args)
        assert views == len(labels), (views, len(labels))
        theirs, their_busy = loop_side(module_path, inputs, labels, args)
        ratio = "n/a" if our_busy is None or not their_busy else f"{our_busy / their_busy:.2f}"
        print(f"| {os.path.basename(store.rstrip('/'))} | {len(labels):,} | {ours:,.0f} | {percent(our_busy)} "
              f"| {theirs:,.0f} | {percent(their_busy)} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
