"""Writes the first N Fashion-MNIST training images (real data, from the Debian package's IDX
files) as an npy dataset: inputs.npy (N × 1 × 28 × 28 float32 in [0, 1]) and labels.npy (int64).

usage: fmnist_subset.py DATA_DIR OUT_DIR N
"""

import gzip
import os
import sys

import numpy as np


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


data_dir, out_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
images = idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))[:n]
labels = idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))[:n]
os.makedirs(out_dir, exist_ok=True)
np.save(os.path.join(out_dir, "inputs.npy"), (images.astype(np.float32) / 255.0)[:, None])
np.save(os.path.join(out_dir, "labels.npy"), labels.astype(np.int64))
