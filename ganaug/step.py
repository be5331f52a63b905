"""One training step of the loop (DESIGN.md section 2), and what it is made of.

- the host-side draws of a step (:class:`_Draws`: index streams, labels, noise), the same
  global batch on every rank whatever the world size, of which each rank keeps its rows
  (:class:`_Shard`);
- the loss network's terms (S + gamma S_ul + Lipschitz penalty) and the generator's loss,
  assembled from the pure functions of :mod:`ganaug.objectives`;
- :class:`TrainStep`: the two updates with their optimisers, EMA and the fast path
  (:class:`Speed`: bf16 autocast, torch.compile, channels_last, fused Adam), gradients
  averaged over ranks when data-parallel.

:mod:`ganaug.train` drives it epoch by epoch; benchmarks/speed.py times it.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

from . import distributed as dist_
from . import objectives as O
from .config import TrainConfig
from .model import CLSGAN
from .model import to_device as _to_device


def _derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, stream): stable across runs and machines."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) + 0x632BE59BD9B4E019 + (h << 6) + (h >> 2))) & ((1 << 64) - 1)
    return h & ((1 << 63) - 1)


@torch.no_grad()
def clip_weights(net: torch.nn.Module, bound: float) -> None:
    """WGAN's weight clipping: every weight and bias of ``net`` into [-bound, bound], in place.

    A parametrised weight (the MLP loss network's weight normalisation) is clipped as the
    layer uses it, W = g v / |v|, and written back through its parametrisation. Clamping g
    and v themselves would cap every row's norm at ``bound``: a network that outputs
    constants (what ganaug did before 2026-12-07)."""
    for m in net.modules():
        if isinstance(m, parametrize.ParametrizationList):
            continue                            # its originals are set below, through it
        for p in m.parameters(recurse=False):
            p.clamp_(-bound, bound)
        if parametrize.is_parametrized(m):
            for name, chain in m.parametrizations.items():
                value = getattr(m, name).clamp(-bound, bound)
                for unmake in reversed(chain):                # (g, v) from W, for weight norm
                    value = unmake.right_inverse(value)
                values = [value] if chain.is_tensor else list(value)
                originals = [chain.original] if chain.is_tensor else \
                    [getattr(chain, f"original{i}") for i in range(len(values))]
                for original, v in zip(originals, values, strict=True):
                    original.copy_(v)           # in place: the optimiser's tensors stay put


@torch.no_grad()
def step_kind(step: int, cfg: TrainConfig, adversarial: bool) -> tuple[bool, bool]:
    """What training step ``step`` (1-based, counted over the whole run) does besides the loss
    network's update: (the Lipschitz penalty, the generator's update). The lazy penalty comes
    on the 1st, k+1-th, ... step (k = ``penalty_every``); the generator steps after every
    ``d_steps`` loss-network steps, counted over the run (per epoch, an epoch's leftover steps
    would get no generator step)."""
    return (step - 1) % cfg.penalty_every == 0, adversarial and step % cfg.d_steps == 0


def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    e_params, params = list(ema.parameters()), list(net.parameters())
    torch._foreach_lerp_(e_params, [p.detach() for p in params], 1.0 - decay)
    for eb, b in zip(ema.buffers(), net.buffers()):
        eb.copy_(b)


class _Stream:
    """Endless shuffled batches of indices into n items (on the CPU), from a local generator."""

    def __init__(self, n: int, batch: int, gen: torch.Generator):
        self.n, self.batch, self.gen = n, batch, gen
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
        return torch.cat(out)


class _BalancedStream:
    """Endless batches of indices drawn class-balanced (with replacement): every class is
    equally likely, whatever its count, then an item of that class uniformly."""

    def __init__(self, targets: Tensor, batch: int, gen: torch.Generator):
        counts = torch.bincount(targets.cpu())
        self.weights = (1.0 / counts.double())[targets.cpu()]
        self.batch, self.gen = batch, gen

    def next(self) -> Tensor:
        return torch.multinomial(self.weights, self.batch, replacement=True, generator=self.gen)


@dataclass(frozen=True)
class _Shard:
    """This process's rows of every global batch (data-parallel training, see train()).

    Every rank draws the same global batch (indices, labels, noise, penalty points) from
    the same seeded generators, so the data stream does not depend on the world size W and
    a checkpoint resumes under any W. Rank r keeps rows r, r + W, r + 2W, ... of the
    labeled part and of the unlabeled part: equal shares of each, so the mean over ranks of
    the per-rank means of every term is its global mean, and the averaged gradients are the
    single-process gradients. With W = 1 every tensor passes through untouched.
    """
    rank: int = 0
    world: int = 1

    def part(self, t: Tensor) -> Tensor:
        """This rank's rows of one part (labeled or unlabeled) of a batch."""
        return t if self.world == 1 else t[self.rank::self.world]

    def rows(self, t: Tensor, n: int) -> Tensor:
        """This rank's rows of a whole batch whose first ``n`` rows are labeled."""
        return t if self.world == 1 else torch.cat([self.part(t[:n]), self.part(t[n:])])


def _ell(obj: O.Objective, form: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss the critic compares (and the generator minimises), per sample: L(x, y),
    L_ul(x) where y = -1; unconditional, -logsumexp a (``objectives.logit_loss``) for the LS
    and WGAN critics, -log P(real | x) (``objectives.real_loss``) for the original GAN's."""
    if obj.logit_critic:
        return lambda a, y: O.logit_loss(a)
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
    x_view: a second view of the unlabeled rows (own shift) for the consistency term, or None.
    """
    x: Tensor
    y_gen: Tensor
    y_crit: Tensor
    n: int
    x_view: Tensor | None = None


@dataclass
class _Noise:
    """One step's random inputs besides the data: the fakes' noise for the loss network's
    step, the penalty's interpolation points, and the generator step's noise (None where
    unused, e.g. z on steps without a generator update)."""
    z_f: Tensor | None = None
    eps: Tensor | None = None
    z: Tensor | None = None
    z2: Tensor | None = None


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


def _penalty(cfg: TrainConfig, nets: "_Nets", ell, x_r: Tensor, x_f: Tensor, y: Tensor,
             eps: Tensor | None, penalize: bool) -> Tensor:
    """The Lipschitz penalty; with ``penalty_every`` k > 1 (lazy regularisation) k times the
    penalty when ``penalize``, else nothing computed (zero)."""
    if not penalize:
        return x_r.new_zeros(())
    k = cfg.penalty_every
    fn = lambda x, yy: ell(nets.d(x, eager=True), yy)  # noqa: E731  (differentiated twice)
    with nets.frozen_stats():                    # interpolates: not the loss network's data
        if cfg.lipschitz in ("gp", "zero-gp"):
            center = 1.0 if cfg.lipschitz == "gp" else 0.0
            return k * cfg.gp_weight * O.gradient_penalty(fn, x_r, x_f, y, eps, center)
        if cfg.lipschitz == "div":
            return k * O.div_penalty(fn, x_r, x_f, y, cfg.div_k, cfg.div_p)
    return x_r.new_zeros(())


def _loss_net_terms(obj: O.Objective, cfg: TrainConfig, nets: "_Nets", b: _Batch,
                    x_f: Tensor | None, ell: Callable, gamma: float, eps: Tensor | None,
                    penalize: bool = True) -> Tensor:
    """(sup, critic, critic_ul, penalty, consistency) for one batch; ``x_f`` None means no
    adversary.

    total = sup + lam * critic + gamma * critic_ul + penalty (DESIGN.md: S + gamma S_ul + R),
    + consistency x the mean consistency of the unlabeled rows with their second view.
    """
    n = b.n
    if x_f is None:
        sup = O.conditional_loss(nets.d(b.x[:n]), b.y_crit[:n], cfg.loss_form).mean()
        zero = sup.new_zeros(())
        return torch.stack([sup, zero, zero, zero, zero])
    a = nets.d(torch.cat([b.x, x_f]))                # one pass: BN sees reals and fakes
    a_r, a_f = a[:len(b.x)], a[len(b.x):]
    sup = O.conditional_loss(a_r[:n], b.y_crit[:n], cfg.loss_form).mean()
    if obj.conditional:
        crit = _critic(obj, cfg, a_r[:n], a_f[:n], b.x[:n], x_f[:n], b.y_crit[:n], ell)
        crit_u = (_critic(obj, cfg, a_r[n:], a_f[n:], b.x[n:], x_f[n:], b.y_crit[n:], ell)
                  if len(b.x) > n else sup.new_zeros(()))
    else:                                            # the critic ignores labels: all reals
        crit = _critic(obj, cfg, a_r, a_f, b.x, x_f, b.y_crit, ell)
        crit_u = sup.new_zeros(())
    pen = _penalty(cfg, nets, ell, b.x, x_f, b.y_crit, eps, penalize)
    cons = sup.new_zeros(())
    if cfg.consistency and b.x_view is not None:
        with torch.no_grad():                     # the target: the teacher on another view
            a_t = nets.teacher(b.x_view, cfg.consistency_teacher)
        cons = cfg.consistency * O.consistency(a_r[n:], a_t).mean()
    return torch.stack([sup, cfg.lam * crit, gamma * crit_u, pen, cons])


def _generator_loss(cfg: TrainConfig, nets: "_Nets", b: _Batch, x_g: Tensor, ell: Callable,
                    world: int) -> Tensor:
    """(2,): the generator's loss in two parts that add up to it. Either mean L(G(z, y), y)
    (L_ul for fakes paired with unlabeled images) and 0, or feature matching (on the global
    batch's mean features when data-parallel) and ``cfg.g_cond_weight`` x mean L(G(z, y), y)
    over every fake with the label it was drawn for (the conditional term, logged apart).
    With ``cfg.g_cond_share`` s the weight is s / (1 - s) x feature matching / mean L, both
    read without gradient, so the term is a share s of the loss at every step (measured in
    benchmarks/README.md: 0.5 suited MNIST, not digits).

    A loss network with BatchNorm sees the fakes in one pass with the batch's reals, as in
    its own update: a pass of fakes alone would normalise them by their own statistics,
    which hides from the generator every difference of mean and scale per channel (feature
    matching could not tell 3 x the real images from them). Without BatchNorm the rows are
    independent and the two passes stay separate (the same numbers).
    """
    m, joint = len(b.x), nets.batch_stats
    if cfg.g_loss == "feature-matching":
        which = True if cfg.fm_layers == "last" else cfg.fm_layers
        r = b.n if cfg.fm_real == "unlabeled" and m > b.n else 0    # the real rows matched
        if joint:                                # reals beside the fakes, as in the loss
            a, h = nets.d(torch.cat([b.x, x_g]), features=which)   # network's own pass
            a_f = a[m:]
            h_r = h[r:m].detach() if which is True else [t[r:m].detach() for t in h]
            h_f = h[m:] if which is True else [t[m:] for t in h]
        else:
            with torch.no_grad():
                _, h_r = nets.d(b.x[r:], features=which)
            a_f, h_f = nets.d(x_g, features=which)
        if which is True:
            loss = O.feature_matching(dist_.global_row_mean(h_r, world),
                                      dist_.global_row_mean(h_f, world))
        else:
            loss = O.feature_matching([dist_.global_row_mean(h, world) for h in h_r],
                                      [dist_.global_row_mean(h, world) for h in h_f])
        cond = loss.new_zeros(())
        if cfg.g_cond_weight or cfg.g_cond_share:   # a per-rank mean over equal shards
            cond = O.conditional_loss(a_f, b.y_gen, cfg.loss_form).mean()
            if cfg.g_cond_share:
                s = cfg.g_cond_share
                cond = cond * (s / (1 - s) * loss.detach() / cond.detach().clamp_min(1e-12))
            else:
                cond = cfg.g_cond_weight * cond
        return torch.stack([loss, cond])
    a_f = nets.d(torch.cat([b.x, x_g]))[m:] if joint else nets.d(x_g)
    loss = ell(a_f, b.y_crit).mean()
    return torch.stack([loss, loss.new_zeros(())])


def _mode_seeking(x1: Tensor, x2: Tensor, z1: Tensor, z2: Tensor, world: int) -> Tensor:
    """O.mode_seeking, with its two mean distances over the global batch when data-parallel."""
    if world == 1:
        return O.mode_seeking(x1, x2, z1, z2)
    dx = dist_.global_row_mean((x1 - x2).abs().flatten(1).mean(1, keepdim=True), world)
    dz = dist_.global_row_mean((z1 - z2).abs().mean(1, keepdim=True), world)
    return O.mode_seeking_from_distances(dx.squeeze(), dz.squeeze())


# ----------------------------------------------------------------------------- the step

@dataclass(frozen=True)
class Speed:
    """TrainConfig's speed block resolved for a device: what "auto" means where."""
    amp: torch.dtype | None        # autocast dtype of the networks' forward passes
    compile: str | None            # torch.compile mode, None = eager
    channels_last: bool            # nets and images in NHWC memory order
    fused_adam: bool

    @classmethod
    def resolve(cls, cfg: TrainConfig, arch: str, device: torch.device) -> "Speed":
        cuda = device.type == "cuda"
        on = lambda v, auto: v == "on" or (v == "auto" and auto)  # noqa: E731
        mode = None
        if cfg.compile not in ("off", "auto") or (cfg.compile == "auto" and cuda):
            mode = "default" if cfg.compile in ("on", "auto") else cfg.compile
        # auto: bf16 where the GPU has it natively (Ampere, compute capability 8.0, and
        # later); a V100 or T4 would emulate it, slower than fp32
        amp = cfg.amp == "bf16" or (cfg.amp == "auto" and cuda and
                                    torch.cuda.get_device_capability(device) >= (8, 0))
        return cls(torch.bfloat16 if amp else None, mode,
                   on(cfg.channels_last, cuda and arch == "conv"), on(cfg.fused_adam, cuda))

    def describe(self) -> str:
        parts = ["bf16 autocast" if self.amp is not None else "",
                 f"torch.compile ({self.compile})" if self.compile else "",
                 "channels_last" if self.channels_last else "",
                 "fused Adam" if self.fused_adam else ""]
        return ", ".join(p for p in parts if p) or "fp32 eager"

    def warning(self, device: torch.device, cpu_flags: set[str] | None = None) -> str | None:
        """A line for the log when bf16 autocast runs on a CPU without bf16 instructions
        (no ``amx_bf16`` or ``avx512_bf16`` among ``cpu_flags``, by default
        /proc/cpuinfo's): there every bf16 matmul is emulated, several times slower than
        fp32. None where that cannot be told (no /proc/cpuinfo) or does not apply."""
        if self.amp is None or device.type != "cpu":
            return None
        flags = _cpu_flags() if cpu_flags is None else cpu_flags
        if flags is None or flags & {"amx_bf16", "avx512_bf16"}:
            return None
        return ("warning: bf16 autocast on a CPU without bf16 instructions (no amx_bf16 or "
                "avx512_bf16 in /proc/cpuinfo) is emulated and several times slower than "
                "fp32 (a training step of the MNIST MLP ran at 0.13 times the fp32 speed, "
                "benchmarks/speed.py --ablate); use --amp off")


def _cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The first processor's feature flags from /proc/cpuinfo (Linux); None elsewhere."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None


class _Nets:
    """How the step calls the networks: under autocast, outputs cast back to fp32 so every
    objective runs in fp32, and through torch.compile; each optional. ``d(eager=True)``
    skips compile: the gradient penalties differentiate the loss network twice, which
    compiled graphs do not support. A failed compile falls back to eager (``fall_back``).
    ``teacher`` gives the consistency term's targets (from ``D_ema``, the loss network's
    weight average, or ``D`` itself)."""

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, speed: Speed,
                 device: torch.device, log: Callable[[str], None],
                 D_ema: torch.nn.Module | None = None):
        self.G, self.D, self.amp, self.device_type, self.log = G, D, speed.amp, device.type, log
        self.D_ema = D_ema
        self._g, self._d = G, D
        self._bn = [m for m in D.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        if speed.compile:
            kw = {} if speed.compile == "default" else {"mode": speed.compile}
            # each weight-normalised net is a class of its own to dynamo: runs in one process
            # (--seeds, the benchmarks) would recompile against one recompile limit and,
            # past it, run eager unannounced. Each run starts with empty compile caches.
            torch._dynamo.reset()
            # random ops (the noise layers, dropout) from torch's own generator, as eager
            # draws them: inductor's generator would change the run, not just its rounding
            from torch._inductor import config as inductor_config
            inductor_config.fallback_random = True
            try:
                self._g = torch.compile(G, dynamic=False, **kw)
                self._d = torch.compile(D, dynamic=False, **kw)
            except Exception as e:               # e.g. no compiler support on this platform
                self.fall_back(e)

    @property
    def batch_stats(self) -> bool:
        """Whether the loss network normalises by batch statistics (BatchNorm)."""
        return bool(self._bn)

    @contextmanager
    def frozen_stats(self):
        """Inside the block the loss network's BatchNorm layers normalise by the batch's
        statistics and leave their running statistics be: only its update pass (the
        batch's reals and fakes together) gathers them, not the penalty's interpolates,
        the generator's step or a "net" teacher."""
        for m in self._bn:                        # batch statistics, no running ones kept
            m.track_running_stats = False
        try:
            yield
        finally:
            for m in self._bn:
                m.track_running_stats = True

    @property
    def compiled(self) -> bool:
        return self._d is not self.D

    def fall_back(self, e: BaseException) -> None:
        msg = (str(e).strip().splitlines() or [""])[0][:200]
        self.log(f"torch.compile failed ({type(e).__name__}: {msg}); continuing eager")
        self._g, self._d = self.G, self.D

    def _autocast(self):
        return torch.autocast(self.device_type, dtype=self.amp) if self.amp else nullcontext()

    def g(self, z: Tensor, y: Tensor) -> Tensor:
        with self._autocast():
            x = self._g(z, y)
        return x.float()                          # a no-op in fp32

    def teacher(self, x: Tensor, which: str) -> Tensor:
        """Activations of the consistency term's teacher: "ema", the loss network's weight
        average (eval mode: no noise layers; Tarvainen & Valpola's mean teacher), or "net",
        the loss network itself with its own noise draws (a Pi-model with a fixed target)."""
        if which == "net":
            with self.frozen_stats():
                return self.d(x)
        if self.D_ema is None:
            raise ValueError("consistency_teacher='ema' needs the loss network's EMA")
        with self._autocast():
            return self.D_ema(x).float()

    def d(self, x: Tensor, features: bool | str = False, eager: bool = False):
        net = self.D if eager else self._d
        with self._autocast():
            out = net(x, features=features) if features else net(x)
        if not features:
            return out.float()
        if features == "all":
            if not isinstance(out[1], (list, tuple)):
                raise TypeError(f"fm_layers='all' needs the loss network's forward(x, "
                                f"features='all') to return (activations, [h_1, ..., h_L]); "
                                f"{type(self.D).__name__} returned {type(out[1]).__name__}. "
                                f"Support it in the network, or use fm_layers='last'")
            return out[0].float(), [h.float() for h in out[1]]
        return out[0].float(), out[1].float()


class TrainStep:
    """One training iteration on a drawn batch: the loss network's update (and clipping),
    its EMA, then, when the batch carries generator noise, the generator's update and its
    EMA. Owns the optimisers and the fast path (TrainConfig's speed block). Data-parallel
    when ``world > 1``: the gradients are averaged over the ranks before every update.

    :func:`train` drives it; so does benchmarks/speed.py. ``cfg`` must be resolved.
    """

    def __init__(self, model: CLSGAN, cfg: TrainConfig, device: torch.device, world: int = 1,
                 log: Callable[[str], None] = lambda s: None):
        self.model, self.cfg, self.world = model, cfg, world
        self.obj = O.get_objective(cfg.objective)
        self.adversarial = self.obj.critic != "none"
        self.ell = _ell(self.obj, cfg.loss_form)
        self.speed = Speed.resolve(cfg, model.arch, device)
        model.to(device)
        if self.speed.channels_last:             # before the optimisers see the parameters
            model.to(memory_format=torch.channels_last)
        G, D = model.generator, model.loss_net
        wd = cfg.weight_decay if cfg.lipschitz == "weight-decay" else 0.0
        fused = {"fused": True} if self.speed.fused_adam else {}
        self.opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999),
                                      weight_decay=wd, **fused)
        self.opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999), **fused)
        self.nets = _Nets(G, D, self.speed, device, log, model.loss_net_ema)

    def __call__(self, b: _Batch, nz: _Noise, gamma: float, decay: float,
                 penalize: bool = True) -> Tensor:
        """(7,) detached: sup, lam * critic, gamma * critic_ul, penalty, consistency,
        generator loss, and the generator loss's conditional term (a part of it, see
        ``_generator_loss``). ``penalize`` False skips the Lipschitz penalty
        (``penalty_every``: the training loop passes True on every k-th step)."""
        terms = self._guarded(lambda: self._loss_net_step(b, nz, gamma, penalize))
        D = self.model.loss_net
        if self.cfg.lipschitz == "clip":
            clip_weights(D, self.cfg.clip)
        _ema_update(self.model.loss_net_ema, D, decay)
        g_terms = terms.new_zeros(2)
        if nz.z is not None:
            g_terms = self._guarded(lambda: self._generator_step(b, nz))
            _ema_update(self.model.generator_ema, self.model.generator, decay)
        return torch.cat([terms.detach(), g_terms.detach()])

    def _loss_net_step(self, b: _Batch, nz: _Noise, gamma: float, penalize: bool) -> Tensor:
        x_f = None
        if self.adversarial:
            with torch.no_grad():
                x_f = self.nets.g(nz.z_f, b.y_gen)
        terms = _loss_net_terms(self.obj, self.cfg, self.nets, b, x_f, self.ell, gamma, nz.eps,
                                penalize)
        self._update(self.opt_d, terms.sum())
        return terms

    def _generator_step(self, b: _Batch, nz: _Noise) -> Tensor:
        """(2,): the generator's loss (mode seeking included) and its conditional term."""
        x_g = self.nets.g(nz.z, b.y_gen)
        with self.nets.frozen_stats():
            parts = _generator_loss(self.cfg, self.nets, b, x_g, self.ell, self.world)
        g_loss = parts.sum()
        if self.cfg.mode_seeking:                 # a second fake per label: diversity
            x_g2 = self.nets.g(nz.z2, b.y_gen)
            g_loss = g_loss + self.cfg.mode_seeking * _mode_seeking(x_g, x_g2, nz.z, nz.z2,
                                                                    self.world)
        self._update(self.opt_g, g_loss)
        return torch.stack([g_loss, parts[1]])

    def _update(self, opt: torch.optim.Optimizer, loss: Tensor) -> None:
        """Gradients of ``loss`` for ``opt``'s parameters only: the generator's update does
        not compute the loss network's weight gradients it would throw away (the same
        numbers as a full backward for the parameters that step)."""
        params = [p for g in opt.param_groups for p in g["params"]]
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        dist_.average_gradients(params, self.world)
        opt.step()

    def _guarded(self, part: Callable[[], Tensor]) -> Tensor:
        """Run one update; compile errors surface at a compiled net's first forward or
        backward, before the optimiser steps: then log, go eager and run it again. Running
        out of memory is not a compile error: it propagates (eager would need no less)."""
        if not self.nets.compiled:
            return part()
        try:
            return part()
        except torch.OutOfMemoryError:
            raise
        except Exception as e:
            self.nets.fall_back(e)
            return part()


def shift_images(x: Tensor, dx: Tensor, dy: Tensor, k: int) -> Tensor:
    """Each image ``x[i]`` (N, C, H, W) moved ``dx[i]`` pixels right and ``dy[i]`` down
    (integers in [-k, k]); the pixels that come in repeat the edge. Same memory format as
    ``x``; on ``x``'s device, without a host sync."""
    n, c, h, w = x.shape
    pad = torch.nn.functional.pad(x, (k, k, k, k), mode="replicate")
    rows = (k - dy).reshape(n, 1, 1, 1) + torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = (k - dx).reshape(n, 1, 1, 1) + torch.arange(w, device=x.device).view(1, 1, 1, w)
    i = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    ch = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return torch.empty_like(x).copy_(pad[i, ch, rows, cols])


class _Draws:
    """The host side of each step, for one epoch: the global batch's indices, labels and
    noise from the epoch's generator, always in the same order (so results depend on
    neither the device nor the world size), then this rank's rows, moved to the device."""

    def __init__(self, cfg: TrainConfig, x_lab: Tensor, y_lab: Tensor, targets: Tensor,
                 x_unl: Tensor | None, gen: torch.Generator, shard: _Shard, noise_dim: int,
                 adversarial: bool, device: torch.device):
        bs = cfg.batch_size
        self.lab = (_BalancedStream(targets, bs, gen) if cfg.balanced_labels
                    else _Stream(len(x_lab), bs, gen))
        self.mu = bs * cfg.unlabeled_ratio            # unlabeled rows of the global batch
        self.unl = _Stream(len(x_unl), self.mu, gen) if x_unl is not None else None
        self.x_lab, self.y_lab, self.x_unl, self.gen, self.shard = x_lab, y_lab, x_unl, gen, shard
        self.bs, self.noise_dim, self.adversarial, self.device = bs, noise_dim, adversarial, device
        self.penalty = adversarial and cfg.lipschitz in ("gp", "zero-gp")
        self.mode_seeking = bool(cfg.mode_seeking)
        self.translate = cfg.translate
        self.view = bool(cfg.consistency) and x_unl is not None

    def next(self, generator_step: bool) -> tuple[_Batch, _Noise]:
        sh, dev, gen, bs, mu = self.shard, self.device, self.gen, self.bs, self.mu
        il = _to_device(sh.part(self.lab.next()), dev)
        xl, yl = self.x_lab[il], self.y_lab[il]
        if self.unl is not None:
            iu = _to_device(sh.part(self.unl.next()), dev)
            ic = _to_device(sh.part(torch.randint(len(self.y_lab), (mu,), generator=gen)), dev)
            xu, cu = self.x_unl[iu], self.y_lab[ic]        # cu: label-prior classes for fakes
            b = _Batch(torch.cat([xl, xu]), torch.cat([yl, cu]),
                       torch.cat([yl, torch.full_like(cu, -1)]), len(xl))
        else:
            b = _Batch(xl, yl, yl, len(xl))
        n = bs + (mu if self.unl is not None else 0)      # rows of the global batch
        rows = lambda t: _to_device(sh.rows(t, bs), dev)  # noqa: E731
        noise = lambda: rows(torch.rand(n, self.noise_dim, generator=gen) * 2 - 1)  # noqa: E731
        nz = _Noise()
        if self.adversarial:
            nz.z_f = noise()
            if self.penalty:
                nz.eps = rows(torch.rand(n, generator=gen))
        if generator_step:
            nz.z = noise()
            if self.mode_seeking:
                nz.z2 = noise()
        k = self.translate

        def shifted(x: Tensor, m: int, place: Callable[[Tensor], Tensor]) -> Tensor:
            """``x`` moved by m global shifts drawn now; ``place`` keeps this rank's rows and
            sends them to the device in one copy, as an (m, 2) tensor."""
            d = place(torch.randint(-k, k + 1, (2, m), generator=gen).T)
            return shift_images(x, d[:, 0], d[:, 1], k)

        x_unl = b.x[b.n:]
        if k:                              # drawn last: translate=0 leaves the stream as it was
            b.x = shifted(b.x, n, rows)
        if self.view:                      # the consistency term's second view, drawn after
            b.x_view = (shifted(x_unl, mu, lambda t: _to_device(sh.part(t), dev)) if k
                        else x_unl)
        return b, nz
