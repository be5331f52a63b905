"""The training loop: alternating loss-network and generator updates (DESIGN.md section 2).

The loop owns the epochs: seeding, the device, learning-rate schedule, checkpoints, logs,
progress and resume; each iteration is one :class:`ganaug.step.TrainStep` (optimisers,
EMA, the fast path) on a batch drawn by :class:`ganaug.step._Draws`, data-parallel over
processes when a process group is up (:mod:`ganaug.distributed`). What it prints while it
runs (progress bar, epoch lines, the time-limit note) is :mod:`ganaug.progress`'s. Whether a
run may start or resume in its folder is :mod:`ganaug.runs`'s to say. Losses come from
:mod:`ganaug.objectives` (pure functions); networks from :mod:`ganaug.nets`.

Reproducibility: every epoch re-seeds from (seed, epoch), so a run resumed from the
checkpoint written at the end of epoch k continues exactly as if it had never stopped.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from . import distributed as dist_
from . import objectives as O
from .checks import (DIVERSITY_WARN, diversity_note, first_per_class_distances,
                     pair_distances, per_class, pooled, relative_spread)
from ._io import CHECKPOINT, CHECKPOINT_VERSION, CheckpointError, atomic_torch_save, \
    atomic_write_bytes, atomic_write_json, atomic_write_text, remove_stale_temps, run_lock, \
    safe_torch_load
from .config import TrainConfig, resolve_config
from .data import ImageSet
from .model import CLSGAN, pick_device
from .nets import recalibrate_batchnorm
from .progress import Pace, epoch_line, progress_bar
from .runs import BEST, check_run_folder, check_run_kind, check_same_data, data_fingerprint
from .step import Speed, TrainStep, _derive_seed, _Draws, _Shard, step_kind

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SAMPLES = "samples.png"
TIME_LIMIT, PATIENCE = "time limit", "patience"     # why a run stopped before its epochs
# an epoch's loss terms, in the order of its sums (d_loss is the first five's sum)
LOSS_TERMS = ("sup_loss", "critic", "critic_ul", "penalty", "consistency", "g_loss", "g_cond")


def check_world_batch(batch_size: int, world: int, resume: bool = False) -> None:
    """Every process takes an equal share of the global batch. A resume keeps its run's
    batch size, so the fix is then another number of processes."""
    if world > 1 and batch_size % world:
        if resume:
            fits = [n for n in range(1, min(batch_size, 64) + 1) if batch_size % n == 0]
            raise ValueError(f"batch_size {batch_size} of the run being resumed does not split "
                             f"evenly over {world} processes, and a resume keeps its batch "
                             f"size: resume with a number of processes that divides "
                             f"{batch_size} ({', '.join(map(str, fits))}), or start a new run")
        raise ValueError(f"batch_size {batch_size} does not split evenly over {world} "
                         f"processes; use a multiple of {world}")


def _unlabeled_flags_set(cfg: TrainConfig) -> list[str]:
    """The settings of ``cfg`` away from their defaults that act on unlabeled images alone
    (as flags with their values): without unlabeled images they change nothing."""
    default = TrainConfig()
    return [f"--{name.replace('_', '-')} {getattr(cfg, name)}"
            for name in ("consistency", "unlabeled_ratio", "gamma", "gamma_rampup", "fm_real")
            if getattr(cfg, name) != getattr(default, name)]


def check_inputs(model: CLSGAN, labeled: ImageSet, cfg: TrainConfig, world: int = 1,
                 val: ImageSet | None = None, unlabeled: ImageSet | None = None,
                 test: ImageSet | None = None) -> None:
    """ValueError for data, model and resolved config that cannot train together (checked
    by :func:`train`, and by ``fit`` before it creates a run folder)."""
    check_world_batch(cfg.batch_size, world)
    if world > 1 and str(cfg.device).startswith("cuda:"):
        raise ValueError(f"device {cfg.device!r} would put all {world} processes on one GPU: "
                         f"under torchrun each takes its own (LOCAL_RANK); pass --device cuda "
                         f"(or auto)")
    if labeled.num_classes != model.num_classes or labeled.image_shape != model.image_shape:
        raise ValueError(f"data ({labeled.num_classes} classes, images {labeled.image_shape}) "
                         f"does not match the model ({model.num_classes}, {model.image_shape})")
    if cfg.lipschitz == "spectral-norm" and model.net_options.get("norm") != "spectral":
        raise ValueError("lipschitz='spectral-norm' needs a model built with norm='spectral' "
                         "(CLSGAN(..., norm='spectral'), or ganaug.build_model(config, data))")
    if cfg.translate >= min(labeled.image_shape[1:]):
        raise ValueError(f"translate={cfg.translate} pixels would move {labeled.image_shape[1]}x"
                         f"{labeled.image_shape[2]} images out of view; use fewer pixels than "
                         f"the image side (e.g. 2 for MNIST)")
    obj = O.get_objective(cfg.objective)
    uses_unl = obj.semi_supervised and unlabeled is not None and len(unlabeled) > 0
    fakes = _step_rows(cfg, uses_unl) // world
    if obj.critic != "none" and fakes < 2 and any(isinstance(m, torch.nn.BatchNorm1d)
                                                  for m in model.generator.modules()):
        raise ValueError(f"batch_size {cfg.batch_size} gives the generator {fakes} image per "
                         f"step{' and process' if world > 1 else ''}, and its BatchNorm1d "
                         f"layers need at least 2: use a larger --batch-size, or --net-option "
                         f"g_norm=none")
    if cfg.consistency and cfg.consistency_teacher == "net" and not cfg.translate and \
            not _draws_noise(model.loss_net):
        raise ValueError("consistency_teacher 'net' compares the loss network with itself on the "
                         "same unlabeled images, and this one has no noise layers or dropout: "
                         "the term is exactly 0. Give the teacher another view (--translate N), "
                         "noise (--net-option input_noise=..., hidden_noise=...), or use "
                         "--consistency-teacher ema")
    C = model.num_classes
    if not _labels_fit(labeled, C):
        raise ValueError(f"the labeled set must be non-empty and every target in [0, {C}) "
                         f"(the model's classes)")
    if unlabeled is not None and len(unlabeled) and unlabeled.image_shape != model.image_shape:
        raise ValueError(f"unlabeled images {unlabeled.image_shape} do not match the model's "
                         f"{model.image_shape}: split them from the same data "
                         f"(ganaug.split_labeled)")
    if test is not None and (test.image_shape != model.image_shape or not _labels_fit(test, C)):
        raise ValueError(f"the test set (images {test.image_shape}) must hold images of the "
                         f"model's shape {model.image_shape}, at least one, every target in "
                         f"[0, {C}): pass the test split of the same data, or test=None")
    if cfg.patience and val is None:
        raise ValueError(f"patience={cfg.patience} stops on the validation accuracy, and there "
                         f"are no validation images: pass val= (ganaug.split_with_validation), "
                         f"or set patience=0")
    if val is not None:
        if val.image_shape != model.image_shape:
            raise ValueError(f"validation images {val.image_shape} do not match the model's "
                             f"{model.image_shape}: hold them out of the same data")
        if not _labels_fit(val, C):
            raise ValueError(f"the validation set must be non-empty and every target in [0, "
                             f"{C}) (labeled images held out of training, e.g. by "
                             f"ganaug.split_with_validation); pass val=None for none")


def _data_notes(labeled: ImageSet, unlabeled: ImageSet | None) -> list[str]:
    """What looks wrong in the training images, though they can train: classes without a
    labeled image, and images none of which is below 0 (ganaug's images are in [-1, 1];
    [0, 1] images not rescaled, e.g., make samples too bright for the real data)."""
    notes = []
    empty = [repr(labeled.classes[c]) for c, n in enumerate(labeled.class_counts()) if n == 0]
    if empty:
        them = "them" if len(empty) > 1 else "it"
        notes.append(f"class{'es' if len(empty) > 1 else ''} {', '.join(empty)} ha"
                     f"{'ve' if len(empty) > 1 else 's'} no labeled images: the classifier "
                     f"never learns {them} and the generator has no real image of {them} to "
                     f"imitate; add labeled images of every class (or drop the empty ones)")
    low = min(float(d.images.min()) for d in (labeled, unlabeled) if d is not None and len(d))
    if low >= 0:
        notes.append(f"no training image has a value below 0 (the lowest is {low:g}), but "
                     f"ganaug's images are in [-1, 1]: images in [0, 1] need x * 2 - 1 "
                     f"first, else the samples come out on another scale than the images")
    return notes


def _draws_noise(net: torch.nn.Module) -> bool:
    """Whether ``net`` in training mode draws random noise (noise layers or dropout)."""
    from .nets._layers import GaussianNoise
    return any(isinstance(m, GaussianNoise) and m.std > 0 or
               isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0
               for m in net.modules())


def _labels_fit(data: ImageSet, num_classes: int) -> bool:
    """``data`` is non-empty and every target is a class id in [0, num_classes)."""
    return len(data) > 0 and 0 <= int(data.targets.min()) and \
        int(data.targets.max()) < num_classes


def place_adam_state(opt: torch.optim.Optimizer) -> None:
    """Put every parameter's Adam state where its group's kernel wants it. The step count:
    on the parameter's device for fused (or capturable) Adam, on the CPU otherwise, as
    float32. The moments: in the parameter's memory layout. ``load_state_dict`` places the
    counts by the saved groups' switches and keeps the moments' saved layout, so a run that
    resumes with another ``fused_adam`` (a CPU checkpoint resumed fused on a GPU) or
    ``channels_last`` (the conv pair's 4-d weights) needs this: the fused CUDA kernel
    refuses step counts on the CPU and moments laid out unlike their parameters."""
    for group in opt.param_groups:
        on_param = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            state = opt.state.get(p)
            if not state:
                continue
            if torch.is_tensor(state.get("step")):
                where = p.device if on_param else torch.device("cpu")
                state["step"] = state["step"].to(device=where, dtype=torch.float32)
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                v = state.get(key)
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    state[key] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def best_record(history: list[dict]) -> dict | None:
    """The first epoch's record with the highest ``val_accuracy`` (the epoch ``best.pt``
    holds), or None when no epoch was validated."""
    scored = [r for r in history if r.get("val_accuracy") is not None]
    return max(scored, key=lambda r: r["val_accuracy"]) if scored else None


@dataclass
class TrainState:
    """What :func:`train` returns: the model and per-epoch metrics. ``stopped``: why
    training ended before ``config.epochs`` (a message that starts with ``stopped_by``),
    else None."""
    model: CLSGAN
    history: list[dict]
    config: TrainConfig
    train_seconds: float
    stopped: str | None = None

    @property
    def stopped_by(self) -> str | None:
        """``TIME_LIMIT`` or ``PATIENCE`` for a run that stopped early, else None."""
        return self.stopped.split(":", 1)[0] if self.stopped else None


GRID_MIN_SIDE = 28      # smaller images are enlarged (nearest pixel) in the PNG grids


def save_grid(path: Path, images: Tensor, nrow: int) -> None:
    """Write images in [-1, 1] as a PNG grid, atomically; images under GRID_MIN_SIDE pixels
    a side are enlarged by a whole factor (digits' 8x8 to 32x32), so the grid is legible."""
    from torchvision.utils import save_image

    images = images.float().cpu()
    k = -(-GRID_MIN_SIDE // min(images.shape[-2:])) if len(images) else 1
    if k > 1:
        images = images.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)
    buf = io.BytesIO()
    save_image(images, buf, nrow=nrow, normalize=True, value_range=(-1, 1),
               format="png", padding=1)
    atomic_write_bytes(path, buf.getvalue())


def delete_stale_temps(places: list[tuple[Path, str]], log: Callable[[str], None]) -> None:
    """Delete (and log) the temporary files that writes of each ``(folder, name)`` left when
    their run was killed mid-write; for a run folder this process holds (``run_lock``)."""
    for folder, name in places:
        for tmp in remove_stale_temps(folder, name):
            log(f"deleted {tmp.name}, left by a run killed while writing "
                f"{tmp.name[1:].rsplit('.', 2)[0]}")


def check_same_networks(model: CLSGAN, ckpt: dict) -> None:
    """ValueError when ``model``'s networks are not built as the checkpoint's were (another
    arch, image shape or ``net_options``; e.g. a builder default changed since the run began)."""
    saved, built = ckpt.get("model", {}), model.spec()
    keys = ("arch", "image_shape", "num_classes", "net_options")
    diff = [k for k in keys if k in saved and saved[k] != built[k]]
    if diff:
        detail = "; ".join(f"{k} {saved[k]!r} -> {built[k]!r}" for k in diff)
        raise ValueError(f"cannot resume: the checkpoint's networks were built otherwise ({detail}); "
                         f"build the model with the checkpoint's net_options "
                         f"(ganaug.fit and ganaug train --resume do)")


def train(model: CLSGAN, labeled: ImageSet, unlabeled: ImageSet | None = None,
          config: TrainConfig | None = None, *, test: ImageSet | None = None,
          out: str | Path | None = None, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] | None = None,
          on_epoch: Callable[[dict, CLSGAN], None] | None = None,
          started: float | None = None, val: ImageSet | None = None) -> TrainState:
    """Train ``model`` on ``labeled`` (and ``unlabeled`` images, targets ignored).

    ``out``: run folder for ``checkpoint.pt`` (every epoch), ``config.json``,
    ``metrics.jsonl`` and per-epoch sample grids; ``resume=True`` continues the run there.
    ``test``: evaluated after every epoch with the EMA classifier.
    ``val``: labeled images held out of training (``split_with_validation``), evaluated
    after every epoch too (``val_accuracy``); with ``out``, ``best.pt`` holds the model of
    the first epoch with the highest validation accuracy (``best_record``), loadable as
    ``CLSGAN.load(out / "best.pt")``. Choosing an epoch by ``test`` would tune on the test
    set; ``val`` is what to choose by.
    ``on_epoch(record, model)``: called after each epoch, once its record is made and its
    files are written (by the process that writes them); e.g. plots, TensorBoard.

    ``config.patience`` (epochs, 0: never; needs ``val``): after each epoch, training stops
    once the last ``patience`` epochs brought no higher validation accuracy than the best
    before them (``best.pt`` holds that epoch). Resuming such a run trains nothing more
    unless ``patience`` is raised (or 0).

    ``config.time_limit`` (minutes, 0: none): after each epoch, training stops if the next
    epoch, as long as the longest one so far (its evaluation, files and ``on_epoch``
    included; with torch.compile, once a second epoch has run, the longest but the call's
    first, which compiles), would end past the limit, counted from ``started`` (a
    ``time.perf_counter()`` reading; default: when ``train`` is called). The first epoch
    always runs. The checkpoint is the one of the last finished epoch, so ``resume=True``
    (with a new limit) continues the run as if it had never stopped.

    Data-parallel when a ``torch.distributed`` process group is initialised (``torchrun``;
    see :mod:`ganaug.distributed`): every rank calls ``train`` with the same arguments,
    ``batch_size`` is the global batch, and only rank 0 logs, shows progress, writes ``out``
    and calls ``on_epoch``. The result matches one process with the same batch size, up to
    rounding, except for batch statistics: BatchNorm in training mode normalises each
    rank's rows alone (as DDP without SyncBatchNorm), and Gaussian-noise layers and dropout
    draw different noise per rank.
    """
    with contextlib.ExitStack() as hold:            # the run folder's lock, once it exists
        return _train(model, labeled, unlabeled, config, test=test, out=out, resume=resume,
                      progress=progress, log=log, on_epoch=on_epoch, started=started, val=val,
                      hold=hold)


def _train(model: CLSGAN, labeled: ImageSet, unlabeled: ImageSet | None = None,
           config: TrainConfig | None = None, *, test: ImageSet | None = None,
           out: str | Path | None = None, resume: bool = False, progress: bool = True,
           log: Callable[[str], None] | None = None,
           on_epoch: Callable[[dict, CLSGAN], None] | None = None,
           started: float | None = None, val: ImageSet | None = None,
           hold: contextlib.ExitStack) -> TrainState:
    """``train``'s work; ``hold`` keeps the run folder's lock until ``train`` returns."""
    started = time.perf_counter() if started is None else started
    cfg = resolve_config(config)
    obj = O.get_objective(cfg.objective)
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    rank, world = dist_.rank_and_world()
    check_inputs(model, labeled, cfg, world, val, unlabeled, test)
    model.objective = cfg.objective                # what it is trained with (samplers ask)
    if rank != 0:                                  # only rank 0 logs and writes
        log, progress, on_epoch = (lambda s: None), False, None
    ckpt = check_run_folder(out, cfg, resume)
    fingerprint = data_fingerprint(labeled, unlabeled, test, val)
    check_same_data(out, ckpt, fingerprint)        # other data first: the clearer message
    if ckpt is not None:
        check_same_networks(model, ckpt)
    out = Path(out) if out is not None and rank == 0 else None
    if out is not None and out.is_dir():           # a resume: before it says so (a new
        hold.enter_context(run_lock(out))          # folder: once made, below)
    device = pick_device(cfg.device)
    if world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())   # cuda:LOCAL_RANK
    step_fn = TrainStep(model, cfg, device, world, log)   # optimisers, fast path
    opt_d, opt_g = step_fn.opt_d, step_fn.opt_g
    fmt = torch.channels_last if step_fn.speed.channels_last else torch.contiguous_format

    # the whole data set lives on the device; each step gathers its rows there
    use_unl = obj.semi_supervised and unlabeled is not None and len(unlabeled) > 0
    if obj.semi_supervised and not use_unl:
        idle = _unlabeled_flags_set(cfg)
        log(f"no unlabeled images: {cfg.objective}'s unlabeled terms are off, it trains on "
            f"the labeled images alone" + (f"; {', '.join(idle)} therefore "
                                          f"{'has' if len(idle) == 1 else 'have'} no effect"
                                          if idle else ""))
    x_lab = labeled.images.to(device).contiguous(memory_format=fmt)
    y_lab = labeled.targets.to(device)
    x_unl = unlabeled.images.to(device).contiguous(memory_format=fmt) if use_unl else None
    # an epoch is one pass's worth of steps over the whole training set (labeled and
    # unlabeled), whatever the objective uses, so objectives compare at equal step counts
    n_train = len(labeled) + (len(unlabeled) if unlabeled is not None else 0)
    steps = max(1, math.ceil(n_train / cfg.batch_size))
    if cfg.batch_size > n_train:
        log(f"warning: batch_size {cfg.batch_size} (--batch-size) is more than the {n_train} "
            f"training images: each epoch is one step whose batches, drawn with replacement, "
            f"repeat images at the cost of a batch that size (a typo?); give a smaller one "
            f"(default 64)")
    for note in _data_notes(labeled, unlabeled if use_unl else None):
        log(f"warning: {note}")
    G, D = model.generator, model.loss_net
    shard = _Shard(rank, world)

    history: list[dict] = []
    start, step, seconds = 0, 0, 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["state"])
        opt_d.load_state_dict(ckpt["opt_d"])
        opt_g.load_state_dict(ckpt["opt_g"])
        for opt in (opt_d, opt_g):      # the saved groups carry the saved run's fused switch;
            for group in opt.param_groups:   # this run's (free to change on resume) wins
                group["fused"] = True if step_fn.speed.fused_adam else None
            place_adam_state(opt)
        start, step = int(ckpt["epoch"]), int(ckpt["step"])
        history, seconds = list(ckpt["history"]), float(ckpt["train_seconds"])
        log(f"resuming {out} from epoch {start}" if start < cfg.epochs else
            f"{out} has trained all {cfg.epochs} of its epochs: nothing to train (raise the "
            f"epochs, --epochs N, to train further)")
    dist_.broadcast_module_(model, world)           # every rank starts from rank 0's weights
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        hold.enter_context(run_lock(out))          # before anything in it is written
        delete_stale_temps([(out, n) for n in (CHECKPOINT, BEST, CONFIG, METRICS, SAMPLES)]
                           + [(out / "samples", "epoch_*.png")], log)
        if ckpt is not None:
            _match_checkpoint(out, model, cfg, history, fingerprint, log)
        atomic_write_json(out / CONFIG, cfg.to_dict())
    grid = _grid_inputs(model, cfg.seed, device)
    # each epoch's sample diversity (rank 0; not for an objective that trains no generator)
    real_spread = real_spread_of(labeled) if rank == 0 and step_fn.adversarial else None
    speed = step_fn.speed.describe()
    log(f"device {device}{f' x {world} processes' if world > 1 else ''}; {speed}")
    if warning := step_fn.speed.warning(device):
        log(warning)

    longest = 0.0                                  # longest epoch of this call, wall seconds
    # with torch.compile the call's first epoch compiles too (an H200's MNIST recipe: 44 s
    # against 22 to 26): once a later epoch has run, the estimate leaves it out
    compiling, later = step_fn.nets.compiled, 0.0
    stopped = _no_better(cfg.patience, history, cfg.epochs, world)
    if stopped:                                    # a resume of a run patience stopped:
        log(stopped)                               # no epoch more
    end = start if stopped else cfg.epochs
    g_steps = None                                 # the last epoch's generator steps
    for epoch in range(start, end):
        t0 = time.perf_counter()
        lr = cfg.lr * cfg.lr_decay ** (epoch // cfg.lr_decay_every)
        for opt in (opt_d, opt_g):
            for group in opt.param_groups:
                group["lr"] = lr
        gamma = cfg.gamma * (min(1.0, (epoch + 1) / cfg.gamma_rampup) if cfg.gamma_rampup else 1.0)
        # noise layers and dropout (the global RNG): rank 0 as a single process, the others
        # their own streams; batches and GAN noise: `gen`, the same on every rank
        torch.manual_seed(_derive_seed(cfg.seed, epoch, 0, *([rank] if rank else [])))
        gen = torch.Generator().manual_seed(_derive_seed(cfg.seed, epoch, 1))
        draws = _Draws(cfg, x_lab, y_lab, labeled.targets, x_unl, gen, shard, model.noise_dim,
                       step_fn.adversarial, device)
        sums = torch.zeros(len(LOSS_TERMS), device=device)   # sup, critic, critic_ul, penalty,
                                               # consistency, g (weighted), its conditional part
        G.train()
        D.train()
        bar = progress_bar(steps, f"epoch {epoch + 1}/{cfg.epochs}", progress)
        g_steps = 0                            # the generator's losses average over its steps
        pace = Pace(cfg.time_limit, steps, started, torch.device(device).type == "cpu"
                     and model.arch != "mlp") \
            if cfg.time_limit and epoch == start and rank == 0 else None
        for i in range(steps):
            step += 1
            penalize, generator_step = step_kind(step, cfg, step_fn.adversarial)
            g_steps += generator_step
            b, nz = draws.next(generator_step)
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))   # warm-up of the average
            sums += step_fn(b, nz, gamma, decay, penalize)   # on the device: no sync per step
            bar.update(1)
            if pace is not None and pace.after(i + 1):
                if note := pace.note():
                    log(note)
                pace = None
        bar.close()
        dist_.average_(sums, world)            # the global batch's losses, as one process
        for net, ema in ((G, model.generator_ema), (D, model.loss_net_ema)):
            if world > 1:
                dist_.average_batchnorm_stats(net, world)
                for eb, nb in zip(ema.buffers(), net.buffers()):
                    eb.copy_(nb)
        if cfg.recalibrate_bn:                 # the average's own statistics, real images
            recalibrate_batchnorm(model.loss_net_ema, [x for x in (x_lab, x_unl) if x is not None],
                                  _step_rows(cfg), _derive_seed(cfg.seed, epoch, 2))
        if cfg.standing_stats:                 # the sampler's own statistics, its own images
            standing_stats_pass(model, cfg.standing_stats, cfg, epoch)
        vals = (sums / steps).tolist()         # the one host sync of the epoch
        if g_steps != steps:                   # d_steps > 1: over the generator's own steps
            vals[5:7] = (sums[5:7] / max(1, g_steps)).tolist()
        seconds += time.perf_counter() - t0
        rec = {"epoch": epoch + 1, "step": step, "lr": lr, "gamma": gamma,
               "d_loss": sum(vals[:5]), **dict(zip(LOSS_TERMS, vals)),
               "seconds": round(seconds, 3)}
        if not all(math.isfinite(v) for v in vals):    # the same on every rank (averaged)
            raise FloatingPointError(_diverged(rec, cfg, out, history))
        if test is not None:
            rec["test_accuracy"] = evaluate_accuracy(model, test)
        if val is not None:
            rec["val_accuracy"] = evaluate_accuracy(model, val)
        if real_spread is not None and (d := sample_diversity(model, real_spread, cfg.seed)) \
                is not None:
            rec["diversity"] = d
        history.append(rec)
        log(epoch_line(rec, cfg.epochs))
        if out is not None:                    # rank 0 only
            _write_epoch(out, model, cfg, history, step, seconds, opt_d, opt_g,
                         grid if step_fn.adversarial else None, fingerprint)
            if val is not None and best_record(history) is rec:
                # after the checkpoint: a run stopped between the two gets it on resuming
                _save_best(out, model, cfg, rec, fingerprint)
        if on_epoch is not None:
            on_epoch(rec, model)
        took = time.perf_counter() - t0            # evaluation and files included
        if epoch > start:
            later = max(later, took)
        longest = later if compiling and epoch > start else max(longest, took)
        stopped = _no_better(cfg.patience, history, cfg.epochs, world)
        if cfg.time_limit and not stopped and epoch + 1 < cfg.epochs:
            stopped = dist_.broadcast_object(                 # rank 0's clock decides for all
                _over_time(cfg.time_limit, started, longest, epoch + 1, cfg.epochs), world)
        if stopped:
            log(stopped)
            break
    if history and (d := history[-1].get("diversity")) is not None and d < DIVERSITY_WARN:
        log(f"warning: {diversity_note(d, str(out) if out is not None else 'RUN')} (diversity "
            f"{d:.2f} after epoch {history[-1]['epoch']}, the last; SyntheticMix and BatchMixer "
            f"warn under {DIVERSITY_WARN}; in a run's first epochs it can dip and recover, so "
            f"a short run may read low)")
    # an epoch shorter than d_steps may hold no generator step: its g_loss 0 is no reading
    if history and g_steps != 0 and (note := _generator_stalled(history[-1], cfg, obj)):
        log(f"warning: {note}")
    return TrainState(model, history, cfg, seconds, stopped)


GENERATOR_STALL = 1e-6     # an epoch's mean generator loss under this: its critic saturated


def _generator_stalled(rec: dict, cfg: TrainConfig, obj: O.Objective) -> str | None:
    """The warning for a run whose generator stopped learning: its loss (the critic's loss
    of its fakes, never negative) fell to about 0, where the critic passes it no gradient.
    None for objectives without a generator, for the unconditional LS and WGAN critics (their
    ``logit_loss`` is unbounded: no floor to saturate at), for feature matching (a distance,
    which may be small), or when the last epoch's loss is above ``GENERATOR_STALL``."""
    g = rec.get("g_loss")
    if obj.critic == "none" or obj.logit_critic or cfg.g_loss != "loss" or g is None or \
            not 0 <= g < GENERATOR_STALL:
        return None
    return (f"the generator's loss fell to {g:.1e} (epoch {rec['epoch']}, the last): the loss "
            f"network rates every fake as real with certainty, so it passes the generator no "
            f"gradient, and the generator stopped learning: its samples are not a trained "
            f"generator's (look at samples.png, or run `ganaug eval`). Its classifier may "
            f"still be good, trained as by the labels alone. benchmarks/README.md (\"Every "
            f"objective on the same networks\") tells of critics that saturated so")


def _diverged(rec: dict, cfg: TrainConfig, out: Path | None, history: list[dict]) -> str:
    """Why training stops at the epoch ``rec``: its losses are NaN or inf (the weights are
    then too, and every later epoch would be). Nothing of that epoch is written."""
    bad = ", ".join(f"{k} {rec[k]}" for k in LOSS_TERMS if not math.isfinite(rec[k]))
    kept = (f"; {out} keeps epoch {history[-1]['epoch']} ({CHECKPOINT}), from which a resume "
            f"would diverge again" if out is not None and history else "")
    return (f"training diverged in epoch {rec['epoch']} of {cfg.epochs} (step {rec['step']}): "
            f"non-finite losses ({bad}){kept}. Start a new run with a lower --lr (now "
            f"{cfg.lr:g}) or a stronger Lipschitz regulariser (--lipschitz, --gp-weight)")


def _no_better(patience: int, history: list[dict], epochs: int, world: int) -> str | None:
    """Why to stop after the last epoch of ``history``: its last ``patience`` epochs
    brought no higher validation accuracy than the best before them; None to go on (also
    with patience 0, or when every planned epoch is done). Rank 0's answer on every rank."""
    if not patience:
        return None
    best = best_record(history)
    done = history[-1]["epoch"] if history else 0
    why = None
    if best is not None and done < epochs and done - best["epoch"] >= patience:
        why = (f"{PATIENCE}: stopped after epoch {done} of {epochs}: no higher validation "
               f"accuracy in the {done - best['epoch']} epochs since epoch {best['epoch']} "
               f"({best['val_accuracy']:.4f}), whose model {BEST} holds (continue: --resume "
               f"with a higher --patience, or --patience 0)")
    return dist_.broadcast_object(why, world)


def _over_time(limit_min: float, started: float, last_s: float, done: int,
               epochs: int) -> str | None:
    """Why to stop before epoch ``done + 1`` (the reason, logged and kept in the run's
    summary), or None when another epoch of ``last_s`` seconds ends inside the limit."""
    used = time.perf_counter() - started
    if used + last_s <= 60 * limit_min:
        return None
    d = 1 if limit_min >= 1 else 3                 # "0.1 of 0.08 minutes" would read as over
    return (f"{TIME_LIMIT}: stopped after epoch {done} of {epochs}, {used / 60:.{d}f} of "
            f"{limit_min:g} minutes used; the next epoch would take about {last_s / 60:.{d}f} "
            f"more (continue: --resume --time-limit 0, or --resume with a new limit; a plain "
            f"--resume keeps this one)")


GRID_COLUMNS = 10


def _grid_inputs(model: CLSGAN, seed: int, device) -> tuple[Tensor, Tensor]:
    """Fixed noise for the per-epoch sample grid: one row per class, the same noise in each
    column, so grids compare across epochs and across classes."""
    g = torch.Generator().manual_seed(_derive_seed(seed, 7))
    z = torch.rand(GRID_COLUMNS, model.noise_dim, generator=g) * 2 - 1
    y = torch.arange(model.num_classes).repeat_interleave(GRID_COLUMNS)
    return z.repeat(model.num_classes, 1).to(device), y.to(device)


def _metrics_text(history: list[dict]) -> str:
    """``metrics.jsonl``'s content: one JSON line per epoch record."""
    return "".join(_json_line(r) for r in history)


def _write_metrics(out: Path, history: list[dict]) -> None:
    atomic_write_text(out / METRICS, _metrics_text(history))


def _save_best(out: Path, model: CLSGAN, cfg: TrainConfig, rec: dict, data: dict) -> None:
    model.save(out / BEST, {"config": cfg.to_dict(), "epoch": rec["epoch"], "step": rec["step"],
                            "val_accuracy": rec["val_accuracy"], "data": data})


def _match_checkpoint(out: Path, model: CLSGAN, cfg: TrainConfig, history: list[dict],
                      data: dict, log: Callable[[str], None]) -> None:
    """Make ``metrics.jsonl`` and ``best.pt`` agree with the checkpoint just loaded (its
    ``history``, its weights in ``model``): a run stopped after writing an epoch's metrics
    but not its checkpoint listed an epoch the checkpoint lacks, and one stopped after the
    checkpoint but before ``best.pt`` kept an older best; a resume that trains nothing more
    would have reported them as they were. A ``best.pt`` of an earlier epoch that is
    missing, unreadable or of another epoch cannot be rewritten (its weights are gone): it
    is removed, with a warning, and the next epoch that beats its accuracy writes one."""
    if not (out / METRICS).is_file() or (out / METRICS).read_text() != _metrics_text(history):
        _write_metrics(out, history)
    best = best_record(history)
    if best is None:
        return
    why = None if (out / BEST).is_file() else "missing"
    if why is None:
        try:
            have = safe_torch_load(out / BEST).get("epoch")
            why = None if have == best["epoch"] else f"of epoch {have}"
        except CheckpointError:
            why = "unreadable"
    if why is None:
        return
    if best is history[-1]:
        _save_best(out, model, cfg, best, data)
        log(f"wrote {BEST} for epoch {best['epoch']}, the best by validation accuracy, which "
            f"the run stopped before writing")
        return
    (out / BEST).unlink(missing_ok=True)
    log(f"warning: {out / BEST} should hold epoch {best['epoch']}, the best by validation "
        f"accuracy ({best['val_accuracy']:.4f}), but it is {why}; that epoch's weights are "
        f"gone, so it cannot be rewritten{' (removed)' if why != 'missing' else ''}: the run "
        f"goes on, and the next epoch with a higher validation accuracy writes {BEST}")


def _write_epoch(out: Path, model: CLSGAN, cfg: TrainConfig, history: list[dict], step: int,
                 seconds: float, opt_d, opt_g, grid: tuple[Tensor, Tensor] | None,
                 data: dict | None = None) -> None:
    """Sample grids (unless ``grid`` is None: an objective that trains no generator, whose
    samples are noise), metrics and the checkpoint (with ``data``, the data's fingerprint),
    each written atomically."""
    epoch = history[-1]["epoch"]
    if grid is not None:
        model.generator_ema.eval()
        with torch.no_grad():
            images = model.generator_ema(*grid)
        save_grid(out / "samples" / f"epoch_{epoch:04d}.png", images, GRID_COLUMNS)
        save_grid(out / SAMPLES, images, GRID_COLUMNS)
    _write_metrics(out, history)
    atomic_torch_save(out / CHECKPOINT, {
        "format": "ganaug", "version": CHECKPOINT_VERSION, "model": model.spec(),
        "state": model.state_dict(),
        "config": cfg.to_dict(), "epoch": epoch, "step": step, "opt_d": opt_d.state_dict(),
        "opt_g": opt_g.state_dict(), "history": history, "train_seconds": seconds,
        "unconditional_critic": O.LOGIT_CRITIC,
        **({"data": data} if data is not None else {})})


def standing_stats_pass(model: CLSGAN, samples: int, cfg: TrainConfig, epoch: int) -> bool:
    """The pass that ``standing_stats=samples`` makes after (0-based) ``epoch``: the
    generator's BatchNorm statistics on ``samples`` images of its own, in batches as large
    as a training step's (``_step_rows``), seeded by (seed, epoch).
    benchmarks/standing_stats.py applies it to a checkpoint trained without the option."""
    return model.standing_statistics(samples, _step_rows(cfg), _derive_seed(cfg.seed, epoch, 3))


def _step_rows(cfg: TrainConfig, unlabeled: bool = True) -> int:
    """The real rows of a step (labeled, plus unlabeled ones when ``unlabeled``; as many
    fakes); with unlabeled images, the batch size of the BatchNorm passes after each epoch."""
    return (1 + cfg.unlabeled_ratio if unlabeled else 1) * cfg.batch_size


def real_spread_of(labeled: ImageSet) -> tuple[Tensor, Tensor] | None:
    """The real side of each epoch's ``diversity``: ``pair_distances`` of the first
    ``per_class`` labeled images of every class (None when fewer than two classes have two)."""
    C = labeled.num_classes
    real = first_per_class_distances(labeled.images, labeled.targets, C, per_class(C))
    return real if int((real[1].diagonal() > 0).sum()) >= 2 else None


@torch.no_grad()
def sample_diversity(model: CLSGAN, real: tuple[Tensor, Tensor], seed: int) -> float | None:
    """The sampler's ``ganaug.checks.relative_spread`` against ``real``: ``per_class``
    images of every class from the same noise every epoch (a generator of its own, the
    averaged generator in eval mode, so training is untouched), as the mixers' check reads
    it."""
    C = model.num_classes
    labels = torch.arange(C).repeat_interleave(per_class(C))
    x = model.sample(labels, torch.Generator().manual_seed(_derive_seed(seed, 4)))
    return relative_spread(pair_distances(pooled(x), labels, C), real)


def evaluate_accuracy(model: CLSGAN, data: ImageSet) -> float:
    pred = model.predict(data.images).cpu()
    return float((pred == data.targets).float().mean())


def _json_line(rec: dict) -> str:
    return json.dumps(rec, sort_keys=True) + "\n"


__all__ = ["train", "TrainState", "TrainStep", "Speed", "pick_device", "evaluate_accuracy",
           "check_run_folder", "check_run_kind", "data_fingerprint", "save_grid",
           "CheckpointError"]
