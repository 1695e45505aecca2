"""Checks `kdstore stats` (a study's statistics) against scipy on seeded random studies.

Usage: check_stats.py KDSTORE. Per cell: mean, std (ddof 1) and the 95% t-interval as
scipy.stats.t.interval; the percentile bootstrap inside the 2.5%/97.5% quantile brackets (±1%)
of scipy.stats.bootstrap's own distribution (both are Monte Carlo); against the baseline, paired by
seed: the mean difference, its t-interval, the exact sign-flip p-value as
scipy.stats.permutation_test(permutation_type="samples"), the floor 2/2^n, the seeds won, and
Holm's adjustment written out from its definition. Prints one "ok:" line per study.
"""

import json
import subprocess
import sys

import numpy as np
from scipy import stats

KDSTORE = sys.argv[1]
RELATIVE = 1e-9


def close(a, b, what):
    assert abs(a - b) <= RELATIVE * max(1.0, abs(a), abs(b)), f"{what}: kdstore {a!r} vs scipy {b!r}"


def t_interval(values):
    if np.std(values) == 0:  # scipy answers nan for a zero scale; the interval is the point itself
        return (np.mean(values), np.mean(values))
    return stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))


def holm(p_values):
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def check(study, maximise, rng):
    args = [KDSTORE, "stats"] + ([] if maximise else ["--lower-is-better"])
    out = subprocess.run(args, input=json.dumps(study), capture_output=True, text=True, check=True).stdout
    got = json.loads(out)["cells"]
    cells = study["cells"]
    base = cells[study["baseline"]]
    p_values, compared = [], []
    for name, values in cells.items():
        mine = got[name]
        seeds = sorted(values, key=int)
        x = np.array([values[s] for s in seeds])
        summary = mine["summary"]
        close(summary["mean"], np.mean(x), f"{name} mean")
        close(summary["std"], np.std(x, ddof=1), f"{name} std")
        for a, b in zip(summary["t_interval"], t_interval(x)):
            close(a, b, f"{name} t-interval")
        boot = stats.bootstrap((x,), np.mean, n_resamples=100_000, method="percentile", random_state=rng)
        distribution = np.sort(boot.bootstrap_distribution)
        for got_bound, level in zip(summary["bootstrap_interval"], (0.025, 0.975)):
            low, high = np.quantile(distribution, [max(0.0, level - 0.01), min(1.0, level + 0.01)])
            assert low - 1e-12 <= got_bound <= high + 1e-12, f"{name} bootstrap {got_bound} outside [{low}, {high}]"
        if name == study["baseline"]:
            assert mine["against_baseline"] is None
            continue
        common = [s for s in seeds if s in base]
        c = np.array([values[s] for s in common])
        b = np.array([base[s] for s in common])
        paired = mine["against_baseline"]
        n = len(common)
        assert paired["n"] == n
        close(paired["mean_difference"], np.mean(c - b), f"{name} difference")
        if n > 1:
            for a, e in zip(paired["t_interval"], t_interval(c - b)):
                close(a, e, f"{name} difference interval")
        test = stats.permutation_test(
            (c, b), lambda u, v, axis: np.mean(u - v, axis=axis), permutation_type="samples",
            n_resamples=np.inf, alternative="two-sided",
        )
        close(paired["p_value"], test.pvalue, f"{name} sign-flip p")
        close(paired["p_floor"], min(1.0, 2.0 / 2**n), f"{name} floor")
        won = int(np.sum(c > b)) if maximise else int(np.sum(c < b))
        assert paired["won"] == won, f"{name} won {paired['won']} vs {won}"
        p_values.append(test.pvalue)
        compared.append(name)
    for name, adjusted in zip(compared, holm(np.array(p_values))):
        close(got[name]["p_holm"], adjusted, f"{name} Holm")


def main():
    rng = np.random.default_rng(20261201)
    checked = 0
    for n in (2, 3, 4, 5, 8, 12):
        for maximise in (True, False):
            cells = {}
            for index in range(4):
                shift = rng.normal(0, 0.02)
                values = rng.normal(0.85 + shift, 0.02, n).round(4)
                seeds = list(range(1, n + 1))
                if index == 3 and n > 2:
                    seeds = seeds[1:]  # a cell missing a seed pairs on the others
                    values = values[1:]
                cells[f"cell{index}"] = {str(s): float(v) for s, v in zip(seeds, values)}
            if n >= 4:
                cells["tied"] = dict(cells["cell0"])  # zero differences: p = 1
            check({"baseline": "cell0", "cells": cells}, maximise, rng)
            checked += 1
            print(f"ok: {len(cells)} cells × {n} seeds ({'higher' if maximise else 'lower'} is better)")
    print(f"{checked} studies agree with scipy")


if __name__ == "__main__":
    main()
