#!/usr/bin/env python3
"""docs/benchmarks.md's comparison with a plain PyTorch loop, in one run: the same TorchScript
student (a 1D CNN, torch.jit.script) trained with KD on the same HAPT training views

- by kdstore, from the store: `kdstore train STORE --student-torchscript S.pt --views all` (each
  view replayed from its seed per batch, the stored teacher logits read);
- by a plain PyTorch loop over the store's exported views (`kdstore export --normalized`: inputs.npy,
  teacher_logits.npy, rows.parquet read with numpy and pyarrow), held as tensors,

with the same batch size, optimiser (AdamW, lr 3e-3, weight decay 1e-4, cosine schedule), loss
(0.1 CE + 0.9 T² KL at T = 4) and libtorch threads. Prints training views per second of both.
This machine drifts 10-30% over minutes, so the smallest student (what the 1.5x goal is about)
runs ROUNDS alternating pairs and reports the medians and the median of the pairs' ratios.

usage: bench-pytorch-loop.py KDSTORE STORE
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

BATCH = 64
EPOCHS = 2
TAU = 4.0
ROUNDS = {8: 3, 32: 1, 128: 1}
CONDITION = "split = 'train' AND recipe IN ('identity', 'jitter', 'scaling')"


class Student(torch.nn.Module):
    def __init__(self, channels: int, classes: int, width: int):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv1d(channels, width, 5, padding=2), torch.nn.BatchNorm1d(width), torch.nn.ReLU(),
            torch.nn.Conv1d(width, width, 5, padding=2), torch.nn.BatchNorm1d(width), torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=2))


def kd_loss(student, teacher, labels):
    kl = F.kl_div(F.log_softmax(student / TAU, dim=1), F.softmax(teacher / TAU, dim=1), reduction="batchmean")
    return 0.1 * F.cross_entropy(student, labels) + 0.9 * TAU * TAU * kl


def pytorch_loop(module_path, inputs, logits, labels, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch.jit.load(module_path)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, EPOCHS)
    started = time.perf_counter()
    for _ in range(EPOCHS):
        order = torch.randperm(len(labels))
        for start in range(0, len(labels), BATCH):
            batch = order[start:start + BATCH]
            loss = kd_loss(model(inputs[batch]), logits[batch], labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    return EPOCHS * len(labels) / (time.perf_counter() - started)


def kdstore_train(kdstore, store, module_path, out, threads):
    subprocess.run([kdstore, "train", store, "--student-torchscript", module_path, "--views", "all",
                    "--where", CONDITION, "--loss", "kd", "--epochs", str(EPOCHS), "--batch-size", str(BATCH),
                    "--threads", str(threads), "--quiet", "--out", out], check=True, capture_output=True)
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    return results["train_views_per_second"], results["train_views"]


def main():
    kdstore, store = sys.argv[1:3]
    work = tempfile.mkdtemp()
    export = os.path.join(work, "export")
    subprocess.run([kdstore, "export", store, "--where", CONDITION, "--normalized", "--out", export],
                   check=True, capture_output=True)
    inputs = torch.from_numpy(np.load(os.path.join(export, "inputs.npy")))
    logits = torch.from_numpy(np.load(os.path.join(export, "teacher_logits.npy")))
    labels = torch.from_numpy(pq.read_table(os.path.join(export, "rows.parquet"), columns=["label"])
                              .column("label").to_numpy().astype(np.int64))
    channels, classes = inputs.shape[1], logits.shape[1]
    print(f"{len(labels)} training views {tuple(inputs.shape[1:])}, {classes} classes, batches of {BATCH}, "
          f"{EPOCHS} epochs, torch {torch.__version__}")
    print("| student | params | threads | kdstore (views/s) | PyTorch loop (views/s) | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for width in (8, 32, 128):
        module = torch.jit.script(Student(channels, classes, width))
        params = sum(p.numel() for p in module.parameters())
        module_path = os.path.join(work, f"student-{width}.pt")
        module.save(module_path)
        for threads in (1, 2):
            pairs = []
            for round in range(ROUNDS[width]):
                out = os.path.join(work, f"run-{width}-{threads}-{round}")
                ours, views = kdstore_train(kdstore, store, module_path, out, threads)
                assert views == len(labels), (views, len(labels))
                pairs.append((ours, pytorch_loop(module_path, inputs, logits, labels, threads)))
            ours = statistics.median(p[0] for p in pairs)
            theirs = statistics.median(p[1] for p in pairs)
            ratio = statistics.median(p[0] / p[1] for p in pairs)
            rounds = "" if len(pairs) == 1 else " (median of " + ", ".join(f"{a / b:.2f}" for a, b in pairs) + ")"
            print(f"| cnn1d width {width} | {params:,} | {threads} | {ours:,.0f} | {theirs:,.0f} | {ratio:.2f}×{rounds} |",
                  flush=True)

if __name__ == "__main__":
    main()
