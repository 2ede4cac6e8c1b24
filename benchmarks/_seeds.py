"""Repeat a benchmark over seeds and report mean +- std (shared by the accuracy benchmarks; not a benchmark itself).

Each benchmark defines ``run(seed) -> dict`` of figures for one seed; :func:`over_seeds` calls it for seeds
``0..n-1``, prints one row per seed and a mean/std row for the ``keys`` asked for, and returns a summary whose keys
keep the one-seed names for the mean and add ``NAME_std`` (sample std; 0 with one seed), ``NAME_seeds`` (the
per-seed values) and, for each paired effect, ``NAME_within_std`` (true when |mean| <= std: the effect is not
distinguishable from seed noise). :func:`versions` names the library versions a record must carry.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Iterable
from typing import Any


def add_seeds_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=None,
                        help="repeat over seeds 0..N-1 and report mean +- std (default 3 full, 1 --quick/--smoke)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="start at this seed (seeds K..K+N-1): a run split over machines or sessions")


def n_seeds(args: argparse.Namespace) -> int:
    """``--seeds`` if given, else 1 for ``--quick``/``--smoke`` and 3 for the full setting."""
    if getattr(args, "seeds", None):
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
        return args.seeds
    return 1 if getattr(args, "quick", False) or getattr(args, "smoke", False) else 3


def versions() -> dict[str, str | None]:
    """torch / onnxruntime / numpy versions (None where not installed)."""
    out: dict[str, str | None] = {}
    for name in ("torch", "onnxruntime", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: list[dict[str, Any]], keys: Iterable[str], effects: Iterable[str] = (),
              digits: int = 4) -> dict[str, Any]:
    """Mean under each key's own name, plus ``_std``, ``_seeds`` and (for ``effects``) ``_within_std``."""
    out: dict[str, Any] = {}
    effects = set(effects)
    for key in list(keys) + sorted(effects - set(keys)):
        values = [float(r[key]) for r in rows if r.get(key) is not None]
        if not values:
            out[key] = None
            continue
        mean, std = statistics.mean(values), _std(values)
        out[key] = round(mean, digits)
        out[f"{key}_std"] = round(std, digits)
        out[f"{key}_seeds"] = [round(v, digits) for v in values]
        if key in effects:
            out[f"{key}_within_std"] = bool(len(values) > 1 and abs(mean) <= std)
    return out


def over_seeds(n: int, run: Callable[[int], dict[str, Any]], keys: list[str], effects: Iterable[str] = (),
               digits: int = 4, first: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run ``run(seed)`` for seeds first..first+n-1; print per-seed rows and mean/std; return (rows, summary)."""
    effects = list(effects)
    shown = keys + [e for e in effects if e not in keys]
    rows = []
    for seed in range(first, first + n):
        rows.append(run(seed))
        cells = " ".join(f"{key}={_fmt(rows[-1].get(key))}" for key in shown)
        print(f"seed {seed}: {cells}", flush=True)
    summary = summarize(rows, keys, effects, digits)
    for key in shown:
        if summary.get(key) is not None:
            flag = "  (within one std: not distinguishable from seed noise)" if summary.get(f"{key}_within_std") else ""
            print(f"{key}: {summary[key]:.{digits}f} +- {summary[key + '_std']:.{digits}f} over {n} seed(s){flag}")
    summary["seeds"] = n
    summary["versions"] = versions()
    return rows, summary


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def seeded_result(args: argparse.Namespace, run: Callable[[int], dict[str, Any]], keys: list[str],
                  drops: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The JSON record of a seeded benchmark: ``run(seed)`` for ``n_seeds(args)`` seeds.

    ``drops`` names paired effects: ``{"acc_drop_points": ("acc_dense", "acc_pruned")}`` adds per seed
    ``100 * (dense - compressed)`` (points, the same seed's dense model against its compressed one). The record is
    seed 0's (settings, and figures equal on every seed) with the ``keys``, the drops and every other number that
    differs between seeds replaced by its mean, plus ``_std``/``_seeds``/``_within_std`` keys, ``seeds`` and
    ``versions``.
    """
    def with_drops(seed: int) -> dict[str, Any]:
        row = run(seed)
        for name, (dense, compressed) in drops.items():
            if row.get(dense) is not None and row.get(compressed) is not None:
                row[name] = round(100 * (row[dense] - row[compressed]), 4)
        return row

    rows, summary = over_seeds(n_seeds(args), with_drops, keys, effects=list(drops), first=args.first_seed)
    return {**rows[0], **summarize(rows, varying_numbers(rows, exclude=summary)), **summary}


def varying_numbers(rows: list[dict[str, Any]], exclude: Iterable[str] = ()) -> list[str]:
    """Top-level numeric figures that differ between seeds, besides ``exclude``: averaged too, so that no record
    shows seed 0's value of a figure that varies (e.g. a baseline row the headline keys do not name)."""
    exclude = set(exclude)
    out = []
    for key in rows[0]:
        values = [row.get(key) for row in rows]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if key not in exclude and numeric and len(set(values)) > 1:
            out.append(key)
    return out
