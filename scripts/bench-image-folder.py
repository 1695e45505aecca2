#!/usr/bin/env python3
"""docs/benchmarks.md's image-folder loader benchmark, in one run: one epoch of a training loader's
work over the training images of the Fashion-MNIST PNG tree (decode, random crop with 2 pixels of
padding, horizontal flip, normalise, batches of 128), every loader finding the files in the page
cache, by

- kdstore: `kdstore bench STORE --loader` over the store's crop_flip views (reading and checking
  every file once per run, then replaying each view from its seed), on 1 and 2 threads; and the
  same with KDSTORE_DECODED_LIMIT_MB=0, where no decoded sample is held and every view reads,
  checks and decodes its file (as for a folder larger than memory);
- PyTorch: a DataLoader over torchvision's ImageFolder of the same files (PIL decode, grey), with
  RandomCrop(28, padding=2), RandomHorizontalFlip, ToTensor and Normalize, with 0 and 2 workers.

usage: bench-image-folder.py KDSTORE STORE
"""

import json
import os
import subprocess
import sys
import time

import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

BATCH = 128
CONDITION = "split = 'train' AND recipe = 'crop_flip'"


def kdstore_json(kdstore, *args, env=None):
    return json.loads(subprocess.run([kdstore, *args], check=True, capture_output=True, text=True,
                                     env=env).stdout)


def grey(path):
    with open(path, "rb") as f:
        return Image.open(f).convert("L")


def warm(root):
    """Reads every file once, so that the next loader finds them all in the page cache (this
    machine's memory balloon evicts cached pages within minutes: warm before each measurement)."""
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                f.read()


def torchvision_epoch(root, paths, mean, std, workers):
    transform = transforms.Compose([
        transforms.RandomCrop(28, padding=2),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
    dataset = torchvision.datasets.ImageFolder(os.path.join(root, "train"), transform=transform, loader=grey)
    index = {os.path.relpath(path, root): i for i, (path, _) in enumerate(dataset.samples)}
    subset = Subset(dataset, [index[p] for p in paths])
    loader = DataLoader(subset, batch_size=BATCH, shuffle=True, num_workers=workers)
    started = time.perf_counter()
    views = sum(inputs.shape[0] for inputs, _ in loader)
    return views, time.perf_counter() - started


def main():
    kdstore, store = sys.argv[1:3]
    torch.set_num_threads(1)
    info = kdstore_json(kdstore, "info", store, "--json")
    dataset = info["dataset"]
    root = dataset["files"]["root"]
    mean, std = dataset["normalization"]["mean"], dataset["normalization"]["std"]
    sql = ("SELECT s.path FROM views v JOIN samples s ON v.sample_id = s.sample_id"
           " WHERE s.split = 'train' AND v.recipe = 'crop_flip' ORDER BY v.view_id")
    paths = [row["path"] for row in kdstore_json(kdstore, "query", store, sql, "--format", "json")]
    print(f"{len(paths)} training views of {root}, batches of {BATCH}, {os.cpu_count()} cores")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    rows = []
    decoding_on_use = dict(os.environ, KDSTORE_DECODED_LIMIT_MB="0")
    for held in (True, False):
        for threads in (1, 2):
            warm(root)
            t = kdstore_json(kdstore, "bench", store, "--loader", "--where", CONDITION, "--threads", str(threads),
                             "--batch-size", str(BATCH), "--json", env=None if held else decoding_on_use)["loader"]
            first = t["views"] / (t["load_seconds"] + t["epoch_seconds"])
            later = t["views"] / t["epoch_seconds"]
            name = f"kdstore, {threads} thread{'s' if threads > 1 else ''}"
            if held:
                note = f"reading + checking + decoding every file: {t['load_seconds']:.2f} s"
            else:
                name += ", decoded on each use"
                note = "no sample held: every view reads, checks and decodes its file"
            rows.append((name, t["views"], first, later, note))
    for workers in (0, 2):
        warm(root)
        views, seconds = torchvision_epoch(root, paths, mean, std, workers)
        rows.append((f"DataLoader(ImageFolder), {workers} workers", views, views / seconds, views / seconds,
                     "decodes every epoch"))
    print("| loader | views | first epoch (views/s) | later epochs (views/s) | note |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, views, first, later, note in rows:
        print(f"| {name} | {views} | {first:,.0f} | {later:,.0f} | {note} |")


if __name__ == "__main__":
    main()
