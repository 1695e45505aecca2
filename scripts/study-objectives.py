"""The objectives study of docs/benchmarks.md ("Self-paced weights, self-distillation, BD-KD,
subject alignment"), on runs/hapt (`make demo` builds it).

For each seed, the demo's small student (a 1D-CNN of about 1k parameters) trained for --epochs:
from the labels alone (CE, Tf-KD's virtual teacher, PS-KD), with KD from the store's teacher,
KD with CuDFKD's self-paced weights (log and hard), and BD-KD (kdstore's documented construction;
soft and hard switch); then a small transformer student (a token per 8 time steps) with KD, with
and without MMD between the subjects of each batch; then AMAL's learnt per-sample weights against
the same weights held fixed (its starting 0.1 CE / 0.9 per teacher's KD), from the store's teacher
and, with --assistants (runs/hapt-assistants), from its three teachers big, ta1 and ta2. Prints
markdown tables: test accuracy and ECE, mean ± std over the seeds. Every run's results.json stays
under --out.

usage: study-objectives.py KDSTORE_BINARY STORE [--assistants STORE] [--seeds 1 2 3] [--epochs 20] [--out DIR]
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
    ("kd-spl-5", "KD, self-paced weights (log, λ₀ 5, α 1e-4)",
     ["--loss", "kd", "--sample-weight", "spl", "--set", "spl.lambda_0=5"]),
    ("kd-spl-hard-5", "KD, self-paced weights (hard, λ₀ 5, α 1e-4)",
     ["--loss", "kd", "--sample-weight", "spl-hard", "--set", "spl.lambda_0=5"]),
    ("bdkd", "BD-KD construction (T 4, soft switch, scale 0.1)", ["--loss", "bdkd"]),
    ("bdkd-hard", "BD-KD construction (hard switch)", ["--loss", "bdkd", "--set", "scale=0"]),
]
AMAL = ["--loss", "kd", "--ensemble", "amal"]
AMAL_RUNS = [
    ("amal-fixed", "one teacher, AMAL's weights held fixed (= KD)", [*AMAL, "--set", "amal.select_every=1000"]),
    ("amal", "one teacher, AMAL (weights learnt before epochs 4, 8, 12, 16)", [*AMAL, "--set", "amal.select_every=4"]),
]
THREE = ["--teacher", "big", "--teacher", "ta1", "--teacher", "ta2"]
AMAL_THREE_RUNS = [
    ("amal3-fixed", "big + ta1 + ta2, AMAL's weights held fixed", [*THREE, *AMAL, "--set", "amal.select_every=1000"]),
    ("amal3", "big + ta1 + ta2, AMAL (learnt before epochs 4, 8, 12, 16)", [*THREE, *AMAL, "--set", "amal.select_every=4"]),
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
    parser.add_argument("--assistants", help="a store with teachers big, ta1 and ta2 (runs/hapt-assistants)")
    parser.add_argument("--only", choices=["cnn", "transformer", "amal"], help="run one of the tables")
    args = parser.parse_args()
    epochs = ["--epochs", str(args.epochs)]
    seeds = len(args.seeds)
    if args.only in (None, "cnn"):
        header = f"| objective (1D-CNN, {args.epochs} epochs, {seeds} seeds) | test accuracy | test ECE |"
        run_table(args.kdstore, args.store, CNN_RUNS, args.seeds, args.out, [*CNN, *epochs], header)
        print()
    if args.only in (None, "transformer"):
        header = f"| objective (transformer, {args.epochs} epochs, {seeds} seeds) | test accuracy | test ECE |"
        run_table(args.kdstore, args.store, TRANSFORMER_RUNS, args.seeds, args.out, [*TRANSFORMER, *epochs], header)
        print()
    if args.only in (None, "amal"):
        header = f"| weights (1D-CNN, {args.epochs} epochs, {seeds} seeds) | test accuracy | test ECE |"
        run_table(args.kdstore, args.store, AMAL_RUNS, args.seeds, args.out, [*CNN, *epochs], header)
        if args.assistants:
            run_table(args.kdstore, args.assistants, AMAL_THREE_RUNS, args.seeds, args.out, [*CNN, *epochs], "")


if __name__ == "__main__":
    main()
