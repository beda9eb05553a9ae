#!/usr/bin/env python3
"""scvi-tools reference numbers for cellvae.

Trains scvi.model.SCVI on a 10x-layout dataset folder (matrix.mtx.gz genes x cells,
features.tsv, barcodes.tsv, cells.tsv with a header row), holding out every K-th cell
(0-based input position i with i % K == 0), and writes one JSON of held-out metrics.

See docs/reference/README.md for the exact definition of every number.

Usage (from the repo root, with a venv holding scvi-tools==1.4.2 and scikit-misc):
    python docs/reference/scvi_reference.py /work/shared/data/pbmc68k_reduced_700 \
        --likelihood nb --epochs 400 --label cell_type
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import sys
import time
from importlib.metadata import version as pkg_version
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
HVG_MIN_CELLS = 3


def load_10x(folder: Path):
    import anndata as ad

    with gzip.open(folder / "matrix.mtx.gz", "rb") as f:
        m = scipy.io.mmread(f)  # genes x cells
    x = sp.csr_matrix(m.T, dtype=np.float32)  # cells x genes, raw counts
    feats = pd.read_csv(folder / "features.tsv", sep="\t", header=None, dtype=str)
    barcodes = pd.read_csv(folder / "barcodes.tsv", sep="\t", header=None, dtype=str)[0]
    cells_path = folder / "cells.tsv"
    if cells_path.exists():
        obs = pd.read_csv(cells_path, sep="\t", header=0, dtype=str, keep_default_na=False)
        assert len(obs) == len(barcodes), "cells.tsv and barcodes.tsv disagree in length"
        first = obs.columns[0]
        assert (obs[first].values == barcodes.values).all(), "cells.tsv order != barcodes.tsv"
    else:
        obs = pd.DataFrame({"barcode": barcodes})
    obs.index = pd.Index(barcodes.values, name=None).astype(str)
    var = pd.DataFrame({"gene_id": feats[0].values, "gene_name": feats[1].values})
    var.index = pd.Index(feats[0].values).astype(str)  # ids are unique, names may not be
    assert x.shape == (len(obs), len(var)), (x.shape, len(obs), len(var))
    adata = ad.AnnData(X=x, obs=obs, var=var)
    # sanity: integral, non-negative counts, no empty cells (log library would be -inf)
    assert np.all(adata.X.data >= 0) and np.all(np.floor(adata.X.data) == adata.X.data)
    lib = np.asarray(adata.X.sum(axis=1)).ravel()
    # a cell with no counts has no log library size; cellvae drops such cells (after the
    # held-out split by input position), and so does main() here with --drop-empty-cells
    adata.obs["_empty_cell"] = lib == 0
    return adata


def hvg_seurat_v3(adata, n_top: int, out_prefix: Path):
    """Top-n seurat_v3 HVGs on all cells (raw counts); writes the list and the full table."""
    import scanpy as sc

    tmp = adata.copy()
    # Genes detected in < 3 cells are left out before the loess fit: on wu2020_200 (200 cells)
    # skmisc's loess with scanpy's default span 0.3 fails on all 12,047 non-constant genes
    # ("There are other near singularities as well"); see README.
    detected = np.asarray((tmp.X > 0).sum(axis=0)).ravel()
    tmp = tmp[:, detected >= HVG_MIN_CELLS].copy()
    sc.pp.highly_variable_genes(tmp, flavor="seurat_v3", n_top_genes=n_top)
    v = tmp.var.reindex(adata.var_names)
    v["gene_id"], v["gene_name"] = adata.var["gene_id"], adata.var["gene_name"]
    v["n_cells_detected"] = detected
    v["highly_variable"] = v["highly_variable"].fillna(False).astype(bool)
    cols = [c for c in ["gene_id", "gene_name", "n_cells_detected", "means", "variances", "variances_norm",
                        "highly_variable_rank", "highly_variable"] if c in v.columns]
    # table: only the genes that entered the loess fit (detected in >= HVG_MIN_CELLS cells)
    v.loc[v["n_cells_detected"] >= HVG_MIN_CELLS, cols].to_csv(
        str(out_prefix) + "_table.tsv", sep="\t", index=False, float_format="%.9g")
    keep = v["highly_variable"].values.astype(bool)
    # list in original input (feature) order; one gene id per line, tab, gene name
    with open(str(out_prefix) + ".txt", "w") as f:
        f.write("# seurat_v3 top %d HVGs (scanpy %s, span 0.3) of the genes detected in >= %d "
                "of all %d cells, raw counts; columns: 0-based feature index, gene_id, "
                "gene_name; input order\n"
                % (n_top, pkg_version("scanpy"), HVG_MIN_CELLS, adata.n_obs))
        for i in np.flatnonzero(keep):
            f.write("%d\t%s\t%s\n" % (i, v["gene_id"].iloc[i], v["gene_name"].iloc[i]))
    return adata[:, keep].copy()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder", type=Path)
    p.add_argument("--likelihood", default="nb", choices=["nb", "zinb", "poisson"])
    p.add_argument("--epochs", default="400",
                   help="integer, or 'heuristic' = min(round(20000/n_train*400), 400)")
    p.add_argument("--holdout-every", type=int, default=10)
    p.add_argument("--label", default=None, help="obs column for kNN accuracy")
    p.add_argument("--batch-key", default=None)
    p.add_argument("--hvg", type=int, default=0, help="keep top-N seurat_v3 HVGs (all cells)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-mc", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="scvi.settings.seed (training's draws)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--drop-empty-cells", action="store_true",
                   help="leave cells with zero total counts out after the held-out split")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import scvi
    from scvi.model._utils import get_max_epochs_heuristic

    scvi.settings.num_threads = args.threads
    scvi.settings.dl_num_workers = 0
    scvi.settings.seed = args.seed

    dataset = args.folder.name
    adata = load_10x(args.folder)
    if args.hvg:
        dataset = f"{dataset}_hvg{args.hvg}"
        adata = hvg_seurat_v3(adata, args.hvg, HERE / f"{dataset}_seurat_v3")
    if args.batch_key:
        # categories from ALL cells so train and held-out share one one-hot coding
        adata.obs[args.batch_key] = pd.Categorical(adata.obs[args.batch_key])

    n = adata.n_obs
    K = args.holdout_every
    test_mask = (np.arange(n) % K) == 0
    empty = adata.obs["_empty_cell"].to_numpy()
    if empty.any() and not args.drop_empty_cells:
        raise SystemExit(f"{int(empty.sum())} cell(s) have zero total counts; give --drop-empty-cells "
                         "to leave them out after the held-out split (as cellvae does)")
    adata_train = adata[~test_mask & ~empty].copy()
    adata_test = adata[test_mask & ~empty].copy()

    if args.epochs == "heuristic":
        epochs = int(get_max_epochs_heuristic(adata_train.n_obs))
    else:
        epochs = int(args.epochs)

    scvi.model.SCVI.setup_anndata(adata_train, batch_key=args.batch_key)
    model = scvi.model.SCVI(adata_train, gene_likelihood=args.likelihood,
                            n_latent=10, n_hidden=128, n_layers=1)

    t0 = time.perf_counter()
    model.train(max_epochs=epochs, train_size=1.0, batch_size=128, accelerator="cpu",
                devices=1, enable_progress_bar=False)
    seconds_train = time.perf_counter() - t0
    model.module.eval()

    # ---------------------- held-out metrics via scvi's own API -------------------
    # adata_test is registered by transferring the training setup (same batch coding).
    torch.manual_seed(1)
    elbo_cells = model.get_elbo(adata_test, return_mean=False)  # already ELBO (negated loss)
    torch.manual_seed(2)
    mll_cells = model.get_marginal_ll(adata_test, n_mc_samples=args.n_mc, return_mean=False)
    torch.manual_seed(3)
    rec = model.get_reconstruction_error(adata_test, return_mean=False)
    rec_cells = -rec["reconstruction_loss"]  # scvi returns -log p(x|z) >= 0; negate

    # ---------------------- own computations on the module ------------------------
    from scvi import REGISTRY_KEYS
    from scvi.module._constants import MODULE_KEYS

    def module_stats(ad_, n_samples: int, seed: int):
        """Per cell: closed-form KL per dim, qz means, MC-mean log p(x|z) over n_samples."""
        torch.manual_seed(seed)
        dl = model._make_data_loader(adata=model._validate_anndata(ad_), batch_size=128)
        kl_dims, means, logpx = [], [], []
        with torch.inference_mode():
            for tensors in dl:
                inf, gen = model.module.forward(
                    tensors, inference_kwargs={"n_samples": n_samples}, compute_loss=False)
                qz = inf[MODULE_KEYS.QZ_KEY]
                mu, var = qz.loc, qz.scale ** 2
                kl_dims.append(0.5 * (mu ** 2 + var - 1.0 - torch.log(var)))
                means.append(mu)
                x = tensors[REGISTRY_KEYS.X_KEY]
                lp = gen[MODULE_KEYS.PX_KEY].log_prob(x).sum(-1)  # (S, cells)
                logpx.append(lp.mean(0))
        return (torch.cat(kl_dims).numpy().astype(np.float64),
                torch.cat(means).numpy().astype(np.float64),
                torch.cat(logpx).numpy().astype(np.float64))

    kl_te, mu_te, logpx_te = module_stats(adata_test, args.n_mc, seed=4)
    kl_tr, mu_tr, logpx_tr = module_stats(adata_train, args.n_mc, seed=5)
    kl_per_dim = kl_te.mean(0)
    au_var = mu_te.var(0)  # Cov_x(E_q[z]) diagonal, population variance over held-out cells
    mu_all = np.concatenate([mu_tr, mu_te])
    au_var_all = mu_all.var(0)

    # ---------------------- kNN on latent means of ALL cells -----------------------
    latent = model.get_latent_representation(adata)  # qz.loc, input order
    knn = None
    if args.label:
        from sklearn.model_selection import StratifiedKFold
        from sklearn.neighbors import KNeighborsClassifier

        y = adata.obs[args.label].astype(str).values
        skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
        accs, correct = [], 0
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 'least populated class has only 1 member'
            for tr, te in skf.split(latent, y):
                clf = KNeighborsClassifier(n_neighbors=15)  # Euclidean, uniform weights
                clf.fit(latent[tr], y[tr])
                pred = clf.predict(latent[te])
                accs.append(float((pred == y[te]).mean()))
                correct += int((pred == y[te]).sum())
        knn = {"mean_over_folds": float(np.mean(accs)), "folds": accs,
               "pooled": correct / n}

    hist = model.history
    last = {k: float(v.iloc[-1, 0]) for k, v in hist.items()
            if k in ("elbo_train", "reconstruction_loss_train", "kl_local_train")}

    out = {
        "dataset": dataset,
        "n_cells": int(n),
        "n_genes": int(adata.n_vars),
        "n_train": int(adata_train.n_obs),
        "n_heldout": int(adata_test.n_obs),
        "holdout_every": K,
        "likelihood": args.likelihood,
        "batch_key": args.batch_key,
        "n_batches": int(adata.obs[args.batch_key].cat.categories.size) if args.batch_key else 0,
        "label": args.label,
        "epochs": epochs,
        "seconds_train": seconds_train,
        "seconds_per_epoch": seconds_train / epochs,
        # scvi API, per cell, higher is better
        "heldout_elbo_per_cell": float(elbo_cells.mean()),
        "heldout_log_px_iw100_per_cell": float(mll_cells.mean()),
        "heldout_reconstruction_per_cell": float(rec_cells.mean()),
        # own, MC-averaged over n_mc posterior samples (see README)
        "heldout_elbo_mc100_per_cell": float((logpx_te - kl_te.sum(1)).mean()),
        "heldout_reconstruction_mc100_per_cell": float(logpx_te.mean()),
        "heldout_kl_per_cell": float(kl_te.sum(1).mean()),
        "train_elbo_mc100_per_cell": float((logpx_tr - kl_tr.sum(1)).mean()),
        "train_log_px_iw100_per_cell": None,
        "kl_per_dim": kl_per_dim.tolist(),
        "active_units": int((au_var > 0.01).sum()),
        "active_units_var_per_dim": au_var.tolist(),
        "active_units_all_cells": int((au_var_all > 0.01).sum()),
        "knn15_accuracy": knn["mean_over_folds"] if knn else None,
        "knn15": knn,
        "last_epoch_train_history": last,
        "scvi_version": scvi.__version__,
        "torch_version": torch.__version__,
        "threads": args.threads,
        "device": "cpu",
        "command": "python " + " ".join(shlex.quote(a) for a in
                                         [os.path.relpath(__file__, Path.cwd())] + sys.argv[1:]),
    }
    torch.manual_seed(6)
    out["train_log_px_iw100_per_cell"] = float(
        model.get_marginal_ll(adata_train, n_mc_samples=args.n_mc, return_mean=False).mean())

    name = f"{dataset}_{args.likelihood}" + (f"_{args.batch_key}" if args.batch_key else "")
    path = args.out or HERE / f"{name}_scvi.json"
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    brief = {k: out[k] for k in ("dataset", "likelihood", "batch_key", "epochs", "seconds_train",
                                 "heldout_elbo_per_cell", "heldout_elbo_mc100_per_cell",
                                 "heldout_log_px_iw100_per_cell",
                                 "heldout_reconstruction_per_cell", "active_units",
                                 "knn15_accuracy")}
    print(json.dumps(brief, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
