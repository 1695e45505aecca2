#!/usr/bin/env bash
# docs/benchmarks.md's GPU check, run on a lent GPU machine (the device tool) from the repository
# root: unpacks the kdstore-torch that `make gpu-bundle` packed into .gpu/, points it at the
# machine's own libtorch (its python3's torch, the same 2.11.0), builds any pipeline given, and runs
# scripts/bench-gpu.py on the stores with --device cuda, nvidia-smi sampling the GPU. Everything it
# prints is also written under $OUT (the device tool brings that folder back).
#
# usage: scripts/gpu-check.sh STORE|PIPELINE.toml ...   (KDSTORE_GPU_CHECK_DEVICE=cpu: the same steps
#        on a machine without a GPU, to check the script itself)
#   e.g. (carry .gpu and runs/hapt)            scripts/gpu-check.sh runs/hapt
#        (carry .gpu and data/fashion-mnist)   scripts/gpu-check.sh pipelines/fashion-mnist.toml
set -euo pipefail
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
exec > >(tee -a "$out/gpu-check.log") 2>&1
binary=/tmp/kdstore-torch
python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(".gpu/kdstore-torch.xz"), open(sys.argv[1], "wb"))' "$binary"
chmod +x "$binary"
LD_LIBRARY_PATH=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH
device=${KDSTORE_GPU_CHECK_DEVICE:-cuda}
if [ "$device" = cuda ] || command -v nvidia-smi > /dev/null; then nvidia-smi | tee "$out/nvidia-smi.txt"; fi
"$binary" --version
stores=()
for target in "$@"; do
    case $target in
        *.toml)
            "$binary" build "$target" --quiet
            stores+=("$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["store"])' "$target")")
            ;;
        *) stores+=("$target") ;;
    esac
done
PYTHONUNBUFFERED=1 python3 scripts/bench-gpu.py "$binary" "${stores[@]}" --device "$device" | tee "$out/bench-gpu.md"
