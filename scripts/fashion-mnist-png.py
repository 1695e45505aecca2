#!/usr/bin/env python3
"""Writes Fashion-MNIST (the Debian package's IDX files, under data/fashion-mnist) as a folder of
PNG files in torchvision's ImageFolder layout, for the `image_folder` source:

    OUT/train/<k>-<class>/<index>.png   (index: the image's position in the IDX training file)
    OUT/test/<k>-<class>/<index>.png

The class folders start with the label so that sorting them by name (as torchvision and kdstore do)
gives Fashion-MNIST's label order. Grey 8-bit PNGs are written with the standard library only.

With --idx DIR, the same images are also written as IDX files in the order a folder store reads
them (split, class folder, file name), so that an `idx` store of DIR and an `image_folder` store of
OUT hold the same samples under the same ids.

usage: fashion-mnist-png.py SRC OUT [--train N] [--test N] [--idx DIR]
"""

import argparse
import gzip
import os
import struct
import zlib

CLASSES = ["t-shirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return shape, data[4 + 4 * dims:]


def png(width, height, pixels):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def write_atomically(path, data):
    part = path + ".part"
    with open(part, "wb") as f:
        f.write(data)
    os.replace(part, path)


def write_split(src, out, split, prefix, limit, idx_dir):
    (count, height, width), pixels = read_idx(os.path.join(src, f"{prefix}-images-idx3-ubyte.gz"))
    _, labels = read_idx(os.path.join(src, f"{prefix}-labels-idx1-ubyte.gz"))
    count = min(count, limit) if limit is not None else count
    size = height * width
    digits = len(str(count - 1))
    for k, name in enumerate(CLASSES):
        os.makedirs(os.path.join(out, split, f"{k}-{name}"), exist_ok=True)
    for i in range(count):
        folder = f"{labels[i]}-{CLASSES[labels[i]]}"
        image = png(width, height, pixels[i * size:(i + 1) * size])
        write_atomically(os.path.join(out, split, folder, f"{i:0{digits}d}.png"), image)
    if idx_dir is not None:
        # The folder order: by class folder, then by file name (the zero-padded index).
        order = sorted(range(count), key=lambda i: (labels[i], i))
        images = b"".join(pixels[i * size:(i + 1) * size] for i in order)
        os.makedirs(idx_dir, exist_ok=True)
        write_atomically(os.path.join(idx_dir, f"{prefix}-images-idx3-ubyte"), struct.pack(">IIII", 0x803, count, height, width) + images)
        write_atomically(os.path.join(idx_dir, f"{prefix}-labels-idx1-ubyte"), struct.pack(">II", 0x801, count) + bytes(labels[i] for i in order))
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--train", type=int, help="only the first N training images")
    parser.add_argument("--test", type=int, help="only the first N test images")
    parser.add_argument("--idx", help="also write the images as IDX files in folder order here")
    args = parser.parse_args()
    train = write_split(args.src, args.out, "train", "train", args.train, args.idx)
    test = write_split(args.src, args.out, "test", "t10k", args.test, args.idx)
    print(f"wrote {train} training and {test} test images under {args.out}")


if __name__ == "__main__":
    main()
