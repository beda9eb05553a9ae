#!/usr/bin/env python3
"""Print the markdown results table of docs/reference/README.md from the *_scvi.json files."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

COLS = [
    ("dataset", "dataset", "{}"),
    ("likelihood", "lik.", "{}"),
    ("batch_key", "batch", "{}"),
    ("n_cells", "cells", "{}"),
    ("n_genes", "genes", "{}"),
    ("epochs", "epochs", "{}"),
    ("heldout_log_px_iw100_per_cell", "log p(x) IW100", "{:.1f}"),
    ("heldout_elbo_per_cell", "ELBO (scvi, 1 sample)", "{:.1f}"),
    ("heldout_elbo_mc100_per_cell", "ELBO (100 samples)", "{:.1f}"),
    ("heldout_reconstruction_per_cell", "recon. (scvi, 1 sample)", "{:.1f}"),
    ("heldout_kl_per_cell", "KL", "{:.2f}"),
    ("train_elbo_mc100_per_cell", "train ELBO (100 s.)", "{:.1f}"),
    ("active_units", "AU", "{}"),
    ("knn15_accuracy", "kNN-15", "{:.3f}"),
    ("seconds_train", "train s", "{:.1f}"),
    ("seconds_per_epoch", "s/epoch", "{:.3f}"),
]


def fmt(f, v):
    return "—" if v is None else f.format(v)


def main():
    rows = [json.loads(p.read_text()) for p in sorted(HERE.glob("*_scvi.json"))]
    print("| " + " | ".join(h for _, h, _ in COLS) + " |")
    print("|" + "---|" * len(COLS))
    for r in rows:
        print("| " + " | ".join(fmt(f, r.get(k)) for k, _, f in COLS) + " |")


if __name__ == "__main__":
    main()
