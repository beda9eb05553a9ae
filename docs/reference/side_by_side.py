#!/usr/bin/env python3
"""cellvae and scvi-tools side by side, in one run, on the same data, architecture and
epochs: seconds per epoch and held-out log p(x) of each, and their ratios.

For each DATASET:EPOCHS (a 10x-layout folder of /work/shared/data, see README.md here):
  - `cellvae train DATA --obs DATA/cells.tsv --epochs E --holdout-every 10 --seed 0`
    (scvi-tools' defaults: NB, 1 layer of 128, 10 latent dimensions, minibatch 128, KL
    warm-up over 400 epochs), reading its metrics.json;
  - `scvi_reference.py DATA --epochs E --holdout-every 10` (same settings, 2 threads).
The two run one after the other, so they see the same machine load. Prints one table
(markdown) and writes it to --out when given.

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


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", help="DATASET:EPOCHS")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    p.add_argument("--cellvae", type=Path, default=ROOT / "target/release/cellvae")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for run in args.runs:
        name, epochs = run.split(":")
        data = args.data / name
        out = tmp / f"cellvae_{name}"
        t0 = time.perf_counter()
        subprocess.run([str(args.cellvae), "train", str(data), "--obs", str(data / "cells.tsv"),
                        "--epochs", epochs, "--holdout-every", "10", "--seed", "0", "--out", str(out)],
                       check=True, capture_output=True)
        cv_wall = time.perf_counter() - t0
        cv = json.loads((out / "metrics.json").read_text())
        ref = tmp / f"scvi_{name}.json"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / "scvi_reference.py"), str(data), "--epochs", epochs,
                        "--holdout-every", "10", "--drop-empty-cells", "--out", str(ref)], check=True, capture_output=True)
        sv_wall = time.perf_counter() - t0
        sv = json.loads(ref.read_text())
        rows.append((name, int(epochs), cv["n_cells"], cv["n_genes"], cv["seconds_per_epoch"], sv["seconds_per_epoch"],
                     cv["heldout_log_px_iw100_per_cell"], sv["heldout_log_px_iw100_per_cell"], cv_wall, sv_wall))
    lines = [
        "| data | cells x genes | epochs | cellvae s/epoch | scvi-tools s/epoch | speed-up | cellvae log p(x) | scvi-tools log p(x) | difference | wall (cellvae / scvi-tools) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e, n, g, cs, ss, cl, sl, cw, sw in rows:
        lines.append(f"| {name} | {n} x {g} | {e} | {cs:.3f} | {ss:.3f} | {ss / cs:.2f}x | {cl:.2f} | {sl:.2f} | "
                     f"{100 * (cl - sl) / abs(sl):+.2f}% | {cw:.0f} s / {sw:.0f} s |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
