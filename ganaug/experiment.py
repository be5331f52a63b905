"""fit(): the whole job behind ``ganaug train``: data -> split -> model -> train -> summary.

Everything is validated before data is loaded or any file is written.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from ._io import CheckpointError, atomic_torch_save, atomic_write_bytes, atomic_write_json, \
    run_checkpoint, run_lock, safe_torch_load
from .config import SEED_RANGE, TrainConfig, folder_path, resolve_config, \
    standing_stats_count
from .data import DataNotFoundError, ImageSet, load_dataset, split_with_validation
from .data.sources import DOWNLOAD_HINT
from .distributed import broadcast_object, rank_and_world
from .metrics import classification_metrics
from .model import CLSGAN, _positive, id_names, trains_generator
from .objectives import get_objective
from .nets import resolve_arch
from .runs import (BEST, EVAL, EVAL_BEST, RUN_KEYS, SUMMARY, check_run_folder, check_run_keys,
                   check_run_kind, check_same_data, checkpoint_config, data_fingerprint,
                   seed_folders)
from .step import Speed
from .train import CHECKPOINT, TIME_LIMIT, _derive_seed, _grid_inputs, best_record, \
    check_inputs, delete_stale_temps, pick_device, save_grid, train

RECIPE_COPY = "recipe.yaml"


def default_run_dir(cfg: TrainConfig, root: str | Path = "runs") -> Path:
    """``runs/YYYYmmdd-HHMMSS-<dataset>-<objective>``; ``folder-<name>`` for an image
    folder (the last part of its path)."""
    folder = folder_path(cfg.dataset)
    dataset = cfg.dataset if folder is None else f"folder-{Path(folder).name}"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)[-40:]
    return Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{cfg.objective}"


def claim_run_dir(cfg: TrainConfig, root: str | Path = "runs") -> Path:
    """Create and return a new, empty :func:`default_run_dir`; a name already taken (two
    runs started in the same second) gets ``-2``, ``-3``, ... (``mkdir`` is atomic, so
    concurrent runs never share a folder)."""
    base = default_run_dir(cfg, root)
    for i in itertools.count(1):
        path = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def host() -> dict:
    """What a run's numbers depend on besides its config and code: the CPU's model, the
    instruction set torch picked its CPU kernels for, torch's thread count and torch's
    version. The same seed on another CPU or with another thread count rounds floats in
    another order, so its losses drift apart within an epoch (a run of the default job's
    labels-only baseline: 0.8978 on the build machine's host of 2026-11-25, 0.8911 on that
    of 2026-12-06, with the same commit and torch)."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):                 # Linux; elsewhere the processor
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()
    return {"cpu": cpu, "cpu_capability": capability, "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def _load_once(cfg: TrainConfig) -> tuple[ImageSet, ImageSet]:
    """The training and test sets. With ``download`` under torchrun, rank 0 fetches what is
    missing while the others wait (torchvision writes its files in place: two processes
    downloading into one root would read each other's half-written files), then they read
    the files; rank 0's error, if any, is every rank's."""
    rank, world = rank_and_world()
    if not (cfg.download and world > 1):
        return load_dataset(cfg.dataset, cfg.data_root, cfg.download, cfg.image_size)
    got, error = None, None
    if rank == 0:
        try:
            got = load_dataset(cfg.dataset, cfg.data_root, True, cfg.image_size)
        except Exception as e:                 # every rank must reach the broadcast
            error = e
    shared = broadcast_object(None if error is None else
                              (type(error).__name__, str(error)), world)
    if error is not None:
        raise error
    if shared is not None:
        kind, message = shared
        raise (DataNotFoundError if kind == "DataNotFoundError" else ValueError)(
            f"rank 0 could not download the data ({kind}): {message}")
    return got if rank == 0 else load_dataset(cfg.dataset, cfg.data_root, False,
                                              cfg.image_size)


def load_data(cfg: TrainConfig
              ) -> tuple[ImageSet, ImageSet | None, ImageSet, ImageSet | None]:
    """(labeled, unlabeled, test, validation) for a resolved config; validation is None
    unless ``cfg.val_per_class``."""
    train_set, test_set = _load_once(cfg)
    labeled, unlabeled, val = split_with_validation(train_set, cfg.labels_per_class,
                                                    cfg.val_per_class, cfg.data_seed)
    return labeled, unlabeled, test_set, val


def objective_net_defaults(objective: str, arch: str) -> dict:
    """Network options whose default depends on the objective, over the builder's own.

    The MLP loss network's Gaussian noise layers (0.15 on the input, 0.3 after each hidden
    layer by default) are off for the semi-supervised CLS-GAN: on digits the default job
    without them had the better classifier and samples, no collapsed sampler in twelve seeds
    (three of twelve with them) and samples that helped a classifier mixed in. The
    objectives that train the loss network on the labels alone keep them: without them the
    conditional ones lost 6 to 28 points (benchmarks/README.md, "Every objective on the
    same networks")."""
    if arch == "mlp" and objective == "sscls":
        return {"input_noise": 0.0, "hidden_noise": 0.0}
    return {}


def build_model(cfg: TrainConfig, data: ImageSet, saved: dict | None = None) -> CLSGAN:
    """The model for ``data``, its initial weights a function of ``cfg.seed``. Options the
    config leaves unset come from ``saved``, a checkpoint's model spec (so a run resumes with
    the networks it trained even after a default changes), then from the objective's
    defaults (``objective_net_defaults``), then from the builder's. ``cfg`` is resolved
    first (``TrainConfig.resolved``): ``lipschitz="spectral-norm"`` builds spectrally
    normalised networks, as ``train`` needs."""
    cfg = resolve_config(cfg)
    torch.manual_seed(_derive_seed(cfg.seed, 99))
    opts = {"noise_dim": cfg.noise_dim,
            **objective_net_defaults(cfg.objective, resolve_arch(cfg.arch, data.image_shape)),
            **(saved or {}).get("net_options", {}), **cfg.net_options}
    model = CLSGAN(data.image_shape, data.num_classes, cfg.arch, data.classes, **opts)
    model.objective = cfg.objective
    return model


def evaluate(model: CLSGAN, test: ImageSet) -> dict:
    """Metrics of the model's own classifier (argmin_y L(x, y), EMA weights) on ``test``,
    an :class:`ImageSet` (images in [-1, 1] and their targets)."""
    if not isinstance(test, ImageSet):
        raise TypeError(f"evaluate takes an ImageSet (ganaug.ImageSet(images, targets, "
                        f"classes), images in [-1, 1]), got {type(test).__name__}")
    pred = model.predict(test.images).cpu()
    return classification_metrics(test.targets.numpy(), pred.numpy(), model.num_classes)


def read_recipe_bytes(recipe: str | Path | None) -> bytes | None:
    """The recipe file's contents (None without one), read once, when the run starts."""
    return None if recipe is None else Path(recipe).expanduser().read_bytes()


def _copy_recipe(recipe: str | Path, data: bytes, out: Path) -> None:
    """``data`` (the recipe as read when the run started) into ``out/recipe.yaml``,
    atomically; nothing when the recipe passed is that file itself (a resume with
    ``--recipe OUT/recipe.yaml``)."""
    target = out / RECIPE_COPY
    try:
        if os.path.samefile(Path(recipe).expanduser(), target):
            return
    except OSError:                     # either is missing: not the same file
        pass
    atomic_write_bytes(target, data)


def fit(config: TrainConfig | None = None, out: str | Path | None = None, resume: bool = False,
        progress: bool = True, log=None, *, recipe: str | Path | None = None,
        tensorboard: bool = True, recipe_bytes: bytes | None = None) -> dict:
    """Train per ``config``, write the run folder ``out`` and return its summary.

    The run folder gets ``config.json`` (the resolved configuration), ``metrics.jsonl``,
    ``checkpoint.pt`` (every epoch), ``samples/epoch_NNNN.png``, ``samples.png``,
    ``curves.png`` (losses and test accuracy; during the run at most every 30 s, and at the
    end), ``summary.json``, and ``tensorboard/`` when ``tensorboard`` and TensorBoard is
    installed. ``recipe``: the recipe file ``config`` came from; its contents as parsed
    (``recipe_bytes``; default: the file as read when ``fit`` starts) are written to
    ``recipe.yaml`` when training starts, and its path is recorded in the summary
    (``config`` already holds its values).
    The summary's ``epochs`` are the epochs trained: fewer than ``epochs_planned`` when
    ``config.time_limit`` (its clock starts here, data loading included) or
    ``config.patience`` stopped the run (``stopped`` says why, ``stopped_by`` which);
    ``wall_seconds`` runs from here to the end of the final evaluation.
    """
    with contextlib.ExitStack() as hold:            # the run folder's lock, once it exists
        return _fit(config, out, resume, progress, log, recipe=recipe, tensorboard=tensorboard,
                    recipe_bytes=recipe_bytes, hold=hold)


def _fit(config: TrainConfig | None, out: str | Path | None, resume: bool, progress: bool,
         log, *, recipe: str | Path | None, tensorboard: bool, recipe_bytes: bytes | None,
         hold: contextlib.ExitStack) -> dict:
    """``fit``'s work; ``hold`` keeps the run folder's lock until ``fit`` returns."""
    from .monitor import CURVES, RunMonitor

    started = time.perf_counter()                   # the time limit counts data loading too
    cfg = resolve_config(config)
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    rank, world = rank_and_world()                  # data-parallel (torchrun): rank 0 alone
    if rank:                                        # logs and writes
        log = lambda s: None  # noqa: E731
    out = Path(out) if out is not None else None
    check_patience(cfg)
    ckpt = check_run_folder(out, cfg, resume)                 # fail before loading data
    pick_device(cfg.device)                                   # e.g. cuda without a GPU
    if recipe is not None and recipe_bytes is None:
        recipe_bytes = read_recipe_bytes(recipe)             # now, not when training ends
    labeled, unlabeled, test, val = load_data(cfg)
    check_same_data(out, ckpt, data_fingerprint(labeled, unlabeled, test, val))
    saved = ckpt.get("model") if ckpt is not None else None
    del ckpt                                        # train() reads it again; free it now
    model = build_model(cfg, labeled, saved)
    check_inputs(model, labeled, cfg, world, val, unlabeled, test)
    if out is None:                                 # a new folder, once the input is good
        out = broadcast_object(None if rank else claim_run_dir(cfg), world)
    if not rank:                                    # before anything in it is written
        out.mkdir(parents=True, exist_ok=True)
        hold.enter_context(run_lock(out))
        # left by a run killed mid-write (train deletes those of its own files)
        delete_stale_temps([(out, n) for n in (SUMMARY, CURVES, RECIPE_COPY)], log)
    log(f"ganaug: {cfg.objective} on {cfg.dataset}: {len(labeled)} labeled, "
        f"{len(unlabeled) if unlabeled is not None else 0} unlabeled, "
        f"{f'{len(val)} validation, ' if val is not None else ''}{len(test)} test images; "
        f"{class_list(model.classes)}; arch {model.arch}; run folder {out}")
    title = (f"{cfg.objective} on {cfg.dataset}, {len(labeled)} labels, seed {cfg.seed}"
             + (f" ({Path(recipe).name})" if recipe is not None else ""))
    if recipe is not None and not rank:
        _copy_recipe(recipe, recipe_bytes, out)
    trains_g = trains_generator(cfg.objective)                 # else its samples are noise
    monitor = None if rank else RunMonitor(out, title, tensorboard, log=log,
                                           grid=_grid_inputs(model, cfg.seed, "cpu")
                                           if trains_g else None)
    state = None
    try:
        state = train(model, labeled, unlabeled, cfg, test=test, out=out, resume=resume,
                      progress=progress, log=log, on_epoch=monitor, started=started, val=val)
    finally:
        if monitor is not None:
            history = monitor.history()
            note = ""
            if state is not None and state.stopped and history:
                by = "the time limit" if state.stopped_by == TIME_LIMIT else "patience"
                note = f"stopped by {by} after epoch {history[-1]['epoch']} of {cfg.epochs}"
            monitor.close(history, note)
    m = evaluate(model, test)
    summary = {
        "test_accuracy": m["accuracy"], "test_error": 1.0 - m["accuracy"],
        "balanced_accuracy": m["balanced_accuracy"],
        "macro_f1": m["macro_f1"], "per_class_accuracy": m["per_class_accuracy"],
        "per_class_support": m["per_class_support"], "classes": model.classes,
        "num_test": m["num_test"],
        "epochs": state.history[-1]["epoch"],
        "epochs_planned": cfg.epochs, "stopped": state.stopped, "stopped_by": state.stopped_by,
        "diversity": state.history[-1].get("diversity"),
        "train_seconds": round(state.train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3), "objective": cfg.objective,
        "lipschitz": cfg.lipschitz, "dataset": cfg.dataset, "num_labeled": len(labeled),
        "num_unlabeled": len(unlabeled) if unlabeled is not None else 0,
        "seed": cfg.seed, "data_seed": cfg.data_seed, "arch": model.arch,
        "device": str(model.device), "torch": torch.__version__, "host": host(),
        "processes": world,              # this call's (torchrun's); the numbers depend on it
        # the fast path as planned (a failed compile falls back to eager: the log says so)
        "speed": Speed.resolve(cfg, model.arch, model.device).describe(),
        **({"gpu": torch.cuda.get_device_name(model.device)}
           if model.device.type == "cuda" else {}),
        "run": str(out),
        "recipe": str(recipe) if recipe is not None else _recipe_of(out) if resume else None,
    }
    if val is not None:                  # the epoch best.pt holds, chosen by validation alone
        best = best_record(state.history)
        summary.update(num_val=len(val), best_epoch=best["epoch"],
                       best_val_accuracy=best["val_accuracy"],
                       best_test_accuracy=best["test_accuracy"],
                       best_test_error=1.0 - best["test_accuracy"])
    if not rank:
        atomic_write_json(out / SUMMARY, summary)
    return summary


def class_list(names: Sequence[str], shown: int = 10) -> str:
    """``10 classes`` for classes named by their ids ("0".."K-1"), else ``3 classes (cat,
    dog, fox)`` in label order, the first ``shown`` names of a longer list."""
    head = f"{len(names)} classes"
    if list(names) == id_names(len(names)):
        return head
    return f"{head} ({_first(names, shown)})"


def _first(names: Sequence[str], shown: int = 10) -> str:
    """``a, b, c`` or, for more than ``shown`` names, the first ``shown`` and ``...``."""
    return ", ".join(map(str, names[:shown])) + (", ..." if len(names) > shown else "")


def check_patience(cfg: TrainConfig) -> None:
    """``patience`` needs the validation images that ``val_per_class`` holds out."""
    if cfg.patience and not cfg.val_per_class:
        raise ValueError(f"patience {cfg.patience} stops on the validation accuracy, and the "
                         f"run holds no validation images: add --val-per-class N "
                         f"(val_per_class), or drop --patience")


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1; None for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def aggregate_seeds(runs: list[dict]) -> dict:
    """Mean and sample std (n - 1) over per-seed summaries of test accuracy, test error,
    balanced accuracy and macro-F1; and of the best epoch's (by validation accuracy) test
    accuracy and error when every run has one (``val_per_class``)."""
    if not runs:
        raise ValueError("no runs to aggregate")
    out: dict = {}
    keys = ["test_accuracy", "test_error", "balanced_accuracy", "macro_f1"]
    if all("best_test_accuracy" in r for r in runs):
        keys += ["best_test_accuracy", "best_test_error"]
    for key in keys:
        mean, std = _mean_std([float(r[key]) for r in runs])
        out[f"{key}_mean"], out[f"{key}_std"] = mean, std
    return out


def seed_dir(out: str | Path, seed: int) -> Path:
    """The run folder of ``seed`` inside a multi-seed folder ``out``."""
    return Path(out) / f"seed-{seed}"


def _recipe_of(out: Path) -> str | None:
    """The recipe a resumed run (started with ``--recipe``) came from, as its last summary
    recorded it, else its copy ``recipe.yaml``; None for a run without one."""
    try:
        recorded = json.loads((out / SUMMARY).read_text()).get("recipe")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded is None and (out / RECIPE_COPY).is_file():
        recorded = str(out / RECIPE_COPY)
    return recorded


def fit_seeds(config: TrainConfig | None = None, seeds: Sequence[int] = (0, 1, 2),
              out: str | Path | None = None, resume: bool = False, progress: bool = True,
              log=None, *, recipe: str | Path | None = None, tensorboard: bool = True,
              recipe_bytes: bytes | None = None) -> dict:
    """One :func:`fit` per training seed (sequentially) into ``out/seed-N``, then
    ``out/summary.json``: every seed's summary and the mean and sample standard deviation
    (n - 1) of test accuracy and test error. ``config.seed`` is replaced by each seed;
    ``data_seed`` (which images are labeled) stays fixed.

    The summary's ``epochs`` are the epochs trained, as in each seed's (null when the seeds
    differ), beside ``epochs_per_seed``, ``epochs_planned``, ``stopped_seeds`` (those the
    time limit or ``patience`` stopped) and ``stopped_by_seed``.
    ``resume=True`` continues whichever seeds are unfinished: finished ones (a summary of
    ``config.epochs`` epochs, planned so and not stopped early) are kept, interrupted ones
    and those the time limit stopped resumed, missing ones started; one ``patience`` stopped
    is resumed too, and stays where it stopped unless ``patience`` was raised.
    Every folder (its configuration, and the data of every seed that has trained, finished
    ones too) is checked before any training starts; ``recipe`` is read once, then (as
    ``recipe_bytes``, when given) copied into every seed's folder. A kept seed's summary
    names its folder as it is now (``run``).
    """
    cfg = resolve_config(config)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("--seeds needs at least one seed")
    for s in seeds:
        if not SEED_RANGE[0] <= s <= SEED_RANGE[1]:
            raise ValueError(f"--seeds: seed {s} is outside {SEED_RANGE[0]} to {SEED_RANGE[1]} "
                             f"(the seeds torch takes)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds has repeated seeds: {seeds}")
    check_patience(cfg)
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    rank, world = rank_and_world()
    if rank:
        log = lambda s: None  # noqa: E731
    claimed = out is None
    if claimed:
        check_run_folder(None, cfg, resume)             # --resume needs --out
    else:
        check_run_kind(out, seeds=True)                 # not a file, nor a single run
    if recipe is not None and recipe_bytes is None:
        recipe_bytes = read_recipe_bytes(recipe)        # once, for every seed
    out = Path(out) if out is not None else broadcast_object(
        None if rank else claim_run_dir(cfg), world)
    try:
        with contextlib.ExitStack() as hold:
            if not rank and out.is_dir():          # its summary is this process's to write
                hold.enter_context(run_lock(out))
                delete_stale_temps([(out, SUMMARY)], log)
            return _fit_seeds(cfg, seeds, out, resume, progress, log, recipe, recipe_bytes,
                              tensorboard, rank)
    except BaseException:
        if claimed and not rank and out.is_dir() and not any(out.iterdir()):
            out.rmdir()                                 # failed before writing anything
        raise


def _fit_seeds(cfg: TrainConfig, seeds: list[int], out: Path, resume: bool, progress: bool,
               log, recipe, recipe_bytes: bytes | None, tensorboard: bool, rank: int) -> dict:
    plan: list[tuple[int, TrainConfig, str]] = []       # (seed, config, done|resume|new)
    fingerprint = None                                  # of the data, once a seed has trained
    for seed in seeds:                                  # resolved: a seed torch refuses fails now
        folder, c = seed_dir(out, seed), dataclasses.replace(cfg, seed=seed).resolved()
        has = (folder / CHECKPOINT).exists()
        ckpt = check_run_folder(folder, c, resume and has)   # refuses clashes before any work
        if ckpt is not None:                            # and other data (finished seeds too)
            if fingerprint is None:                     # the data depend on data_seed alone
                fingerprint = data_fingerprint(*load_data(c))
            check_same_data(folder, ckpt, fingerprint)
        del ckpt
        action = "resume" if has else "new"
        if has and (folder / SUMMARY).is_file():
            done = json.loads((folder / SUMMARY).read_text())
            if done.get("epochs") == cfg.epochs and not done.get("stopped") and \
                    done.get("epochs_planned", cfg.epochs) == cfg.epochs:
                action = "done"                         # as planned now, not stopped early
        plan.append((seed, c, action))
    if resume and all(a == "new" for _, _, a in plan):
        raise ValueError(f"nothing to resume in {out}: none of its seed-N folders holds a run; "
                         f"drop --resume to start them")
    if not resume and (out / SUMMARY).exists():
        raise ValueError(f"{out} already holds a run; pass --resume (resume=True in "
                         f"Python) to continue it or choose another --out (out=)")
    others = [s for s in seed_folders(out) if s not in seeds]
    if others:
        log(f"warning: {out} also holds "
            f"{', '.join(seed_dir(out, s).name + '/' for s in others)}, not in --seeds "
            f"{','.join(map(str, seeds))}: left out of its summary, which is over seeds "
            f"{', '.join(map(str, seeds))} alone")
    runs = []
    for seed, c, action in plan:
        folder = seed_dir(out, seed)
        if action == "done":
            log(f"ganaug: seed {seed} already finished in {folder}")
            runs.append({**json.loads((folder / SUMMARY).read_text()), "run": str(folder)})
            continue
        log(f"ganaug: seed {seed} ({seeds.index(seed) + 1}/{len(seeds)}) -> {folder}")
        runs.append(fit(c, folder, resume=action == "resume", progress=progress, log=log,
                        recipe=recipe, tensorboard=tensorboard, recipe_bytes=recipe_bytes))
    first = runs[0]
    trained = [int(r["epochs"]) for r in runs]
    agg = aggregate_seeds(runs)
    summary = {
        **agg, "seeds": seeds, "num_seeds": len(seeds),
        "std": "sample standard deviation over seeds (n - 1); null for one seed",
        "dataset": first["dataset"], "num_labeled": first["num_labeled"],
        "num_unlabeled": first["num_unlabeled"], "num_test": first["num_test"],
        **({"num_val": first["num_val"], "best_epoch_per_seed": [r["best_epoch"] for r in runs]}
           if "best_test_accuracy_mean" in agg else {}),
        "objective": first["objective"],
        # as in each seed's summary: the epochs trained (null when the seeds differ, which a
        # time limit can make), next to the plan
        "epochs": trained[0] if len(set(trained)) == 1 else None, "epochs_per_seed": trained,
        "epochs_planned": cfg.epochs,
        "stopped_seeds": [r["seed"] for r in runs if r.get("stopped")],
        "stopped_by_seed": [r.get("stopped_by") for r in runs],
        "data_seed": cfg.data_seed,
        "arch": first["arch"],
        "recipe": str(recipe) if recipe is not None else first.get("recipe"),
        "train_seconds": round(sum(r["train_seconds"] for r in runs), 3), "run": str(out),
        "runs": runs,
    }
    if not rank:
        atomic_write_json(out / SUMMARY, summary)
    return summary


def evaluate_run(run: str | Path, data_root: str | None = None, *, quality: bool = False,
                 save: bool = False, device: str | torch.device = "auto", best: bool = False,
                 **quality_options) -> dict:
    """Reload a run folder's model and test split and compute its metrics, on ``device``
    (``auto``: CUDA when present). ``best=True``: the model of ``best.pt`` (the epoch of
    highest validation accuracy of a run trained with ``val_per_class``) instead of the
    last checkpoint's.

    ``quality=True`` adds ``"quality"``: sample-quality metrics (domain FID and KID,
    intra-class FID, precision/recall, TSTR, Inception FID from local weights), see
    :func:`ganaug.evaluation.evaluate_quality`, which receives ``quality_options``. A run
    whose objective trains no generator (``supervised``) gets ``"quality": None`` and the
    reason in ``"quality_skipped"``. ``save=True`` also writes the result to
    ``run/eval.json`` (``run/eval-best.json`` with ``best``).
    """
    dev = pick_device(device)
    run = Path(run)
    path = run_checkpoint(run, file_ok=False)
    if best:
        path = run / BEST
        if not path.is_file():
            if _trained_with_validation(run):
                raise CheckpointError(f"{run} was trained with validation images, but its "
                                      f"{BEST} is missing (deleted, or lost before a resume); "
                                      f"drop --best to evaluate its last epoch")
            raise CheckpointError(f"{run} has no {BEST}: it keeps the best epoch of a run "
                                  f"trained with validation images (ganaug train "
                                  f"--val-per-class N); drop --best to evaluate its last "
                                  f"epoch")
    ckpt = safe_torch_load(path)
    cfg = checkpoint_config(ckpt, path)
    check_run_keys(ckpt, path, RUN_KEYS[:4])
    folder = folder_path(cfg.dataset)
    if data_root is not None:               # an image folder's new place, or a new root
        if folder is not None:
            new = os.path.abspath(os.path.expanduser(data_root))
            if not os.path.isdir(new):
                what = "is a file" if os.path.exists(new) else "does not exist"
                raise DataNotFoundError(f"--data-root (data_root=) {data_root} {what}: pass "
                                        f"the folder that now holds the images of run {run} "
                                        f"(it trained on {folder})")
            cfg.dataset = f"folder:{new}"
            folder = folder_path(cfg.dataset)
        else:
            cfg.data_root = data_root
    if folder is not None and not os.path.isdir(os.path.expanduser(folder)):
        why = ("the run (saved before ganaug recorded image folders as absolute paths) names "
               "it relative to the directory it was trained from; run `ganaug eval` from there"
               if not os.path.isabs(os.path.expanduser(folder)) else
               "it was moved or deleted since the run trained: put the images back there, or "
               "pass their new place as --data-root")
        raise DataNotFoundError(f"image folder {folder} of run {run} does not exist: {why}")
    model = CLSGAN.from_checkpoint(ckpt).to(dev)
    if folder is not None:
        _check_folder_classes(os.path.expanduser(folder), model.classes, run)
    try:
        train_set, test = load_dataset(cfg.dataset, cfg.data_root, False, cfg.image_size)
    except (DataNotFoundError, ValueError) as e:  # eval reads the run's data, never downloads
        if DOWNLOAD_HINT not in str(e):
            raise
        cls = DataNotFoundError if isinstance(e, DataNotFoundError) else ValueError
        raise cls(str(e).replace(DOWNLOAD_HINT, "")) from None
    # the run's own split, or its test split could hold images it trained on (a folder with
    # one image more splits otherwise)
    labeled, unlabeled, val = split_with_validation(train_set, cfg.labels_per_class,
                                                    cfg.val_per_class, cfg.data_seed)
    check_same_data(run, ckpt, data_fingerprint(labeled, unlabeled, test, val),
                    action="evaluate", dataset=cfg.dataset)
    m = evaluate(model, test)
    result = {**m, "test_accuracy": m["accuracy"],          # summary.json's name for it
              "test_error": 1.0 - m["accuracy"], "dataset": cfg.dataset,
              "epoch": int(ckpt["epoch"]), "epochs_planned": cfg.epochs,
              "classes": model.classes, "run": str(run),
              "checkpoint": path.name}
    if quality:
        if not trains_generator(cfg.objective):
            result["quality"] = None
            result["quality_skipped"] = (f"objective {cfg.objective!r} trains no generator "
                                         f"(the loss network on the labels alone)")
        else:
            from .evaluation import evaluate_quality
            note = _labels_note(cfg, get_objective(cfg.objective).conditional)
            result["quality"] = evaluate_quality(model, train_set, test, device=dev,
                                                 labels_note=note, **quality_options)
    if save:
        atomic_write_json(run / (EVAL_BEST if best else EVAL), result)
    return result


def _trained_with_validation(run: Path) -> bool:
    """Whether the run's ``config.json`` has validation images (False when unreadable)."""
    try:
        return bool(json.loads((run / "config.json").read_text()).get("val_per_class"))
    except (OSError, ValueError, AttributeError):
        return False


def _check_folder_classes(folder: str, classes: list[str], run: Path) -> None:
    """Before any image is decoded: ``folder``'s class sub-folders are the ``classes`` the
    run trained on (a folder one level too high holds others), else an error that names a
    sub-folder holding them. Names "0".."K-1" may be a model's defaults: left to the data
    check after loading."""
    from .data.sources import folder_classes

    def of(path) -> list[str] | None:
        try:
            return folder_classes(path)
        except (OSError, ValueError):
            return None
    found = of(folder)
    if found is None or found == classes or classes == id_names(len(classes)):
        return
    below = sorted(e.path for e in os.scandir(folder)
                   if e.is_dir() and not e.name.startswith(".") and of(e.path) == classes)
    new, gone = sorted(set(found) - set(classes)), sorted(set(classes) - set(found))
    if below:
        where = f"{below[0]} holds them: pass it as --data-root (data_root=)"
    elif len(new) + len(gone) < len(classes):       # the run's own folder, changed since
        changes = ([f"new: {_first(new)}"] if new else []) + \
            ([f"missing: {_first(gone)}"] if gone else [])
        where = (f"if this is the run's folder, its classes changed since it trained "
                 f"({'; '.join(changes)}): put them back as they were, or train a new run "
                 f"on it")
    else:
        where = "pass the folder that holds them as --data-root (data_root=)"
    raise DataNotFoundError(f"image folder {folder} holds the class sub-folders "
                            f"{_first(found) or '(none)'}, not the {len(classes)} classes run "
                            f"{run} trained on ({_first(classes)}): {where}")


def _labels_note(cfg: TrainConfig, conditional: bool) -> str | None:
    """Why this run's generator is not trained to follow its labels, or None when it is."""
    if not conditional:
        return (f"objective {cfg.objective!r} is unconditional: its generator is not trained "
                f"to follow its labels, so this shows how far its samples do by chance")
    weight = cfg.g_cond_weight
    if weight is None:                      # a config saved before it was resolved
        try:
            weight = cfg.resolved().g_cond_weight
        except ValueError:
            return None
    if cfg.g_loss == "feature-matching" and not weight and not cfg.g_cond_share:
        return ("the generator was trained by feature matching alone (g_cond_weight 0), which "
                "does not ask its samples to follow their labels")
    return None


def _check_not_a_run_file(out: Path, run: Path) -> None:
    """Refuse an ``out`` that would replace a file ``ganaug train`` wrote into a run folder
    (its checkpoint, ``best.pt``, ``samples.png``, ``curves.png``, anything in its
    ``samples/``), or the model file ``run`` names: the samples would take the run's place."""
    from .monitor import CURVES
    from .train import CONFIG, SAMPLES

    try:
        same = out.exists() and run.exists() and os.path.samefile(out, run)
    except OSError:
        same = False
    run_dir = out.parent.parent if out.parent.name == "samples" else out.parent
    own = (out.name in (CHECKPOINT, BEST, SAMPLES, CURVES) or out.parent != run_dir) and \
        (run_dir / CONFIG).is_file()                # samples/epoch_NNNN.png too
    if same or own:
        what = "the model file sampled from" if same else f"a file of run folder {run_dir}"
        raise ValueError(f"--out (out=) {out} is {what}: the samples would replace it; name "
                         f"another file (e.g. {out.parent / 'samples-new'}{out.suffix})")


def sample_run(run: str | Path, per_class: int, out: str | Path, seed: int = 0,
               device: str = "auto", log: Callable[[str], None] | None = None,
               standing_stats: int = 0) -> Path:
    """Write ``per_class`` samples of every class from a run's EMA generator to ``out``:
    a ``.png`` grid (one row per class) or a ``.pt`` dict {images in [-1, 1], labels}
    (replaced if it exists; written atomically). ``standing_stats=N`` first re-estimates
    the generator's BatchNorm statistics on N samples of its own
    (:meth:`CLSGAN.standing_statistics`, seeded by ``seed``); the run is not changed."""
    out = Path(out)
    per_class = _positive(per_class, "per_class (--per-class)")
    standing_stats = standing_stats_count(standing_stats, "standing_stats (--standing-stats)")
    if out.suffix not in (".png", ".pt"):
        raise ValueError(f"out (--out) must end in .png (a grid) or .pt (tensors), got "
                         f"{out.name!r}")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; name a file in it (e.g. {out / 'samples'}"
                         f"{out.suffix})")
    above = next((p for p in out.parents if p.exists()), None)    # the folders are made
    if above is not None and not above.is_dir():
        raise ValueError(f"--out {out} is under {above}, a file: name a file in a folder")
    _check_not_a_run_file(out, Path(run))
    dev = pick_device(device)
    model = CLSGAN.load(run, map_location=dev, need_generator=True)
    if log:
        log(f"sampling {per_class * model.num_classes} images ({per_class} of each of "
            f"{model.num_classes} classes) on {dev}")
    if standing_stats:
        done = model.standing_statistics(standing_stats, seed=seed)
        if log:
            log(f"re-estimated the generator's BatchNorm statistics on {standing_stats} of its "
                f"own samples" if done else
                "the generator has no BatchNorm: --standing-stats changes nothing")
    images, labels = model.sample_per_class(per_class, seed)
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{run}'s generator returns NaN or inf values (it diverged in "
                         f"training; its losses in metrics.jsonl say when): there are no "
                         f"samples to write. Train it again, e.g. with a lower --lr")
    if out.suffix == ".png":
        save_grid(out, images, nrow=per_class)
    else:
        atomic_torch_save(out, {"images": images.cpu(), "labels": labels,
                                "classes": model.classes})
    return out
