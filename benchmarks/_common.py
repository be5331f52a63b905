"""Shared helpers for the benchmark scripts: running `ganaug train`, writing tables."""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = str(ROOT.parent / "shared" / "data")   # the team's offline torchvision root
OUT_HELP = ("folder for the results' JSON and CSV (default: benchmarks/results, where the "
            "committed results are: a run replaces its own files there; name another folder "
            "to keep them)")


def load_or_skip(name: str, root: str, skipped: list[str]):
    """(train, test) of dataset ``name``, or None after noting in ``skipped`` (and on
    stderr) that its files are missing."""
    from ganaug.data import DataNotFoundError, load_dataset

    try:
        return load_dataset(name, root)
    except DataNotFoundError as e:
        skipped.append(f"{name}: {e}")
        print(f"skipping {name}: {e}", file=sys.stderr)
        return None


def stop_if_all_skipped(rows: list, skipped: list[str]) -> None:
    """Exit with one error line (status 1, nothing written) when every dataset was skipped
    for its missing files, so nothing was measured."""
    if not rows and skipped:
        raise SystemExit(f"error: nothing was measured: every dataset was skipped, its files "
                         f"missing ({', '.join(s.split(': ')[0] for s in skipped)}; see above)")


def parse_list(p, text: str, flag: str, kind: type = int, *, empty_ok: bool = False) -> list:
    """The comma-separated values of ``flag`` (``kind``: int, float or str), or ``p.error``
    (exit 2, before any work) for no value (unless ``empty_ok``), a value that is not a
    ``kind``, or a value given twice: a repeated seed, weight or share would train a second
    run into the first one's folder or count one run twice in a mean (3 and 3.0 are one
    float)."""
    items = [s.strip() for s in text.split(",")] if text.strip() else []
    try:
        values = [kind(s) for s in items]
        if kind is str and not all(items):
            raise ValueError
    except ValueError:
        what = {int: "whole numbers", float: "numbers"}.get(kind, "names")
        p.error(f"{flag} takes comma-separated {what}, got {text!r}")
    if not values and not empty_ok:
        p.error(f"{flag} needs at least one value, got {text!r}")
    twice = dict.fromkeys(f"{v:g}" if kind is float else str(v)
                          for i, v in enumerate(values) if v in values[:i])
    if twice:
        p.error(f"{flag} gives {', '.join(twice)} more than once (got {text!r}); give each "
                f"value once")
    return values


def gan_options(p, text: str, owned: dict[str, str], configs: list[dict]) -> dict:
    """``--gan-options`` (JSON of extra TrainConfig fields for a benchmark's GANs), or
    ``p.error`` before any work when it is no JSON object, sets a field in ``owned``
    ({field: why the script sets it}), or makes a config TrainConfig refuses: an unknown
    field or a bad value, with each of ``configs`` (the fields the script sets)."""
    from ganaug import TrainConfig

    try:
        options = json.loads(text)
    except json.JSONDecodeError as e:
        options = e
    if not isinstance(options, dict):
        p.error(f"--gan-options takes a JSON object of TrainConfig fields, e.g. "
                f"'{{\"mode_seeking\": 1}}', got {text!r}")
    clash = [k for k in owned if k in options]
    if clash:
        p.error("--gan-options cannot set " + "; ".join(f"{k} ({owned[k]})" for k in clash))
    for fields in configs:
        try:
            TrainConfig(**fields, **options).resolved()
        except (TypeError, ValueError) as e:
            p.error(f"--gan-options {text}: {e} (it takes fields of ganaug.TrainConfig)")
    return options


def check_args(p, *, datasets: str | None = None, unit: dict | None = None,
               gate: float | None = None, positive: dict | None = None) -> None:
    """``p.error`` (exit 2, before any work) for an unknown or repeated dataset name, a
    share outside its interval, a quality gate outside (0, 1] or a count below 1.
    ``unit``: {flag: (values, closed_hi)}, each value in [0, 1) or, with ``closed_hi``,
    [0, 1]; ``positive``: {flag: value} (None: not given)."""
    from ganaug.data.sources import check_dataset_name

    for name in parse_list(p, datasets, "--datasets", str) if datasets is not None else []:
        try:
            check_dataset_name(name)
        except ValueError as e:
            p.error(f"--datasets: {e}")
    for flag, v in (positive or {}).items():
        if v is not None and v < 1:
            p.error(f"{flag} must be at least 1, got {v}")
    for flag, (values, closed) in (unit or {}).items():
        for v in values:
            if not (0 <= v <= 1 if closed else 0 <= v < 1):
                p.error(f"{flag} takes shares in [0, 1{']' if closed else ')'}, got {v:g}")
    if gate is not None and not 0 < gate <= 1:
        p.error(f"--gate takes a confidence in (0, 1] (0: off), got {gate:g}")


def gate_failed(e: ValueError) -> bool:
    """Whether SyntheticMix's error is its quality gate failing to fill a class (which a
    benchmark answers by going without the gate), not bad input."""
    return str(e).startswith("quality gate")


def machine() -> dict:
    """Where a benchmark ran. Before 2026-12-06 only ``processor`` (``x86_64``) said which
    CPU; ``cpu`` and ``cpu_capability`` tell hosts apart, and ``omp_num_threads`` is the
    thread setting the runs inherited (None: torch's default, one per core)."""
    from ganaug.experiment import host
    h = host()
    return {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "cpu": h["cpu"], "cpu_capability": h["cpu_capability"],
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d")}


def ganaug_env(threads: int | None = None) -> dict:
    """The environment of a ``python -m ganaug`` child: this checkout first on the path, and
    ``threads`` OpenMP threads when given."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def extra_train_flags(p, extra: list[str], owned: dict[str, str]) -> None:
    """Stop (``p.error``, exit 2) before any work when ``extra``, `ganaug train` flags for
    every run of a benchmark, is no valid `ganaug train` command line, or sets a setting in
    ``owned`` (argparse names, e.g. ``labels_per_class``; why the script owns it as the
    value), however it is spelled: ``--labels-per 3``, ``--data-seed=2`` or through
    ``--recipe``, which ``owned`` should name when a recipe could change what it owns."""
    from ganaug.cli_args import _parser

    def given(argv):
        try:
            return vars(_parser().parse_args(["train", *argv]))
        except SystemExit:                # argparse has printed ganaug's own message
            p.error(f"--extra {' '.join(extra)!r} is not a `ganaug train` command line "
                    f"(ganaug's message above)")
    base, ours = given([]), given(extra)
    clash = [k for k in owned if k in ours and (k not in base or ours[k] != base[k])]
    if clash:
        p.error("--extra cannot change " + "; ".join(
            f"--{k.replace('_', '-')} ({owned[k]})" for k in clash))


def check_train_configs(p, runs: dict[str, list[str]]) -> None:
    """Stop (``p.error``, exit 2) before any work when one of ``runs`` (a label, e.g. the
    objective, -> its `ganaug train` flags) is a configuration `ganaug train` would refuse
    (an option the objective ignores, say), naming the run: the check `ganaug train`
    makes before it trains, made for every run at once instead of when its turn comes."""
    from ganaug import TrainConfig
    from ganaug.cli_args import _SWITCHES, _TRAIN_FLAGS, _parser

    for label, argv in runs.items():
        args = _parser().parse_args(["train", *argv])
        given = {k: v for k, v in vars(args).items() if k in _TRAIN_FLAGS or k in _SWITCHES}
        if getattr(args, "net_option", None):
            given["net_options"] = {**given.get("net_options", {}), **args.net_option}
        try:
            TrainConfig(**given).resolved()
        except ValueError as e:
            p.error(f"{label}: ganaug train {' '.join(argv)} would be refused: {e}")


def add_run_flags(p, what: str) -> None:
    """The flags of a benchmark that trains runs in child processes and measures each in
    another: ``--jobs`` (``what`` side by side), ``--extra``, ``--out``, ``--table`` and the
    child's hidden ``--evaluate``."""
    import argparse

    p.add_argument("--jobs", type=int, default=1, help=f"{what} side by side (one thread "
                                                        f"each if > 1)")
    p.add_argument("--extra", default="",
                   help="extra `ganaug train` flags, space-separated; write them with '=' "
                        "(--extra='--epochs 30')")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help=OUT_HELP)
    p.add_argument("--table", nargs="+", default=None, metavar="JSON",
                   help="print the tables of these results files (their rows together) and "
                        "stop: no training")
    p.add_argument("--evaluate", default=None, help=argparse.SUPPRESS)   # the child's mode


def run_train(args: list[str], out: Path, threads: int | None = None) -> dict:
    """``python -m ganaug train ARGS --out OUT`` in a fresh process; summary + wall time."""
    env = ganaug_env(threads)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "ganaug", "train", *args, "--out", str(out),
                        "--quiet"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"ganaug train {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {**summary, "wall_seconds": round(wall, 2)}


def mean_std(values: list[float]) -> tuple[float, float]:
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{m:.4f} ± {s:.4f}"


def print_table(title: str, columns: list[str], lines: list[list[str]]) -> None:
    """A titled markdown table: one header row, a separator, one row per ``lines`` entry."""
    print(title)
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for cells in lines:
        print("| " + " | ".join(cells) + " |")


def write_outputs(rows: list[dict], out: Path, name: str, meta: dict) -> None:
    """``out/NAME.json`` (meta and rows) and ``out/NAME.csv`` (the rows' scalar columns),
    each written to a temporary file and renamed into place."""
    from ganaug._io import atomic_write_json, atomic_write_text

    if not rows:
        raise ValueError(f"no rows to write to {out / name}.json; nothing was measured")
    out.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in rows for k in r if not isinstance(r[k], (list, dict))})
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_json(out / f"{name}.json", {"meta": meta, "rows": rows})
    atomic_write_text(out / f"{name}.csv", buf.getvalue())
