"""Run folders: whether a run may start or resume in one, before any work.

A run folder holds one run of ``ganaug train`` (its checkpoint, ``config.json``, metrics and
``summary.json``) or, with ``--seeds``, one ``seed-N`` run folder per seed and their
aggregate ``summary.json``; never both. A checkpoint records its configuration and a
fingerprint of its data, and a resume must match both.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Sequence

from torch import Tensor

from ._io import CHECKPOINT, CheckpointError, safe_torch_load
from .config import TrainConfig
from .data import ImageSet
from .objectives import LOGIT_CRITIC, get_objective

SUMMARY = "summary.json"       # written by experiment.fit (a multi-seed folder: fit_seeds)
BEST = "best.pt"        # the model of the epoch with the best validation accuracy
EVAL = "eval.json"
EVAL_BEST = "eval-best.json"   # ganaug eval --best: the metrics of best.pt
_SEED_DIR = re.compile(r"seed-(-?[0-9]+)")   # experiment.seed_dir's run folders


# what a run's checkpoint holds: evaluating needs the first four, --resume every one
RUN_KEYS = ("config", "model", "state", "epoch", "step", "history", "train_seconds", "opt_d",
            "opt_g")


def check_run_keys(ckpt: dict, path: str | Path, keys: Sequence[str]) -> None:
    """CheckpointError naming the ``keys`` a run's checkpoint lacks (a damaged or edited
    file), before anything reads them."""
    missing = [k for k in keys if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(map(repr, missing))}: it was "
                              f"edited or written by another program; restore a good copy, or "
                              f"delete the run folder to train the run afresh")


def checkpoint_config(ckpt: dict, path: str | Path) -> TrainConfig:
    """The configuration a run's checkpoint (``path``, loaded as ``ckpt``) was trained with;
    CheckpointError for a model file without one (``CLSGAN.save``'s)."""
    if not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"{path} holds a model without the configuration it was trained "
                              f"with (a file of CLSGAN.save, not a run of `ganaug train`): "
                              f"`ganaug sample --run {path}`, CLSGAN.load and SyntheticMix read "
                              f"it; evaluating a run and --resume need a run folder of "
                              f"`ganaug train`")
    return TrainConfig.from_dict(ckpt["config"])


def _load_resume(out: Path, cfg: TrainConfig) -> dict:
    ckpt = safe_torch_load(out / CHECKPOINT)
    saved = checkpoint_config(ckpt, out / CHECKPOINT)
    check_run_keys(ckpt, out / CHECKPOINT, RUN_KEYS)
    diff = cfg.diff(saved)
    if diff:
        detail = ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(cfg, k)!r}" for k in diff)
        raise ValueError(f"cannot resume {out}: the configuration differs ({detail}); use the "
                         f"run's own settings or start a new run with another --out")
    if get_objective(saved.objective).logit_critic and \
            ckpt.get("unconditional_critic") != LOGIT_CRITIC:
        raise ValueError(f"cannot resume {out}: it was trained by an earlier ganaug, whose "
                         f"{saved.objective!r} critic compared softplus(-logsumexp a), a loss "
                         f"that saturates; this one compares -logsumexp a, and a resume would "
                         f"change the loss mid-run: start a new run with another --out (or "
                         f"delete {out})")
    done = int(ckpt["epoch"])
    if done > cfg.epochs:
        raise ValueError(f"cannot resume {out} for {cfg.epochs} epochs: it has trained {done} "
                         f"already; pass --epochs {done} or more (its metrics.jsonl holds every "
                         f"epoch's test accuracy)")
    return ckpt


def data_fingerprint(labeled: ImageSet, unlabeled: ImageSet | None = None,
                     test: ImageSet | None = None, val: ImageSet | None = None) -> dict:
    """What a run's checkpoint records of its data, so that a resume on other data (another
    --data-root, another image folder) is refused: the split sizes, and hashes of the labeled
    images and of their labels, and of the validation images and labels (``val``, what
    ``best.pt`` is chosen by; 0 validation images when there are none). Plain ints and
    strings (``weights_only`` loads them)."""
    def digest(t: Tensor) -> str:
        return hashlib.sha256(t.detach().cpu().contiguous().numpy()).hexdigest()[:16]

    fp = {"labeled": len(labeled), "unlabeled": len(unlabeled) if unlabeled is not None else 0,
          "labeled_targets": digest(labeled.targets), "labeled_images": digest(labeled.images),
          "val": len(val) if val is not None else 0}
    if val is not None:
        fp["val_data"] = digest(val.images) + digest(val.targets)
    if test is not None:
        fp["test"] = len(test)
    return fp


def check_same_data(out: str | Path | None, ckpt: dict | None, fingerprint: dict,
                    action: str = "resume", dataset: str | None = None) -> None:
    """ValueError when the checkpoint to resume (``ckpt``, None for a new run; or to
    evaluate, ``action="evaluate"``) was trained on other data than ``fingerprint``
    describes; a checkpoint saved before fingerprints were recorded is not checked.
    ``dataset``: the run's configured dataset, for the evaluation's advice."""
    saved = ckpt.get("data") if ckpt is not None else None
    if not isinstance(saved, dict):
        return
    differ = [k for k in fingerprint if k in saved and saved[k] != fingerprint[k]]
    if not differ:
        return
    sizes = [f"{'validation' if k == 'val' else k} images {saved[k]} -> {fingerprint[k]}"
             for k in ("labeled", "unlabeled", "test", "val") if k in differ]
    detail = ", ".join(sizes) or ("the labels of the labeled images differ"
                                  if "labeled_targets" in differ else "the labeled images differ"
                                  if "labeled_images" in differ else
                                  "the validation images or their labels differ")
    if action == "evaluate":            # its test split would hold images it trained on
        fix = ("its config names digits, which cannot differ, so ganaug.train() trained it on "
               "data of your own, which ganaug cannot reload: evaluate it in Python, with "
               "ganaug.evaluate(CLSGAN.load(RUN), test_set)" if dataset == "digits" else
               "point --data-root (data_root=) at the run's own data (for an image folder: the "
               "folder as it was when the run trained)")
        raise ValueError(f"cannot evaluate {out}: this is not the data it trained on "
                         f"({detail}), so its test split would not be the run's own; {fix}")
    fix = ("pass the run's own validation images (val=)" if set(differ) <= {"val", "val_data"}
           else "point --data-root (or --dataset folder:PATH) at the run's own data")
    raise ValueError(f"cannot resume {out}: this is not the data it trained on ({detail}); "
                     f"{fix}, or start a new run with another --out")


def seed_folders(out: Path) -> list[int]:
    """The seeds of the ``seed-N`` run folders in ``out`` (a multi-seed folder), sorted."""
    try:
        names = [p.name for p in out.iterdir() if p.is_dir()]
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(_SEED_DIR.fullmatch, names) if m)


def _summary_kind(out: Path) -> str | None:
    """``"seeds"`` when ``out/summary.json`` is fit_seeds' aggregate, ``"run"`` for a single
    run's, None when there is none (or it cannot be read)."""
    try:
        s = json.loads((out / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(s, dict):
        return None
    return "seeds" if "runs" in s and "seeds" in s else "run"


def check_run_kind(out: str | Path, seeds: bool) -> None:
    """ValueError, before any work, when ``out`` cannot take the run asked for: a file (or a
    path under one), or a folder holding the other kind of run: a multi-seed run (``--seeds``:
    ``seed-N`` run folders and their aggregate ``summary.json``) when ``seeds`` is False, a
    single run (its checkpoint or summary) when it is True."""
    out = Path(out)
    for p in (out, *out.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                where = "is a file" if p == out else f"is under {p}, a file"
                raise ValueError(f"--out {out} {where}: name a folder for the run (a new one, "
                                 f"or the run to resume)")
            break
    if seeds:
        if (out / CHECKPOINT).exists() or _summary_kind(out) == "run":
            raise ValueError(f"{out} holds a single run (without --seeds): drop --seeds (with "
                             f"--resume to continue it) or choose another --out")
        return
    found = seed_folders(out)
    if found or _summary_kind(out) == "seeds":
        try:
            found = found or [int(v) for v in json.loads((out / SUMMARY).read_text())["seeds"]]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        flag = f"--seeds {','.join(map(str, found))}" if found else "--seeds S,S,..."
        raise ValueError(f"{out} holds a multi-seed run (one seed-N folder per seed and their "
                         f"summary): pass {flag} (with --resume to continue it) or choose "
                         f"another --out")


def check_run_folder(out: str | Path | None, cfg: TrainConfig, resume: bool) -> dict | None:
    """Validate ``out`` against ``resume`` before any work; returns the checkpoint to resume."""
    if out is None:
        if resume:
            raise ValueError("--resume needs --out pointing at the run to resume")
        return None
    out = Path(out)
    check_run_kind(out, seeds=False)
    has = (out / CHECKPOINT).exists()
    if resume:
        if not has:
            raise ValueError(f"nothing to resume in {out}: it has no {CHECKPOINT}; drop --resume "
                             f"to start a new run there")
        return _load_resume(out, cfg)
    if has:
        raise ValueError(f"{out} already holds a run; pass --resume (resume=True in "
                         f"Python) to continue it or choose another --out (out=)")
    if earlier := earlier_run_files(out):
        raise ValueError(f"{out} holds files of an earlier run but no {CHECKPOINT} "
                         f"({', '.join(earlier)}): a new run there would leave them beside its "
                         f"own (`ganaug eval --best` would read the old {BEST}); delete them, or "
                         f"the folder, or choose another --out (out=)")
    return None


def earlier_run_files(out: Path, shown: int = 4) -> list[str]:
    """Files that only a run which trained an epoch or more writes (its best model, summary,
    evaluations, sample grids after the first epoch), in a folder without a checkpoint: a
    run's remains once its checkpoint was deleted. The first ``shown``, then how many more.
    A run stopped in its first epoch leaves none of them (its ``config.json`` and first
    grid are rewritten by the next)."""
    found = [n for n in (BEST, SUMMARY, EVAL, EVAL_BEST) if (out / n).exists()]
    found += sorted(f"samples/{p.name}" for p in (out / "samples").glob("epoch_*.png")
                    if p.name != "epoch_0001.png")
    return found[:shown] + ([f"{len(found) - shown} more"] if len(found) > shown else [])
