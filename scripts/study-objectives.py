"""The objectives study of docs/benchmarks.md ("Self-paced weights, self-distillation, BD-KD,
subject alignment"), on runs/hapt (`make demo` builds it).

For each seed, the demo's small student (a 1D-CNN of about 1k parameters) trained for --epochs:
from the labels alone (CE, Tf-KD's virtual teacher, PS-KD), with KD from the store's teacher,
KD with CuDFKD's self-paced weights (log and hard), and BD-KD (kdstore's documented construction;
soft and hard switch); then a small transformer student (a token per 8 time steps) with KD, with
and without MMD between the subjects of each batch. Prints markdown tables: test accuracy and
ECE, mean ± std over the seeds. Every run's results.json stays under --out.

usage: study-objectives.py KDSTORE_BINARY STORE [--seeds 1 2 3] [--epochs 20] [--out DIR]
"""

import argparse

from study_table import run_table

CNN = ["--student", "cnn1d", "--width", "8", "--depth", "2"]
CNN_RUNS = [
    ("ce", "CE (labels only)", ["--loss", "ce"]),
    ("tfkd", "Tf-KD virtual teacher (α 0.1, T 20, ×100)", ["--loss", "tfkd"]),
    ("pskd", "PS-KD (α_T 0.8)", ["--loss", "pskd"]),
    ("kd", "KD (T 4, 0.1·CE + 0.9·KD)", ["--loss", "kd"]),
    ("kd-spl", "KD, self-paced weights (log, λ₀ 1, α 1e-4)", ["--loss", "kd", "--sample-weight", "spl"]),
    ("kd-spl-hard", "KD, self-paced weights (hard, λ₀ 1, α 1e-4)", ["--loss", "kd", "--sample-weight", "spl-hard"]),
    ("bdkd", "BD-KD construction (T 4, soft switch, scale 0.1)", ["--loss", "bdkd"]),
    ("bdkd-hard", "BD-KD construction (hard switch)", ["--loss", "bdkd", "--set", "scale=0"]),
]
TRANSFORMER = ["--student", "transformer", "--width", "16", "--depth", "2", "--heads", "2", "--patch", "8"]
TRANSFORMER_RUNS = [
    ("transformer-kd", "transformer, KD", ["--loss", "kd"]),
    ("transformer-kd-groups", "transformer, KD, 4 subjects per batch", ["--loss", "kd", "--groups-per-batch", "4"]),
    ("transformer-kd-mmd", "transformer, KD + 0.5·MMD between the batch's 4 subjects",
     ["--loss", "kd", "--loss", "mmd=0.5", "--groups-per-batch", "4"]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kdstore")
    parser.add_argument("store")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="runs/study-objectives")
    parser.add_argument("--only", choices=["cnn", "transformer"], help="run one of the two tables")
    args = parser.parse_args()
    epochs = ["--epochs", str(args.epochs)]
    seeds = len(args.seeds)
    if args.only != "transformer":
        header = f"| objective (1D-CNN, {args.epochs} epochs, {seeds} seeds) | test accuracy | test ECE |"
        run_table(args.kdstore, args.store, CNN_RUNS, args.seeds, args.out, [*CNN, *epochs], header)
        print()
    if args.only != "cnn":
        header = f"| objective (transformer, {args.epochs} epochs, {seeds} seeds) | test accuracy | test ECE |"
        run_table(args.kdstore, args.store, TRANSFORMER_RUNS, args.seeds, args.out, [*TRANSFORMER, *epochs], header)


if __name__ == "__main__":
    main()
