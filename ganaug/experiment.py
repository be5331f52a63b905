"""fit(): the whole job behind ``ganaug train``: data -> split -> model -> train -> summary.

Everything is validated before data is loaded or any file is written.
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import torch

from ._io import atomic_torch_save, atomic_write_json, safe_torch_load
from .config import TrainConfig
from .data import ImageSet, load_dataset, split_labeled
from .metrics import classification_metrics
from .model import CLSGAN
from .train import CHECKPOINT, _derive_seed, check_run_folder, save_grid, train

SUMMARY = "summary.json"


def default_run_dir(cfg: TrainConfig, root: str | Path = "runs") -> Path:
    """``runs/YYYYmmdd-HHMMSS-<dataset>-<objective>``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.dataset.replace("folder:", "folder-"))[-40:]
    return Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{cfg.objective}"


def load_data(cfg: TrainConfig) -> tuple[ImageSet, ImageSet | None, ImageSet]:
    """(labeled, unlabeled, test) for a resolved config."""
    train_set, test_set = load_dataset(cfg.dataset, cfg.data_root, cfg.download, cfg.image_size)
    labeled, unlabeled = split_labeled(train_set, cfg.labels_per_class, cfg.data_seed)
    return labeled, unlabeled, test_set


def build_model(cfg: TrainConfig, data: ImageSet) -> CLSGAN:
    """The model for ``data``, its initial weights a function of ``cfg.seed``."""
    torch.manual_seed(_derive_seed(cfg.seed, 99))
    opts = {"noise_dim": cfg.noise_dim, **cfg.net_options}
    return CLSGAN(data.image_shape, data.num_classes, cfg.arch, data.classes, **opts)


def evaluate(model: CLSGAN, test: ImageSet) -> dict:
    """Metrics of the model's own classifier (argmin_y L(x, y), EMA weights) on ``test``."""
    pred = model.predict(test.images).cpu()
    return classification_metrics(test.targets.numpy(), pred.numpy(), model.num_classes)


def fit(config: TrainConfig | None = None, out: str | Path | None = None, resume: bool = False,
        progress: bool = True, log=None) -> dict:
    """Train per ``config``, write the run folder ``out`` and return its summary.

    The run folder gets ``config.json``, ``metrics.jsonl``, ``checkpoint.pt`` (every
    epoch), ``samples/epoch_NNNN.png``, ``samples.png`` and ``summary.json``.
    """
    cfg = (config or TrainConfig()).resolved()
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(out) if out is not None else default_run_dir(cfg)
    check_run_folder(out, cfg, resume)                        # fail before loading data
    labeled, unlabeled, test = load_data(cfg)
    model = build_model(cfg, labeled)
    log(f"ganaug: {cfg.objective} on {cfg.dataset}: {len(labeled)} labeled, "
        f"{len(unlabeled) if unlabeled is not None else 0} unlabeled, {len(test)} test images; "
        f"arch {model.arch}; run folder {out}")
    state = train(model, labeled, unlabeled, cfg, test=test, out=out, resume=resume,
                  progress=progress, log=log)
    m = evaluate(model, test)
    summary = {
        "test_accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"],
        "macro_f1": m["macro_f1"], "per_class_accuracy": m["per_class_accuracy"],
        "num_test": m["num_test"], "epochs": cfg.epochs,
        "train_seconds": round(state.train_seconds, 3), "objective": cfg.objective,
        "lipschitz": cfg.lipschitz, "dataset": cfg.dataset, "num_labeled": len(labeled),
        "num_unlabeled": len(unlabeled) if unlabeled is not None else 0,
        "seed": cfg.seed, "data_seed": cfg.data_seed, "arch": model.arch,
        "device": str(model.device), "torch": torch.__version__, "run": str(out),
    }
    atomic_write_json(out / SUMMARY, summary)
    return summary


def evaluate_run(run: str | Path, data_root: str | None = None) -> dict:
    """Reload a run folder's model and test split and compute its metrics."""
    run = Path(run)
    ckpt = safe_torch_load(run / CHECKPOINT)
    cfg = TrainConfig.from_dict(ckpt["config"])
    if data_root is not None:
        cfg.data_root = data_root
    model = CLSGAN.from_checkpoint(ckpt)
    _, test = load_dataset(cfg.dataset, cfg.data_root, False, cfg.image_size)
    return {**evaluate(model, test), "dataset": cfg.dataset, "epoch": int(ckpt["epoch"]),
            "classes": model.classes}


def sample_run(run: str | Path, per_class: int, out: str | Path, seed: int = 0) -> Path:
    """Write ``per_class`` samples of every class from a run's EMA generator to ``out``:
    a ``.png`` grid (one row per class) or a ``.pt`` dict {images in [-1, 1], labels}."""
    out = Path(out)
    if per_class <= 0:
        raise ValueError(f"--per-class must be positive, got {per_class}")
    if out.suffix not in (".png", ".pt"):
        raise ValueError(f"--out must end in .png (a grid) or .pt (tensors), got {out.name!r}")
    model = CLSGAN.load(run)
    images, labels = model.sample_per_class(per_class, seed)
    if out.suffix == ".png":
        save_grid(out, images, nrow=per_class)
    else:
        atomic_torch_save(out, {"images": images.cpu(), "labels": labels,
                                "classes": model.classes})
    return out
