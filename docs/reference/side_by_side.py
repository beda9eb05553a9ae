#!/usr/bin/env python3
"""cellvae and scvi-tools side by side, in one run, on the same data, architecture and
epochs: seconds per epoch and held-out log p(x) of each, and their ratios.

For each DATASET:EPOCHS (a 10x-layout folder of /work/shared/data, see README.md here):
  - `cellvae train DATA --obs DATA/cells.tsv --epochs E --holdout-every 10 --seed 0`
    (scvi-tools' defaults: NB, 1 layer of 128, 10 latent dimensions, minibatch 128, KL
    warm-up over 400 epochs), reading its metrics.json;
  - `scvi_reference.py DATA --epochs E --holdout-every 10` (same settings, 2 threads).
The two run one after the other, so they see the same machine load. Prints one table
(markdown) and writes it to --out when given. With --seeds N each tool trains N times
(seeds 0..N-1: initialisation, minibatch order, draws) and a second table gives each
tool's held-out log p(x) as mean and spread over the seeds, and the difference of the
means in standard errors: a difference smaller than the seed-to-seed spread is no
difference.

    cargo build --release --bin cellvae
    /tmp/scvi/bin/python docs/reference/side_by_side.py pbmc68k_reduced_700:100 mouse_10k_1000:20
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def mean_sd(v: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    m = sum(v) / len(v)
    if len(v) < 2:
        return m, 0.0
    return m, (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", help="DATASET:EPOCHS")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    p.add_argument("--cellvae", type=Path, default=ROOT / "target/release/cellvae")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--seeds", type=int, default=1,
                   help="train each tool with seeds 0..N-1 (training's random draws; the held-out cells stay)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for run in args.runs:
        name, epochs = run.split(":")
        data = args.data / name
        for seed in range(args.seeds):
            out = tmp / f"cellvae_{name}_{seed}"
            t0 = time.perf_counter()
            subprocess.run([str(args.cellvae), "train", str(data), "--obs", str(data / "cells.tsv"),
                            "--epochs", epochs, "--holdout-every", "10", "--seed", str(seed), "--out", str(out)],
                           check=True, capture_output=True)
            cv_wall = time.perf_counter() - t0
            cv = json.loads((out / "metrics.json").read_text())
            ref = tmp / f"scvi_{name}_{seed}.json"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, str(HERE / "scvi_reference.py"), str(data), "--epochs", epochs,
                            "--holdout-every", "10", "--drop-empty-cells", "--seed", str(seed), "--out", str(ref)],
                           check=True, capture_output=True)
            sv_wall = time.perf_counter() - t0
            sv = json.loads(ref.read_text())
            rows.append((name, int(epochs), seed, cv["n_cells"], cv["n_genes"], cv["seconds_per_epoch"],
                         sv["seconds_per_epoch"], cv["heldout_log_px_iw100_per_cell"],
                         sv["heldout_log_px_iw100_per_cell"], cv_wall, sv_wall))
    lines = [
        "| data | cells x genes | epochs | seed | cellvae s/epoch | scvi-tools s/epoch | speed-up | cellvae log p(x) | scvi-tools log p(x) | difference | wall (cellvae / scvi-tools) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e, seed, n, g, cs, ss, cl, sl, cw, sw in rows:
        lines.append(f"| {name} | {n} x {g} | {e} | {seed} | {cs:.3f} | {ss:.3f} | {ss / cs:.2f}x | {cl:.2f} | {sl:.2f} | "
                     f"{100 * (cl - sl) / abs(sl):+.2f}% | {cw:.0f} s / {sw:.0f} s |")
    if args.seeds > 1:
        # Per data set over the seeds: the speed-up of the summed times, and each tool's
        # log p(x) as mean and standard deviation across seeds (the seed-to-seed spread is
        # what a difference between the tools is to be read against).
        lines += ["", "| data | epochs | seeds | speed-up (summed s/epoch) | cellvae log p(x), mean ± sd | "
                  "scvi-tools log p(x), mean ± sd | difference of means | in sds of the difference |",
                  "|---|---|---|---|---|---|---|---|"]
        for run in args.runs:
            name, epochs = run.split(":")
            sel = [r for r in rows if r[0] == name and r[1] == int(epochs)]
            cl = [r[7] for r in sel]
            sl = [r[8] for r in sel]
            speed = sum(r[6] for r in sel) / sum(r[5] for r in sel)
            (cm, cs), (sm, ss) = mean_sd(cl), mean_sd(sl)
            diff = cm - sm
            se = ((cs ** 2 + ss ** 2) / len(sel)) ** 0.5
            z = diff / se if se > 0 else float("inf")
            lines.append(f"| {name} | {epochs} | {len(sel)} | {speed:.2f}x | {cm:.2f} ± {cs:.2f} | {sm:.2f} ± {ss:.2f} | "
                         f"{diff:+.2f} ({100 * diff / abs(sm):+.3f}%) | {z:+.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
