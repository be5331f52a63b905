"""Shared helpers for the benchmark scripts: running `ganaug train`, writing tables."""
from __future__ import annotations

import csv
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


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d")}


def ganaug_env(threads: int | None = None) -> dict:
    """The environment of a ``python -m ganaug`` child: this checkout first on the path, and
    ``threads`` OpenMP threads when given."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


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
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    keys = sorted({k for r in rows for k in r if not isinstance(r[k], (list, dict))})
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
