"""Checks `kdstore pacing` against the pacing functions as the official codes compute them,
written here from those codes: google-research/understanding-curricula (`get_pacing_function` in
utils/utils.py: linear, quad, root, step, exp, log with a, b; numpy float64, Python's int() and //)
and GuyHacohen/curriculum_learning (`exponent_data_function_generator`: a fraction that starts at
starting_percent and is multiplied by increase_amount, capped at 1, every batches_to_increase
batches; np.ceil(N * fraction) samples). What the official training loops admit is their ordered
set sliced with that value, so the reference is clamped to [0, N] as slicing clamps it.

Random sizes, step counts and settings (seeded), plus the papers' own settings.

usage: check_pacing.py KDSTORE_BINARY
Prints one line per case and exits 1 on the first step whose count differs.
"""

import subprocess
import sys

import numpy as np


def wu(name, total_step, total_data, a, b):
    """The official get_pacing_function, as a list over steps 0..total_step-1."""
    index_start = b * total_data
    if name == "linear":
        rate = (total_data - index_start) / (a * total_step)
        f = lambda step: int(rate * step + index_start)
    elif name == "quad":
        rate = (total_data - index_start) / (a * total_step) ** 2
        f = lambda step: int(rate * step ** 2 + index_start)
    elif name == "root":
        rate = (total_data - index_start) / (a * total_step) ** 0.5
        f = lambda step: int(rate * step ** 0.5 + index_start)
    elif name == "step":
        threshold = a * total_step
        f = lambda step: int(total_data * (step // threshold) + index_start)
    elif name == "exp":
        c = 10
        tilde_b, tilde_a = index_start, a * total_step
        rate = (total_data - tilde_b) / (np.exp(c) - 1)
        constant = c / tilde_a

        def f(step):
            with np.errstate(over="ignore"):
                grown = np.exp(step * constant)
            if not np.isinf(grown):
                return int(rate * (grown - 1) + tilde_b)
            return total_data
    elif name == "log":
        c = 10
        tilde_b, tilde_a = index_start, a * total_step
        ec = np.exp(-c)
        n_b = total_data - tilde_b
        f = lambda step: int(n_b * (1 + (1. / c) * np.log(step / tilde_a + ec)) + tilde_b)
    return [min(max(f(step), 0), total_data) for step in range(total_step)]


def hacohen(total_step, size_data, starting_percent, increase_amount, batches_to_increase):
    """The official exponent_data_function_generator's data size at each batch."""
    cur_percent, limit, sizes = 1, size_data, []
    for batch in range(total_step):
        if batch % batches_to_increase == 0:
            percent = starting_percent if batch == 0 else min(cur_percent * increase_amount, 1)
            if percent != cur_percent:
                cur_percent = percent
                limit = int(np.ceil(size_data * percent))
        sizes.append(min(limit, size_data))
    return sizes


def kdstore(binary, name, samples, steps, settings):
    command = [binary, "pacing", name, "--samples", str(samples), "--steps", str(steps)]
    for key, value in settings.items():
        command += ["--set", f"{key}={value!r}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [int(line) for line in out.split()]


def main():
    binary = sys.argv[1]
    rng = np.random.default_rng(2026)
    cases = [("linear", 100, 10, {"a": 0.5, "b": 0.1}), ("exponential", 50000, 2000, {})]
    for name in ["linear", "quad", "root", "step", "exp", "log"]:
        for _ in range(6):
            n, steps = int(rng.integers(1, 20000)), int(rng.integers(1, 3000))
            a, b = float(rng.uniform(0.05, 1.5)), float(rng.choice([0.0, rng.uniform(0, 1)]))
            cases.append((name, n, steps, {"a": a, "b": b}))
    for _ in range(6):
        n, steps = int(rng.integers(1, 60000)), int(rng.integers(1, 5000))
        settings = {"start": float(rng.uniform(0.01, 0.5)), "factor": float(rng.uniform(1.0, 3.0)),
                    "step_length": int(rng.integers(1, 300))}
        cases.append(("exponential", n, steps, settings))
    failed = False
    for name, n, steps, settings in cases:
        if name == "exponential":
            s = {"start": 0.04, "factor": 1.9, "step_length": 100, **settings}
            expected = hacohen(steps, n, s["start"], s["factor"], s["step_length"])
        else:
            expected = wu(name, steps, n, settings["a"], settings["b"])
        got = kdstore(binary, name, n, steps, settings)
        bad = [t for t, (e, g) in enumerate(zip(expected, got)) if e != g]
        if len(got) != len(expected) or bad:
            t = bad[0] if bad else min(len(got), len(expected))
            print(f"FAIL {name} N={n} T={steps} {settings}: step {t}: official {expected[t:t + 1]}, kdstore {got[t:t + 1]}")
            failed = True
        else:
            print(f"ok: {name} N={n} T={steps} {settings}: {len(got)} steps, ends at {got[-1]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
