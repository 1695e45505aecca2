"""Times what checking a store against its manifest costs (docs/benchmarks.md).

Every read of a data file is checked first: hashed in full (xxh3-128) the first time, then found in
the verification record by device, inode, size and times. This script times, as the processes users
run, one query that reads every logits file (the largest table):

  - cold:    an empty record, so every file the query reads is hashed before it is read;
  - warm:    the record written by the cold run, so only a stat per file;
  - no record: a record directory that cannot be written, so every run hashes again;

and `kdstore verify STORE` (every file of the version hashed, footers read) and `verify --deep`
(every view replayed, every stored value read). It also reports the raw hashing speed of xxh3-128
and sha256 over the store's files (Python's hashlib/xxhash, for scale). Each timing is the best of
--runs.

usage: bench-verify.py KDSTORE_BINARY STORE [--runs N]
"""

import argparse
import hashlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

QUERY = "SELECT COUNT(*), AVG(teacher_loss) FROM logits"


def timed(command, env, runs):
    best = None
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"{command} failed: {result.stderr}")
        best = elapsed if best is None else min(best, elapsed)
    return best


def store_files(store):
    manifests = sorted((Path(store) / "_manifest").glob("[0-9]*.json"))
    manifest = json.loads(manifests[-1].read_text())
    return manifest, [Path(store) / f["path"] for f in manifest["files"]]


def hash_speed(paths, make):
    start = time.perf_counter()
    total = 0
    for path in paths:
        digest = make()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                total += len(chunk)
    return total / (time.perf_counter() - start) / (1 << 30)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kdstore")
    parser.add_argument("store")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    manifest, paths = store_files(args.store)
    logits = [p for p, f in zip(paths, manifest["files"]) if f["table"] == "logits"]
    size = lambda ps: sum(p.stat().st_size for p in ps) / (1 << 20)
    print(f"store {args.store}: version {manifest['version']}, schema {manifest['schema_version']}, "
          f"{len(paths)} files ({size(paths):.0f} MiB), {len(logits)} logits files ({size(logits):.0f} MiB)")
    query = [args.kdstore, "query", args.store, QUERY, "--format", "csv"]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, KDSTORE_CACHE_DIR=cache)
        cold = None
        for _ in range(args.runs):
            for record in Path(cache).glob("verified/*"):
                record.unlink()
            elapsed = timed(query, env, 1)
            cold = elapsed if cold is None else min(cold, elapsed)
        warm = timed(query, env, args.runs)
        verify = timed([args.kdstore, "--quiet", "verify", args.store], env, args.runs)
        deep = timed([args.kdstore, "--quiet", "verify", args.store, "--deep"], env, 1)
    unwritable = dict(os.environ, KDSTORE_CACHE_DIR="/proc/kdstore-no-record")
    no_record = timed(query, unwritable, args.runs)
    import xxhash

    xxh3 = hash_speed(paths, xxhash.xxh3_128)
    sha = hash_speed(paths, hashlib.sha256)
    print(f"query over logits, cold record (hash {len(logits)} files): {cold:.3f} s")
    print(f"query over logits, warm record (stat only):           {warm:.3f} s")
    print(f"query over logits, no record (hash every run):        {no_record:.3f} s")
    print(f"cold / warm: {cold / warm:.2f}x; no record / warm: {no_record / warm:.2f}x")
    print(f"kdstore verify (all {len(paths)} files hashed, footers read): {verify:.3f} s")
    print(f"kdstore verify --deep (every view replayed, every value read): {deep:.3f} s")
    print(f"hashing speed (Python, one core): xxh3-128 {xxh3:.2f} GiB/s, sha256 {sha:.2f} GiB/s")


if __name__ == "__main__":
    main()
