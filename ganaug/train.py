"""The training loop: alternating loss-network and generator updates (DESIGN.md section 2).

The loop owns optimisers, the device, EMA, seeding, checkpoints, logs and progress.
Losses come from :mod:`ganaug.objectives` (pure functions); networks from :mod:`ganaug.nets`.

Reproducibility: every epoch re-seeds from (seed, epoch), so a run resumed from the
checkpoint written at the end of epoch k continues exactly as if it had never stopped.
"""
from __future__ import annotations

import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from . import objectives as O
from ._io import CheckpointError, atomic_torch_save, atomic_write_bytes, atomic_write_json, \
    atomic_write_text, safe_torch_load
from .config import TrainConfig
from .data import ImageSet
from .model import CLSGAN

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
SAMPLES = "samples.png"


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU. ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; "
                         "use --device cpu or auto")
    return dev


def _derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, stream): stable across runs and machines."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) + 0x632BE59BD9B4E019 + (h << 6) + (h >> 2))) & ((1 << 64) - 1)
    return h & ((1 << 63) - 1)


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    e_params, params = list(ema.parameters()), list(net.parameters())
    torch._foreach_lerp_(e_params, [p.detach() for p in params], 1.0 - decay)
    for eb, b in zip(ema.buffers(), net.buffers()):
        eb.copy_(b)


class _Stream:
    """Endless shuffled batches of indices into n items, from a local generator."""

    def __init__(self, n: int, batch: int, gen: torch.Generator, device: torch.device):
        self.n, self.batch, self.gen, self.device = n, batch, gen, device
        self.perm, self.pos = torch.randperm(n, generator=gen), 0

    def next(self) -> Tensor:
        out = []
        need = self.batch
        while need:
            if self.pos == self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
            take = min(need, self.n - self.pos)
            out.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(out).to(self.device)


class _BalancedStream:
    """Endless batches of indices drawn class-balanced (with replacement): every class is
    equally likely, whatever its count, then an item of that class uniformly."""

    def __init__(self, targets: Tensor, batch: int, gen: torch.Generator, device: torch.device):
        counts = torch.bincount(targets.cpu())
        self.weights = (1.0 / counts.double())[targets.cpu()]
        self.batch, self.gen, self.device = batch, gen, device

    def next(self) -> Tensor:
        return torch.multinomial(self.weights, self.batch, replacement=True,
                                 generator=self.gen).to(self.device)


@dataclass
class TrainState:
    """What :func:`train` returns: the model and per-epoch metrics."""
    model: CLSGAN
    history: list[dict]
    config: TrainConfig
    train_seconds: float


def _ell(obj: O.Objective, form: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss the critic compares, per sample: L(x, y), L_ul(x) where y = -1, or the
    unconditional -log P(real | x)."""
    if not obj.conditional:
        return lambda a, y: O.real_loss(a)

    def ell(a: Tensor, y: Tensor) -> Tensor:
        lab = y >= 0
        return torch.where(lab, O.conditional_loss(a, y.clamp(min=0), form),
                           O.unlabeled_loss(a, form))
    return ell


@dataclass
class _Batch:
    """One step's real data. Rows [0, n) are labeled; the rest are unlabeled images.

    y_gen: labels given to the generator for each row's fake partner (unlabeled rows get a
    class drawn from the label prior); y_crit: labels the critic uses (-1 = unlabeled).
    """
    x: Tensor
    y_gen: Tensor
    y_crit: Tensor
    n: int


def _critic(obj: O.Objective, cfg: TrainConfig, a_r: Tensor, a_f: Tensor, x_r: Tensor,
            x_f: Tensor, y: Tensor, ell: Callable) -> Tensor:
    """The adversarial term on (real, fake) pairs sharing labels y (-1 = unlabeled)."""
    if obj.critic == "gan":
        yy = y if obj.conditional else None
        return O.gan_critic(a_r, a_f, yy, yy)
    l_r, l_f = ell(a_r, y), ell(a_f, y)
    if obj.critic == "wgan":
        return O.wgan_critic(l_r, l_f)
    nu = cfg.nu if obj.nu is None else obj.nu
    return O.ls_critic(l_r, l_f, O.margin(x_r, x_f, cfg.margin_scale), nu)


def _penalty(cfg: TrainConfig, loss_net, ell, x_r: Tensor, x_f: Tensor, y: Tensor,
             gen: torch.Generator) -> Tensor:
    fn = lambda x, yy: ell(loss_net(x), yy)  # noqa: E731
    if cfg.lipschitz in ("gp", "zero-gp"):
        eps = torch.rand(len(x_r), generator=gen).to(x_r.device)
        center = 1.0 if cfg.lipschitz == "gp" else 0.0
        return cfg.gp_weight * O.gradient_penalty(fn, x_r, x_f, y, eps, center)
    if cfg.lipschitz == "div":
        return O.div_penalty(fn, x_r, x_f, y, cfg.div_k, cfg.div_p)
    return x_r.new_zeros(())


def _loss_net_terms(obj: O.Objective, cfg: TrainConfig, D, b: _Batch, x_f: Tensor | None,
                    ell: Callable, gamma: float, gen: torch.Generator) -> Tensor:
    """(sup, critic, critic_ul, penalty) for one batch; ``x_f`` None means no adversary.

    total = sup + lam * critic + gamma * critic_ul + penalty (DESIGN.md: S + gamma S_ul + R).
    """
    n = b.n
    if x_f is None:
        sup = O.conditional_loss(D(b.x[:n]), b.y_crit[:n], cfg.loss_form).mean()
        zero = sup.new_zeros(())
        return torch.stack([sup, zero, zero, zero])
    a = D(torch.cat([b.x, x_f]))                     # one pass: BN sees reals and fakes
    a_r, a_f = a[:len(b.x)], a[len(b.x):]
    sup = O.conditional_loss(a_r[:n], b.y_crit[:n], cfg.loss_form).mean()
    if obj.conditional:
        crit = _critic(obj, cfg, a_r[:n], a_f[:n], b.x[:n], x_f[:n], b.y_crit[:n], ell)
        crit_u = (_critic(obj, cfg, a_r[n:], a_f[n:], b.x[n:], x_f[n:], b.y_crit[n:], ell)
                  if len(b.x) > n else sup.new_zeros(()))
    else:                                            # the critic ignores labels: all reals
        crit = _critic(obj, cfg, a_r, a_f, b.x, x_f, b.y_crit, ell)
        crit_u = sup.new_zeros(())
    pen = _penalty(cfg, D, ell, b.x, x_f, b.y_crit, gen)
    return torch.stack([sup, cfg.lam * crit, gamma * crit_u, pen])


def _generator_loss(cfg: TrainConfig, D, b: _Batch, x_g: Tensor, ell: Callable) -> Tensor:
    """mean L(G(z, y), y) (L_ul for fakes paired with unlabeled images), or feature matching."""
    if cfg.g_loss == "feature-matching":
        with torch.no_grad():
            _, h_r = D(b.x, features=True)
        _, h_f = D(x_g, features=True)
        return O.feature_matching(h_r, h_f)
    return ell(D(x_g), b.y_crit).mean()


def _load_resume(out: Path, cfg: TrainConfig) -> dict:
    ckpt = safe_torch_load(out / CHECKPOINT)
    saved = TrainConfig.from_dict(ckpt["config"])
    diff = cfg.diff(saved)
    if diff:
        detail = ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(cfg, k)!r}" for k in diff)
        raise ValueError(f"cannot resume {out}: the configuration differs ({detail}); use the "
                         f"run's own settings or start a new run with another --out")
    return ckpt


def check_run_folder(out: str | Path | None, cfg: TrainConfig, resume: bool) -> dict | None:
    """Validate ``out`` against ``resume`` before any work; returns the checkpoint to resume."""
    if out is None:
        if resume:
            raise ValueError("--resume needs --out pointing at the run to resume")
        return None
    out = Path(out)
    has = (out / CHECKPOINT).exists()
    if resume:
        if not has:
            raise ValueError(f"nothing to resume in {out}: it has no {CHECKPOINT}; drop --resume "
                             f"to start a new run there")
        return _load_resume(out, cfg)
    if has:
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or choose "
                         f"another --out")
    return None


def save_grid(path: Path, images: Tensor, nrow: int) -> None:
    """Write images in [-1, 1] as a PNG grid, atomically."""
    from torchvision.utils import save_image

    buf = io.BytesIO()
    save_image(images.float().cpu(), buf, nrow=nrow, normalize=True, value_range=(-1, 1),
               format="png", padding=1)
    atomic_write_bytes(path, buf.getvalue())


def train(model: CLSGAN, labeled: ImageSet, unlabeled: ImageSet | None = None,
          config: TrainConfig | None = None, *, test: ImageSet | None = None,
          out: str | Path | None = None, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] | None = None) -> TrainState:
    """Train ``model`` on ``labeled`` (and ``unlabeled`` images, targets ignored).

    ``out``: run folder for ``checkpoint.pt`` (every epoch), ``config.json``,
    ``metrics.jsonl`` and per-epoch sample grids; ``resume=True`` continues the run there.
    ``test``: evaluated after every epoch with the EMA classifier.
    """
    cfg = (config or TrainConfig()).resolved()
    obj = O.get_objective(cfg.objective)
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    if labeled.num_classes != model.num_classes or labeled.image_shape != model.image_shape:
        raise ValueError(f"data ({labeled.num_classes} classes, images {labeled.image_shape}) "
                         f"does not match the model ({model.num_classes}, {model.image_shape})")
    if cfg.lipschitz == "spectral-norm" and model.net_options.get("norm") != "spectral":
        raise ValueError("lipschitz='spectral-norm' needs a model built with norm='spectral' "
                         "(CLSGAN(..., norm='spectral'), or ganaug.build_model(config, data))")
    if len(labeled) == 0 or int(labeled.targets.min()) < 0:
        raise ValueError("the labeled set must be non-empty and every target in [0, C)")
    ckpt = check_run_folder(out, cfg, resume)
    out = Path(out) if out is not None else None
    device = pick_device(cfg.device)
    model.to(device)

    use_unl = obj.semi_supervised and unlabeled is not None and len(unlabeled) > 0
    x_lab, y_lab = labeled.images.to(device), labeled.targets.to(device)
    x_unl = unlabeled.images.to(device) if use_unl else None
    # an epoch is one pass's worth of steps over the whole training set (labeled and
    # unlabeled), whatever the objective uses, so objectives compare at equal step counts
    n_train = len(labeled) + (len(unlabeled) if unlabeled is not None else 0)
    steps = max(1, math.ceil(n_train / cfg.batch_size))
    adversarial = obj.critic != "none"
    bs = cfg.batch_size

    G, D = model.generator, model.loss_net
    wd = cfg.weight_decay if cfg.lipschitz == "weight-decay" else 0.0
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999), weight_decay=wd)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    ell = _ell(obj, cfg.loss_form)

    history: list[dict] = []
    start, step, seconds = 0, 0, 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["state"])
        opt_d.load_state_dict(ckpt["opt_d"])
        opt_g.load_state_dict(ckpt["opt_g"])
        start, step = int(ckpt["epoch"]), int(ckpt["step"])
        history, seconds = list(ckpt["history"]), float(ckpt["train_seconds"])
        log(f"resuming {out} from epoch {start}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / CONFIG, cfg.to_dict())
    grid = _grid_inputs(model, cfg.seed, device)

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        lr = cfg.lr * cfg.lr_decay ** (epoch // cfg.lr_decay_every)
        for opt in (opt_d, opt_g):
            for group in opt.param_groups:
                group["lr"] = lr
        gamma = cfg.gamma * (min(1.0, (epoch + 1) / cfg.gamma_rampup) if cfg.gamma_rampup else 1.0)
        torch.manual_seed(_derive_seed(cfg.seed, epoch, 0))   # noise layers, dropout
        gen = torch.Generator().manual_seed(_derive_seed(cfg.seed, epoch, 1))
        lab_stream = (_BalancedStream(labeled.targets, bs, gen, device) if cfg.balanced_labels
                      else _Stream(len(x_lab), bs, gen, device))
        unl_stream = _Stream(len(x_unl), bs, gen, device) if use_unl else None
        sums = torch.zeros(5, device=device)   # sup, critic, critic_ul, penalty, g (weighted)
        G.train()
        D.train()
        bar = _progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", progress)
        for it in range(steps):
            il = lab_stream.next()
            xl, yl = x_lab[il], y_lab[il]
            if use_unl:
                xu = x_unl[unl_stream.next()]
                cu = y_lab[torch.randint(len(y_lab), (len(xu),), generator=gen).to(device)]
                b = _Batch(torch.cat([xl, xu]), torch.cat([yl, cu]),
                           torch.cat([yl, torch.full_like(cu, -1)]), len(xl))
            else:
                b = _Batch(xl, yl, yl, len(xl))
            # ---------------- loss-network step
            x_f = None
            if adversarial:
                with torch.no_grad():
                    x_f = G(model.noise(len(b.y_gen), gen), b.y_gen)
            terms = _loss_net_terms(obj, cfg, D, b, x_f, ell, gamma, gen)
            _step(opt_d, terms.sum())
            if cfg.lipschitz == "clip":
                with torch.no_grad():
                    for p in D.parameters():
                        p.clamp_(-cfg.clip, cfg.clip)
            step += 1
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))   # warm-up of the average
            _ema_update(model.loss_net_ema, D, decay)
            # ---------------- generator step (every d_steps loss-network steps)
            g_loss = terms.new_zeros(())
            if adversarial and (it + 1) % cfg.d_steps == 0:
                z = model.noise(len(b.y_gen), gen)
                x_g = G(z, b.y_gen)
                g_loss = _generator_loss(cfg, D, b, x_g, ell)
                if cfg.mode_seeking:                  # a second fake per label: diversity
                    z2 = model.noise(len(b.y_gen), gen)
                    g_loss = g_loss + cfg.mode_seeking * O.mode_seeking(x_g, G(z2, b.y_gen), z, z2)
                _step(opt_g, g_loss)
                _ema_update(model.generator_ema, G, decay)
            sums += torch.cat([terms.detach(), g_loss.detach().view(1)])
            bar.update(1)
        bar.close()
        seconds += time.perf_counter() - t0
        vals = (sums / steps).tolist()   # one host sync per epoch
        rec = {"epoch": epoch + 1, "step": step, "lr": lr, "gamma": gamma,
               "d_loss": sum(vals[:4]), "sup_loss": vals[0], "critic": vals[1],
               "critic_ul": vals[2], "penalty": vals[3], "g_loss": vals[4],
               "seconds": round(seconds, 3)}
        if not all(math.isfinite(v) for v in vals):
            log(f"warning: non-finite losses at epoch {epoch + 1}: {rec}")
        if test is not None:
            rec["test_accuracy"] = evaluate_accuracy(model, test)
        history.append(rec)
        log(_line(rec, cfg.epochs))
        if out is not None:
            _write_epoch(out, model, cfg, history, step, seconds, opt_d, opt_g, grid)
    return TrainState(model, history, cfg, seconds)


GRID_COLUMNS = 10


def _grid_inputs(model: CLSGAN, seed: int, device) -> tuple[Tensor, Tensor]:
    """Fixed noise for the per-epoch sample grid: one row per class, the same noise in each
    column, so grids compare across epochs and across classes."""
    g = torch.Generator().manual_seed(_derive_seed(seed, 7))
    z = torch.rand(GRID_COLUMNS, model.noise_dim, generator=g) * 2 - 1
    y = torch.arange(model.num_classes).repeat_interleave(GRID_COLUMNS)
    return z.repeat(model.num_classes, 1).to(device), y.to(device)


def _write_epoch(out: Path, model: CLSGAN, cfg: TrainConfig, history: list[dict], step: int,
                 seconds: float, opt_d, opt_g, grid: tuple[Tensor, Tensor]) -> None:
    """Sample grids, metrics and the checkpoint, each written atomically."""
    epoch = history[-1]["epoch"]
    model.generator_ema.eval()
    with torch.no_grad():
        images = model.generator_ema(*grid)
    save_grid(out / "samples" / f"epoch_{epoch:04d}.png", images, GRID_COLUMNS)
    save_grid(out / SAMPLES, images, GRID_COLUMNS)
    atomic_write_text(out / METRICS, "".join(_json_line(r) for r in history))
    atomic_torch_save(out / CHECKPOINT, {
        "format": "ganaug", "version": 1, "model": model.spec(), "state": model.state_dict(),
        "config": cfg.to_dict(), "epoch": epoch, "step": step, "opt_d": opt_d.state_dict(),
        "opt_g": opt_g.state_dict(), "history": history, "train_seconds": seconds})


def _step(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def evaluate_accuracy(model: CLSGAN, data: ImageSet) -> float:
    pred = model.predict(data.images).cpu()
    return float((pred == data.targets).float().mean())


def _line(rec: dict, epochs: int) -> str:
    acc = f" test_acc={rec['test_accuracy']:.4f}" if "test_accuracy" in rec else ""
    return (f"epoch {rec['epoch']}/{epochs} d={rec['d_loss']:.4f} sup={rec['sup_loss']:.4f} "
            f"g={rec['g_loss']:.4f}{acc} ({rec['seconds']:.1f}s)")


def _json_line(rec: dict) -> str:
    import json
    return json.dumps(rec, sort_keys=True) + "\n"


class _NoBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


__all__ = ["train", "TrainState", "pick_device", "evaluate_accuracy", "check_run_folder",
           "save_grid", "CheckpointError"]
