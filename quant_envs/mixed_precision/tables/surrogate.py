"""Surrogate tables: a policy's score predicted by a model fitted to live evaluations, where the
policy grid is too large to retrain every policy.

A policy is a vector of width indices (one per unit, into ``bits``), as in an exhaustive table.
Two families are fitted and compared on held-out evaluations (:func:`fidelity`):

* **pairwise** (:func:`fit_pairwise`): ``f = c + sum_l u[l, k_l] + sum_(l,m) v[p, k_l, k_m]``
  over one-hot per-unit terms and pair terms (adjacent units or all pairs), fitted by ridge
  regression in closed form, its penalty chosen by k-fold cross-validation; ``score = f`` or,
  with ``link="logit"``, ``score = sigmoid(f)`` (``f`` fitted to the accuracy's logit: the
  additive terms then model the error's odds, which saturate near the float accuracy as the
  accuracy does; a monotone link, so the optimum of ``f`` is the optimum of the score). The model is its
  coefficients: a policy's score is a sum of ``L + P`` looked-up numbers (microseconds), and
  its optimum under an additive budget is an integer program (:mod:`.surrogate_optimum`).
* **trees** (:func:`fit_trees`): gradient-boosted trees (LightGBM, the optional ``surrogate``
  extra; fitting only) on the per-unit widths. Shipped as their predictions over the whole grid
  (:meth:`SurrogateTable.from_grid`) where the grid can be enumerated, so loading never needs
  LightGBM.

A :class:`SurrogateTable` serves scores by look-up and carries what a user must know to trust
them: the training set's digest, the fidelity figures on held-out evaluations, the command that
refits it and the numerics the training data was made with. Saved as ``.npz`` (atomically) with
its meta as JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import linalg, sparse, stats

from quant_envs.atomic_io import atomic_path

#: Families :func:`fit_surrogate` knows.
FAMILIES = ("pairwise", "trees")
#: Pair structures of the pairwise family.
PAIR_MODES = ("adjacent", "all", "none")
#: Links of the pairwise family: the score as a monotone function of the fitted sum.
LINKS = ("identity", "logit")
#: Accuracies are clipped to [LOGIT_EPS, 1 - LOGIT_EPS] before the logit.
LOGIT_EPS = 1e-4


def link_forward(link: str, y: np.ndarray) -> np.ndarray:
    """The fitted target of score ``y`` under ``link`` (:data:`LINKS`)."""
    if link == "identity":
        return np.asarray(y, dtype=float)
    if link == "logit":
        p = np.clip(np.asarray(y, dtype=float), LOGIT_EPS, 1 - LOGIT_EPS)
        return np.log(p / (1 - p))
    raise ValueError(f"link={link!r} is not allowed; expected one of {list(LINKS)}")


def link_inverse(link: str, f: np.ndarray | float) -> np.ndarray:
    """The score of fitted sum ``f`` under ``link`` (increasing in ``f``)."""
    if link == "identity":
        return np.asarray(f, dtype=float)
    if link == "logit":
        return 1.0 / (1.0 + np.exp(-np.asarray(f, dtype=float)))
    raise ValueError(f"link={link!r} is not allowed; expected one of {list(LINKS)}")


def policy_pairs(num_units: int, mode: str) -> np.ndarray:
    """``[P, 2]`` unit pairs ``(l, m)``, ``l < m``, of a pair structure (:data:`PAIR_MODES`)."""
    if mode == "adjacent":
        return np.array([(i, i + 1) for i in range(num_units - 1)], dtype=int).reshape(-1, 2)
    if mode == "all":
        return np.array(list(itertools.combinations(range(num_units), 2)), dtype=int).reshape(-1, 2)
    if mode == "none":
        return np.zeros((0, 2), dtype=int)
    raise ValueError(f"pairs={mode!r} is not allowed; expected one of {list(PAIR_MODES)}")


def training_digest(idx: np.ndarray, y: np.ndarray) -> str:
    """16 hex digits of a SHA-256 over a training set (width indices and scores)."""
    h = hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class SurrogateTable:
    """A scoring function over the policy grid ``len(bits) ** num_units``.

    ``kind`` "pairwise": ``link^-1(intercept + sum unary[l, k_l] + sum pair_terms[p, k_a, k_b])``
    over ``pairs``; ``kind`` "grid": ``grid`` holds every policy's score (row-major, as an exhaustive
    table). ``meta``: training digest and size, fidelity, refit command, numerics, family."""

    name: str
    bits: tuple[int, ...]
    num_units: int
    kind: str
    intercept: float = 0.0
    unary: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=int))
    pair_terms: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    grid: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    link: str = "identity"  # pairwise only: the score is link^-1 of the sum (LINKS)

    def __post_init__(self) -> None:
        nb, n = len(self.bits), self.num_units
        if self.link not in LINKS or (self.kind != "pairwise" and self.link != "identity"):
            raise ValueError(f"link={self.link!r} is not allowed; expected one of {list(LINKS)} (pairwise models only)")
        if self.kind == "pairwise":
            if self.unary.shape != (n, nb) or self.pair_terms.shape != (len(self.pairs), nb, nb):
                raise ValueError(f"surrogate {self.name!r}: unary must be {(n, nb)} and pair_terms "
                                 f"{(len(self.pairs), nb, nb)}, got {self.unary.shape}, {self.pair_terms.shape}")
        elif self.kind == "grid":
            if self.grid is None or self.grid.shape != (nb,) * n:
                raise ValueError(f"surrogate {self.name!r}: grid must have shape {(nb,) * n}")
            if "grid_quantization" not in self.meta:  # put on its saved steps now, so saving keeps the digest
                lo, step, q = quantize_grid(self.grid.reshape(-1))
                object.__setattr__(self, "grid", dequantize_grid(lo, step, q).reshape(self.grid.shape))
                object.__setattr__(self, "meta", {**self.meta, "grid_quantization": {
                    "lo": lo, "step": step, "levels": GRID_LEVELS}})
        else:
            raise ValueError(f"kind={self.kind!r} is not allowed; expected one of ['pairwise', 'grid']")

    @classmethod
    def from_grid(cls, name: str, bits: tuple[int, ...], num_units: int,
                  predict: Callable[[np.ndarray], np.ndarray], meta: dict[str, Any] | None = None,
                  chunk: int = 1 << 20) -> SurrogateTable:
        """A model's predictions over the whole grid (a tree ensemble shipped without its library),
        rounded to :data:`GRID_LEVELS` steps between their least and greatest value, as saved (by
        the constructor)."""
        size = len(bits) ** num_units
        out = np.empty(size, dtype=np.float64)
        for s, idx in iter_grid(len(bits), num_units, chunk):
            out[s:s + len(idx)] = predict(idx)
        return cls(name=name, bits=tuple(bits), num_units=num_units, kind="grid",
                   grid=out.reshape((len(bits),) * num_units), meta=dict(meta or {}))

    def negated(self) -> SurrogateTable:
        """The same model with its ranking reversed: ``-score`` (a grid, or an identity link), or the
        fitted sum negated under the link; either way its optimum is this model's worst policy."""
        if self.kind == "grid":
            assert self.grid is not None
            q = self.meta["grid_quantization"]  # the same steps counted down from the top (exact negation)
            top = float(q["lo"]) + (GRID_LEVELS - 1) * float(q["step"])
            return dataclasses.replace(self, grid=-self.grid, meta={**self.meta, "grid_quantization": {
                **q, "lo": -top}})
        return dataclasses.replace(self, intercept=-self.intercept, unary=-self.unary, pair_terms=-self.pair_terms)

    def flat_scores(self, chunk: int = 1 << 20) -> np.ndarray:
        """Every policy's score, row-major over the grid (as an exhaustive table's ``score``)."""
        if self.kind == "grid":
            assert self.grid is not None
            return self.grid.reshape(-1).astype(float)
        out = np.empty(len(self.bits) ** self.num_units)
        for s, idx in iter_grid(len(self.bits), self.num_units, chunk):
            out[s:s + len(idx)] = self.scores(idx)
        return out

    def scores(self, idx: np.ndarray) -> np.ndarray:
        """Scores of width-index vectors ``idx`` (``[..., units]``)."""
        idx = np.asarray(idx)
        if self.kind == "grid":
            assert self.grid is not None
            flat = np.ravel_multi_index(tuple(np.moveaxis(idx, -1, 0)), self.grid.shape)
            return self.grid.reshape(-1)[flat].astype(float)
        out = self.intercept + self.unary[np.arange(self.num_units), idx].sum(axis=-1)
        for p, (a, b) in enumerate(self.pairs):
            out = out + self.pair_terms[p, idx[..., a], idx[..., b]]
        return link_inverse(self.link, out)

    def score(self, idx: np.ndarray) -> float:
        """The score of one policy (a sum of ``units + pairs`` looked-up numbers)."""
        idx = np.asarray(idx)
        if self.kind == "grid":
            assert self.grid is not None
            return float(self.grid[tuple(idx)])
        s = self.intercept + float(self.unary[np.arange(self.num_units), idx].sum())
        s += float(self.pair_terms[np.arange(len(self.pairs)), idx[self.pairs[:, 0]], idx[self.pairs[:, 1]]].sum())
        return float(link_inverse(self.link, s))

    @property
    def digest(self) -> str:
        """16 hex digits of a SHA-256 over the scoring function's numbers: the surrogate's version."""
        head = [list(self.bits), self.num_units, self.kind] + ([self.link] if self.link != "identity" else [])
        h = hashlib.sha256(json.dumps(head).encode())
        arrays = [self.grid] if self.kind == "grid" else [np.array([self.intercept]), self.unary, self.pairs,
                                                           self.pair_terms]
        for arr in arrays:
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]

    def arrays(self, prefix: str = "") -> dict[str, Any]:
        """The model as named arrays (a grid as :data:`GRID_LEVELS`-step integers), for ``.npz``."""
        head = {"name": self.name, "num_units": self.num_units, "kind": self.kind, "intercept": self.intercept,
                "link": self.link, **self.meta}
        arrays: dict[str, Any] = {"bits": np.asarray(self.bits), "meta": np.array(json.dumps(head))}
        if self.kind == "grid":
            assert self.grid is not None
            known = self.meta["grid_quantization"]  # set on construction: the saved grid is the one in memory
            lo, step = float(known["lo"]), float(known["step"])
            steps = np.rint((self.grid.reshape(-1).astype(np.float64) - lo) / step)
            q = steps.clip(0, GRID_LEVELS - 1).astype(np.uint16)
            if not np.array_equal(steps, q) or not np.array_equal(dequantize_grid(lo, step, q), self.grid.reshape(-1)):
                raise ValueError(f"surrogate {self.name!r}: its grid is not on its recorded steps "
                                 "(meta['grid_quantization']); it would not load back as it is")
            arrays.update(grid_q=q, grid_lo=np.float64(lo), grid_step=np.float64(step))
        else:
            arrays.update(unary=self.unary, pairs=self.pairs, pair_terms=self.pair_terms)
        return {prefix + k: v for k, v in arrays.items()}

    @classmethod
    def from_arrays(cls, z: Any, prefix: str = "") -> SurrogateTable:
        """A model from the arrays of :meth:`arrays` (``z``: an open ``.npz`` or a dict)."""
        meta = json.loads(str(z[prefix + "meta"]))
        head = {k: meta.pop(k) for k in ("name", "num_units", "kind", "intercept")}
        head["link"] = meta.pop("link", "identity")
        bits = tuple(int(b) for b in z[prefix + "bits"])
        arrays = {k: z[prefix + k] for k in ("unary", "pairs", "pair_terms") if prefix + k in z}
        if prefix + "grid_q" in z:
            flat = dequantize_grid(float(z[prefix + "grid_lo"]), float(z[prefix + "grid_step"]), z[prefix + "grid_q"])
            arrays["grid"] = flat.reshape((len(bits),) * int(head["num_units"]))
        elif prefix + "grid" in z:  # written before grids were stored as integers
            arrays["grid"] = z[prefix + "grid"]
        return cls(bits=bits, meta=meta, **head, **arrays)

    def save(self, path: str | os.PathLike[str]) -> Path:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **self.arrays())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SurrogateTable:
        with np.load(path, allow_pickle=False) as z:
            return cls.from_arrays(z)


#: Steps a grid's scores are rounded to between their least and greatest value: 2^16, stored as
#: uint16 (a third of float32's size compressed). Over accuracies between 0.3 and 1 a step is
#: 1.1e-5, i.e. 0.001 points: 200x below the retraining noise.
GRID_LEVELS = 1 << 16


def quantize_grid(values: np.ndarray) -> tuple[float, float, np.ndarray]:
    """``(lo, step, q)``: ``values`` as uint16 steps ``q`` of ``step`` above ``lo``."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    step = (hi - lo) / (GRID_LEVELS - 1) or 1.0
    return lo, step, np.rint((values - lo) / step).astype(np.uint16)


def dequantize_grid(lo: float, step: float, q: np.ndarray) -> np.ndarray:
    """The float32 scores of :func:`quantize_grid`'s integers (the model's scores in memory)."""
    return (lo + np.asarray(q, dtype=np.float64) * step).astype(np.float32)


def iter_grid(num_bits: int, num_units: int, chunk: int = 1 << 20) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, idx)`` over the row-major policy grid in chunks: ``idx`` is ``[<= chunk, units]``."""
    size = num_bits ** num_units
    for s in range(0, size, chunk):
        flat = np.arange(s, min(s + chunk, size))
        yield s, np.stack(np.unravel_index(flat, (num_bits,) * num_units), axis=-1)


# ------------------------------------------------------------------------------------ fitting
def _design(idx: np.ndarray, num_bits: int, pairs: np.ndarray) -> sparse.csr_array:
    """One-hot design matrix: ``units * bits`` unary columns, then ``bits^2`` per pair."""
    n, units = idx.shape
    cols = [idx[:, u] + u * num_bits for u in range(units)]
    off = units * num_bits
    for p, (a, b) in enumerate(pairs):
        cols.append(off + p * num_bits * num_bits + idx[:, a] * num_bits + idx[:, b])
    c = np.stack(cols, axis=1).reshape(-1)
    r = np.repeat(np.arange(n), len(cols))
    width = off + len(pairs) * num_bits * num_bits
    return sparse.csr_array((np.ones(len(c)), (r, c)), shape=(n, width))


def _ridge(gram: np.ndarray, rhs: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """Closed-form ridge ``(A'A + diag(penalty)) w = A'(y - mean)`` from ``A'A`` and ``A'(y - mean)``."""
    return linalg.solve(gram + np.diag(penalty), rhs, assume_a="pos")


def fit_pairwise(idx: np.ndarray, y: np.ndarray, bits: tuple[int, ...], pairs: str = "all",
                 alphas: tuple[float, ...] = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e3), folds: int = 5, seed: int = 0,
                 name: str = "surrogate", meta: dict[str, Any] | None = None, link: str = "identity") -> SurrogateTable:
    """Ridge regression on one-hot per-unit and pair terms, with one penalty for the per-unit terms
    and another for the pair terms (each from ``alphas``): the pair with the least ``folds``-fold
    cross-validated squared error. (Pair terms are many and small: with few evaluations they need
    a heavier penalty than the per-unit ones.) The intercept is the training mean. With
    ``link="logit"`` the sum is fitted to the scores' logits (:func:`link_forward`) and the
    cross-validation error is measured on them."""
    idx, raw = np.asarray(idx, dtype=int), np.asarray(y, dtype=float)
    y = link_forward(link, raw)
    nb, units = len(bits), idx.shape[1]
    pr = policy_pairs(units, pairs)
    a = _design(idx, nb, pr)
    off = units * nb
    is_pair = np.arange(a.shape[1]) >= off
    grid = [(au, ap) for au in alphas for ap in (alphas if len(pr) else alphas[:1])]
    fold = np.random.default_rng(seed).permutation(len(y)) % max(2, min(folds, len(y)))
    err = np.zeros(len(grid))
    for f in np.unique(fold):
        tr, te = fold != f, fold == f
        mean = float(y[tr].mean())
        gram, rhs = (a[tr].T @ a[tr]).toarray(), a[tr].T @ (y[tr] - mean)
        for g, (au, ap) in enumerate(grid):
            w = _ridge(gram, rhs, np.where(is_pair, ap, au))
            err[g] += float(((a[te] @ w + mean - y[te]) ** 2).sum())
    au, ap = grid[int(np.argmin(err))]
    mean = float(y.mean())
    w = _ridge((a.T @ a).toarray(), a.T @ (y - mean), np.where(is_pair, ap, au))
    return SurrogateTable(
        name=name, bits=tuple(bits), num_units=units, kind="pairwise", intercept=mean, link=link,
        unary=w[:off].reshape(units, nb), pairs=pr, pair_terms=w[off:].reshape(len(pr), nb, nb),
        meta={"family": "pairwise", "pairs": pairs, "ridge_alpha": {"unary": au, "pairs": ap},
              "cv_mse": float(err.min() / len(y)), "training_size": len(y),
              "training_sha256": training_digest(idx, raw), **(meta or {})})


def fit_trees(idx: np.ndarray, y: np.ndarray, bits: tuple[int, ...], seed: int = 0,
              num_trees: int = 600, learning_rate: float = 0.05, num_leaves: int = 15) -> Any:
    """A LightGBM regressor on the per-unit widths (needs the ``surrogate`` extra); returns a
    function from width indices ``[N, units]`` to predicted scores."""
    import lightgbm  # lazy: an optional extra, needed for fitting only

    bits_arr = np.asarray(bits, dtype=float)
    model = lightgbm.LGBMRegressor(n_estimators=num_trees, learning_rate=learning_rate, num_leaves=num_leaves,
                                   min_child_samples=max(2, min(20, len(y) // 50)), subsample=0.8, subsample_freq=1,
                                   colsample_bytree=1.0, random_state=seed, n_jobs=1, verbose=-1)
    model.fit(bits_arr[np.asarray(idx, dtype=int)], np.asarray(y, dtype=float))
    return lambda q: model.predict(bits_arr[np.asarray(q, dtype=int)])


# ----------------------------------------------------------------------------------- fidelity
def fidelity(y_true: np.ndarray, y_pred: np.ndarray, scale: float = 100.0) -> dict[str, float]:
    """Held-out figures: Kendall's tau, RMSE over all and over the top decile of ``y_true`` (in
    ``scale`` units: 100 gives accuracy points)."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    top = y_true >= np.quantile(y_true, 0.9)
    tau = stats.kendalltau(y_true, y_pred).statistic
    return {"kendall_tau": float(tau), "rmse": float(scale * np.sqrt(np.mean((y_true - y_pred) ** 2))),
            "top_decile_rmse": float(scale * np.sqrt(np.mean((y_true[top] - y_pred[top]) ** 2))),
            "held_out": int(len(y_true)), "top_decile": int(top.sum())}


# ---------------------------------------------------------------------------------- command line
def load_training_set(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A live set written by :mod:`~quant_envs.mixed_precision.tables.sample`: width indices,
    validation accuracy, held-out mask, bits and meta (numerics per chunk, command)."""
    with np.load(path, allow_pickle=False) as z:
        return {"idx": z["idx"].astype(int), "y": z["val_accuracy"].astype(float),
                "held_out": z["held_out"].astype(bool), "bits": tuple(int(b) for b in z["bits"]),
                "meta": json.loads(str(z["meta"]))}


def fit_surrogate(data: dict[str, Any], family: str, pairs: str = "all", seed: int = 0, name: str = "surrogate",
                  command: str = "", link: str = "identity") -> SurrogateTable:
    """Fit ``family`` (:data:`FAMILIES`) on the training part of ``data`` and record its fidelity on
    the held-out part, the training digest, the refit command and the data's numerics."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not allowed; expected one of {list(FAMILIES)}")
    idx, y, held, bits = data["idx"], data["y"], data["held_out"], data["bits"]
    src = data.get("meta", {})
    meta = {"refit_command": command, "training_sha256": training_digest(idx[~held], y[~held]),
            "training_size": int((~held).sum()), "held_out_size": int(held.sum()),
            "source": {k: src.get(k) for k in ("generator", "command", "task", "finetune_steps", "eval_seed", "task_seed",
                                               "float_sha256", "data_sha256", "numerics_status")},
            "numerics": {k: src.get(k) for k in ("torch", "cpu_capability", "cpu_model", "device")},
            "numerics_by_chunk": src.get("numerics_by_chunk"), "seed": seed}
    if family == "pairwise":
        model = fit_pairwise(idx[~held], y[~held], bits, pairs=pairs, seed=seed, name=name, meta=meta, link=link)
    else:
        predict = fit_trees(idx[~held], y[~held], bits, seed=seed)
        model = SurrogateTable.from_grid(name, bits, idx.shape[1], predict, meta={"family": "trees", **meta})
    if held.any():
        model.meta["fidelity"] = fidelity(y[held], model.scores(idx[held]))
    return model


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m quant_envs.mixed_precision.tables.surrogate",
                                     description="Fit a surrogate table to a live training set (tables.sample).")
    parser.add_argument("--samples", required=True, help="the .npz written by tables.sample")
    parser.add_argument("--family", choices=FAMILIES, default="pairwise")
    parser.add_argument("--pairs", choices=PAIR_MODES, default="all")
    parser.add_argument("--link", choices=LINKS, default="identity", help="the pairwise family's link")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="surrogate")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    command = " ".join(["python -m quant_envs.mixed_precision.tables.surrogate",
                        *(argv if argv is not None else sys.argv[1:])])
    model = fit_surrogate(load_training_set(args.samples), args.family, args.pairs, args.seed, args.name, command,
                          args.link)
    model.save(args.out)
    print(json.dumps({"out": args.out, "digest": model.digest, "fidelity": model.meta.get("fidelity")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
