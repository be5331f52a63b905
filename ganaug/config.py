"""TrainConfig: every setting of a run, typed, with its reason; validated before any work."""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ._io import plain
from .data.sources import check_dataset_name
from .data.splits import check_val_per_class
from .nets import as_int, check_net_options, list_archs, non_negative_number
from .objectives import get_objective

LIPSCHITZ = ("none", "weight-decay", "gp", "zero-gp", "div", "clip", "spectral-norm")
G_LOSSES = ("auto", "loss", "feature-matching")
CONSISTENCY_TEACHERS = ("ema", "net")   # whose predictions the consistency term targets
FM_LAYERS = ("last", "all")   # which hidden layers feature matching compares
FM_REAL = ("all", "unlabeled")  # which real images of the batch it matches the fakes with
G_COND_WEIGHT = 3.0   # g_cond_weight=None with feature matching: measured on digits
PENALTIES = ("gp", "zero-gp", "div")   # the regularisers computed as a penalty term
GP_WEIGHTS = {"gp": 10.0, "zero-gp": 0.1}   # gp_weight=None: WGAN-GP's 10; 0.1 measured on digits
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
SPEED_CHOICES = {"amp": ("auto", "bf16", "off"), "compile": ("auto", "on", "off", *COMPILE_MODES),
                 "channels_last": ("auto", "on", "off"), "fused_adam": ("auto", "on", "off")}
SEED_RANGE = (-2 ** 63, 2 ** 64 - 1)   # what torch.manual_seed and torch.Generator take
FOLDER = "folder:"                     # dataset folder:PATH


def flag_name(key: str) -> str:
    """How a TrainConfig field is given on the command line, for messages."""
    return "--net-option" if key == "net_options" else "--" + key.replace("_", "-")


def _refuse_no_effect(c: TrainConfig, obj: Any, default_gp: float) -> None:
    """ValueError for a setting that this objective and regulariser would silently ignore
    (the run would train exactly as without it), naming where it does act."""
    default = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

    def changed(name: str) -> bool:
        return getattr(c, name) != default[name]

    def refuse(what: str, why: str, fix: str) -> None:      # name the flag beside the field
        fix = re.sub(r"leave (\w+) unset", lambda m: f"leave {m[1]} ({flag_name(m[1])}) unset"
                     if m[1] in default else m[0], fix)
        raise ValueError(f"{what} {why}; {fix}")

    def refuse_given(settings: tuple, why: str, leave: Callable[[str], str], tail: str = ""
                     ) -> None:                       # name only the (name, given) pairs given
        given = [n for n, on in settings if on]
        refuse(" and ".join(given), f"{'has' if len(given) == 1 else 'have'} no effect: {why}",
               "leave " + " and ".join(leave(n) for n in given) + tail)

    trains_g = obj.critic != "none"
    if c.gp_weight != default_gp and c.lipschitz not in ("gp", "zero-gp"):
        refuse("gp_weight", f"weights the gp / zero-gp gradient penalty, but this run's "
               f"regulariser is {c.lipschitz!r}",
               "use --lipschitz gp or zero-gp (div is weighted by --div-k) or leave gp_weight "
               "unset")
    if not trains_g:
        if c.mode_seeking or c.d_steps != 1:
            refuse_given((("mode_seeking", bool(c.mode_seeking)), ("d_steps", c.d_steps != 1)),
                         f"objective {c.objective!r} trains no generator",
                         lambda n: f"{n} ({flag_name(n)}) at {default[n]:g}")
        if c.standing_stats:
            refuse("standing_stats", f"re-estimates the generator's BatchNorm statistics, but "
                   f"objective {c.objective!r} trains no generator", "leave it at 0")
        if c.lipschitz in PENALTIES:
            refuse(f"lipschitz {c.lipschitz!r}", f"is a penalty between real and generated "
                   f"images, and objective {c.objective!r} generates none",
                   "use --lipschitz weight-decay (its default), spectral-norm, clip or none")
        if c.g_loss != "loss" or changed("lam"):
            refuse_given((("g_loss", c.g_loss != "loss"), ("lam", changed("lam"))),
                         f"objective {c.objective!r} trains no generator and has no "
                         f"adversarial term", lambda n: f"{n} ({flag_name(n)})", " unset")
    if c.standing_stats and c.net_options.get("g_norm") == "none":
        refuse("standing_stats", "re-estimates the generator's BatchNorm statistics, but "
               "net_options g_norm='none' builds it without BatchNorm", "leave it at 0")
    if obj.critic != "ls" and changed("margin_scale"):
        refuse("margin_scale", f"scales the margin of the loss-sensitive critic, but objective "
               f"{c.objective!r} has a {obj.critic!r} critic",
               "use an LS objective (sscls, cls, ls, gls) or leave margin_scale unset")
    if changed("nu") and not (obj.critic == "ls" and obj.nu is None):   # gls alone takes it
        refuse("nu", f"is the slope of the GLS-GAN cost, used by objective gls only, not "
               f"{c.objective!r}", "use --objective gls or leave nu unset")
    for name, where in (("clip", "clip"), ("div_k", "div"), ("div_p", "div"),
                        ("weight_decay", "weight-decay")):
        if changed(name) and c.lipschitz != where:
            refuse(name, f"belongs to --lipschitz {where}, but this run's regulariser is "
                   f"{c.lipschitz!r}", f"use --lipschitz {where} or leave {name} unset")
    if changed("lr_decay_every") and c.lr_decay == 1.0:
        refuse("lr_decay_every", "spaces out the learning-rate decay, which is off (lr_decay 1)",
               "set --lr-decay below 1 or leave lr_decay_every unset")
    if changed("consistency_teacher") and not c.consistency:
        refuse("consistency_teacher", "chooses the teacher of the consistency term, which is "
               "off (consistency 0)", "set --consistency to a positive weight or leave "
               "consistency_teacher unset")
    if (changed("gamma") or c.gamma_rampup) and not (obj.conditional and obj.semi_supervised):
        uses = ("uses no unlabeled images" if not obj.semi_supervised else
                "puts its unlabeled images into the one lam-weighted critic")
        refuse("gamma and gamma_rampup", f"weight the unlabeled term of sscls, but objective "
               f"{c.objective!r} {uses}", "use --objective sscls or leave them unset")


def standing_stats_count(v: Any, name: str = "standing_stats") -> int:
    """``v`` as a count of generated images for standing statistics: 0 (off) or at least 2
    (BatchNorm needs two); a ValueError naming ``name`` otherwise."""
    n = as_int(v)
    if n is None or n < 0 or n == 1:
        raise ValueError(f"{name} is a number of generated images, 0 (off) or at least 2 "
                         f"(e.g. 2048), got {v!r}")
    return n


def folder_path(dataset: str) -> str | None:
    """The PATH of a ``folder:PATH`` dataset (as spelled), or None for another dataset."""
    return dataset[len(FOLDER):] if dataset.startswith(FOLDER) else None


def _absolute_folder(dataset: str) -> str:
    """``folder:PATH`` with PATH absolute (``~`` expanded), so the run folder's config names
    the same images from any working directory; other datasets as they are."""
    path = folder_path(dataset)
    return dataset if path is None else FOLDER + os.path.abspath(os.path.expanduser(path))


@dataclass
class TrainConfig:
    # ---- data
    dataset: str = "digits"            # digits | mnist | svhn | cifar10 | folder:PATH
    data_root: str = "./data"          # torchvision root (ignored for digits and folder:PATH)
    download: bool = False             # let torchvision fetch missing files (needs internet)
    image_size: int | None = None      # pad MNIST / resize folders to this side (None: native)
    labels_per_class: int | None = 10  # labels kept per class; None (or "all") = all
    balanced_labels: bool = False      # draw labeled batches class-balanced (imbalanced data)
    translate: int = 0                 # shift each real training image by up to this many
                                       # pixels per step (data augmentation; 0: off)
    data_seed: int = 0                 # which images are labeled; separate from `seed`
    val_per_class: int = 0             # labeled images per class held out of training to
                                       # pick the best epoch by (best.pt); 0: none
    patience: int = 0                  # stop once this many epochs in a row bring no higher
                                       # validation accuracy (needs validation images);
                                       # 0: never; free to change on resume
    # ---- networks
    arch: str = "auto"                 # mlp | conv | auto (mlp up to 784 values, 28x28x1)
    noise_dim: int = 100               # uniform noise in [-1, 1], concatenated with one-hot y
    # ---- objective (DESIGN.md section 2)
    objective: str = "sscls"           # see ganaug.objectives.list_objectives()
    lipschitz: str = "auto"            # regulariser; auto = the objective's own default
    lam: float = 1.0                   # lambda: weight of the labeled hinge / critic term
    gamma: float = 1.0                 # weight of the unlabeled term (paper: 0.25 .. 2)
    gamma_rampup: int = 0              # epochs of linear ramp-up of gamma from 0
    margin_scale: float = 2.5          # Delta = scale * mean|x - x'| (ref code ~2.5 x mean)
    nu: float = 0.5                    # GLS slope, <= 1 (objective gls only; -1 gives |t|)
    loss_form: str = "semi"            # semi: extra "fake" logit 0 (paper); softmax: plain CE
    g_loss: str = "auto"               # loss (L of its fakes) | feature-matching | auto:
                                       # feature matching for sscls, else the objective's own
    g_cond_weight: float | None = None  # + this x mean L(G(z, y), y) in the feature-matching
                                       # generator's loss, so samples follow their labels;
                                       # None: 3 for a conditional objective, else 0
    g_cond_share: float = 0.0          # instead of a fixed weight: the term's share of that
                                       # loss, held at every step (0: use g_cond_weight)
    fm_layers: str = "last"            # feature matching on the loss network's last hidden
                                       # layer (Salimans et al.) or on "all" hidden layers
    fm_real: str = "all"               # the real side of feature matching: "all" the batch's
                                       # real images or its "unlabeled" ones (DESIGN.md,
                                       # Salimans et al.)
    mode_seeking: float = 0.0          # weight of MSGAN's diversity term in G's loss (0: off)
    consistency: float = 0.0           # weight of a consistency term on unlabeled images: a
                                       # teacher's class probabilities on a second view (own
                                       # shift) are the target of the loss network's (0: off)
    consistency_teacher: str = "ema"   # ema: the loss network's weight average, no noise
                                       # (mean teacher) | net: the loss network, own noise
    d_steps: int = 1                   # loss-network steps per generator step
    weight_decay: float = 1e-4         # L2 on the loss network (lipschitz weight-decay)
    gp_weight: float | None = None     # penalty weight; None: 10 for gp, 0.1 for zero-gp
    penalty_every: int = 1             # lazy regularisation: the gradient penalty (gp, zero-gp,
                                       # div) on every k-th loss-network step only, weighted
                                       # k times (StyleGAN2); 1: every step
    clip: float = 0.01                 # weight-clipping bound (clip)
    div_k: float = 2.0                 # WGAN-div k
    div_p: float = 6.0                 # WGAN-div p
    # ---- optimisation (paper: Adam 1e-3, beta1 0.5, x0.8 every 25 epochs, batch 64)
    epochs: int = 100
    batch_size: int = 64               # labeled batch; the unlabeled batch is
                                       # unlabeled_ratio times as large
    unlabeled_ratio: int = 1           # unlabeled images per labeled image in a batch
                                       # (semi-supervised objectives; DESIGN.md: "larger
                                       # unlabeled batches")
    lr: float = 1e-3
    beta1: float = 0.5
    lr_decay: float = 0.8
    lr_decay_every: int = 25           # epochs
    ema_decay: float = 0.999           # EMA of both nets' weights, used to sample / classify
    recalibrate_bn: bool = True        # after each epoch, the averaged loss network's
                                       # BatchNorm statistics re-estimated on the real
                                       # training images (the conv loss network)
    standing_stats: int = 0            # after each epoch, the averaged generator's BatchNorm
                                       # statistics re-estimated on this many of its own
                                       # samples (BigGAN's standing statistics); 0: off
    seed: int = 0                      # training seed (noise, batch order); data_seed is apart
    time_limit: float = 0.0            # minutes of wall time (0: none): no epoch starts that
                                       # would end past it; free to change on resume
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    # ---- speed: how the step runs, not what it computes (up to rounding); free to change
    # on resume. auto picks per device; benchmarks/speed.py --ablate times each switch.
    amp: str = "auto"                  # auto (bf16 autocast on CUDA from compute capability
                                       # 8.0, Ampere, on; else off) | bf16 | off
    compile: str = "auto"              # torch.compile the nets: auto (CUDA only) | on | off |
                                       # a mode (reduce-overhead, max-autotune); eager on failure
    channels_last: str = "auto"        # auto (conv nets on CUDA) | on | off
    fused_adam: str = "auto"           # auto (CUDA only; the CPU keeps Adam's for-loop) | on | off
    net_options: dict[str, Any] = field(default_factory=dict)  # passed to the arch builder

    # keys that may differ when resuming a run (everything else must match); so may the PATH
    # of a folder:PATH dataset (see may_change): the data's fingerprint guards both
    RESUMABLE = ("epochs", "time_limit", "patience", "device", "data_root", "download", "amp",
                 "compile", "channels_last", "fused_adam")

    def resolved(self) -> "TrainConfig":
        """A validated copy with ``auto`` values filled in; raises ValueError on bad input."""
        # numpy values (a sweep over np.logspace) as Python's: a numpy scalar in config.json,
        # the history or the model's spec would make the checkpoint unloadable with
        # weights_only=True
        c = dataclasses.replace(self, **{f.name: plain(getattr(self, f.name))
                                         for f in dataclasses.fields(self)})
        c.net_options = dict(c.net_options)
        check_dataset_name(c.dataset)
        c.dataset = _absolute_folder(c.dataset)
        for name, flag in (("seed", "--seed"), ("data_seed", "--data-seed")):
            n = as_int(getattr(c, name))
            if n is None or not SEED_RANGE[0] <= n <= SEED_RANGE[1]:
                raise ValueError(f"{name} ({flag}) must be a whole number from {SEED_RANGE[0]} "
                                 f"to {SEED_RANGE[1]} (the seeds torch takes), got "
                                 f"{getattr(c, name)!r}")
            setattr(c, name, n)
        obj = get_objective(c.objective)
        if c.lipschitz == "auto":
            c.lipschitz = obj.default_lipschitz
        if c.lipschitz not in LIPSCHITZ:
            raise ValueError(f"unknown Lipschitz regulariser {c.lipschitz!r}; choose one of: "
                             f"{', '.join(LIPSCHITZ)}")
        if c.arch != "auto" and c.arch not in list_archs():
            raise ValueError(f"unknown architecture {c.arch!r}; choose one of: auto, "
                             f"{', '.join(list_archs())}")
        check_net_options(c.arch, c.net_options)
        if c.g_loss == "auto":
            c.g_loss = "feature-matching" if c.objective == "sscls" else "loss"
        default_gp = GP_WEIGHTS.get(c.lipschitz, 10.0)
        if c.gp_weight is None:
            c.gp_weight = default_gp
        if c.gp_weight < 0:
            raise ValueError(f"gp_weight must be non-negative, got {c.gp_weight}")
        for name in ("download", "balanced_labels", "recalibrate_bn"):
            if not isinstance(getattr(c, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(c, name)!r}")
        c.standing_stats = standing_stats_count(c.standing_stats)
        k = c.penalty_every
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"penalty_every must be a whole number of steps >= 1, got {k!r}")
        if k > 1 and c.lipschitz not in PENALTIES:
            raise ValueError(f"penalty_every={k} spaces out a gradient penalty, but this run's "
                             f"regulariser is {c.lipschitz!r}; use --lipschitz "
                             f"{' / '.join(PENALTIES)} or leave penalty_every at 1")
        if c.g_loss not in G_LOSSES:
            raise ValueError(f"unknown generator loss {c.g_loss!r}; choose one of: "
                             f"{', '.join(G_LOSSES)}")
        s = c.g_cond_share
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < 1:
            raise ValueError(f"g_cond_share must be a number in [0, 1) (the conditional term's "
                             f"share of the generator's loss; 0 turns it off), got {s!r}")
        if s and c.g_cond_weight:
            raise ValueError(f"g_cond_share={s} sets the conditional term's weight at every "
                             f"step, so g_cond_weight={c.g_cond_weight} cannot apply too; give "
                             f"one of them")
        if s and (c.g_loss != "feature-matching" or not obj.conditional):
            raise ValueError(
                f"g_cond_share weighs the conditional term L(G(z, y), y) against feature "
                f"matching in the generator's loss of a conditional objective; this run has "
                f"g_loss={c.g_loss!r}, objective {c.objective!r}. Use --g-loss "
                f"feature-matching with a conditional objective (sscls, cls), or leave "
                f"g_cond_share at 0")
        if c.g_cond_weight is None:            # 3: benchmarks/conditioning.py on digits
            c.g_cond_weight = G_COND_WEIGHT if (c.g_loss == "feature-matching"
                                                and obj.conditional and not s) else 0.0
        if not non_negative_number(c.g_cond_weight):      # also NaN and inf
            raise ValueError(f"g_cond_weight must be a non-negative, finite number, got "
                             f"{c.g_cond_weight!r}")
        if c.g_cond_weight and (c.g_loss != "feature-matching" or not obj.conditional):
            raise ValueError(
                f"g_cond_weight adds the conditional term L(G(z, y), y) to the feature-matching "
                f"generator loss of a conditional objective; this run has g_loss={c.g_loss!r}, "
                f"objective {c.objective!r}. Use --g-loss feature-matching with a conditional "
                f"objective (sscls, cls), or leave g_cond_weight at 0")
        if c.fm_layers not in FM_LAYERS:
            raise ValueError(f"fm_layers must be one of {', '.join(FM_LAYERS)}, got "
                             f"{c.fm_layers!r}")
        if c.fm_layers != "last" and c.g_loss != "feature-matching":
            raise ValueError(f"fm_layers={c.fm_layers!r} chooses the layers of the feature-"
                             f"matching generator loss, but this run has g_loss={c.g_loss!r}; "
                             f"use --g-loss feature-matching (sscls's default) or leave "
                             f"fm_layers at 'last'")
        if c.fm_real not in FM_REAL:
            raise ValueError(f"fm_real must be one of {', '.join(FM_REAL)}, got {c.fm_real!r}")
        if c.fm_real != "all" and c.g_loss != "feature-matching":
            raise ValueError(f"fm_real={c.fm_real!r} chooses the real images of the feature-"
                             f"matching generator loss, but this run has g_loss={c.g_loss!r}; "
                             f"use --g-loss feature-matching (sscls's default) or leave "
                             f"fm_real at 'all'")
        if c.fm_real != "all" and not obj.semi_supervised:
            raise ValueError(f"fm_real={c.fm_real!r} matches the fakes with the batch's "
                             f"unlabeled images, and objective {c.objective!r} uses none; "
                             f"choose a semi-supervised objective (sscls, ...) or leave "
                             f"fm_real at 'all'")
        if c.loss_form not in ("semi", "softmax"):
            raise ValueError(f"loss_form must be 'semi' or 'softmax', got {c.loss_form!r}")
        if c.loss_form == "softmax" and (not obj.conditional or obj.critic == "gan"):
            raise ValueError(f"objective {c.objective!r} needs loss_form='semi' (its critic "
                             f"uses the implicit 'fake' logit)")
        if c.labels_per_class == "all":              # as --labels-per-class and recipes
            c.labels_per_class = None
        lpc = c.labels_per_class
        if lpc is not None and (isinstance(lpc, bool) or not isinstance(lpc, int) or lpc <= 0):
            raise ValueError(f"labels_per_class (--labels-per-class) must be a positive "
                             f"integer or 'all', got {lpc!r}")
        check_val_per_class(c.val_per_class)
        n = as_int(c.patience)
        if n is None or n < 0:
            raise ValueError(f"patience is a number of epochs without a higher validation "
                             f"accuracy and must be a non-negative whole number (0: never stop "
                             f"early), got {c.patience!r}")
        c.patience = n
        t = c.translate
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"translate must be a non-negative whole number of pixels, got {t!r}")
        if not 0.0 < c.lr_decay <= 1.0:
            raise ValueError(f"lr_decay multiplies the learning rate every lr_decay_every "
                             f"epochs and must be in (0, 1], got {c.lr_decay}")
        for name in ("epochs", "batch_size", "d_steps", "noise_dim", "lr_decay_every",
                     "unlabeled_ratio"):
            n = as_int(getattr(c, name))
            if n is None or n <= 0:
                raise ValueError(f"{name} must be a positive whole number, got "
                                 f"{getattr(c, name)!r}")
            setattr(c, name, n)                 # numpy ints as Python ints, for config.json
        if not non_negative_number(c.time_limit):
            raise ValueError(f"time_limit is minutes of wall time and must be a non-negative "
                             f"number (0: no limit), got {c.time_limit!r}")
        if c.mode_seeking < 0:
            raise ValueError(f"mode_seeking must be non-negative, got {c.mode_seeking}")
        if not non_negative_number(c.consistency):
            raise ValueError(f"consistency must be a non-negative number, got {c.consistency!r}")
        if c.consistency_teacher not in CONSISTENCY_TEACHERS:
            raise ValueError(f"consistency_teacher must be one of "
                             f"{', '.join(CONSISTENCY_TEACHERS)}, got {c.consistency_teacher!r}")
        if c.unlabeled_ratio != 1 and not obj.semi_supervised:
            raise ValueError(f"unlabeled_ratio sizes the batch's unlabeled part, but objective "
                             f"{c.objective!r} uses no unlabeled images; choose a semi-"
                             f"supervised objective (sscls, gan, ...) or leave unlabeled_ratio "
                             f"at 1")
        if c.consistency and not obj.semi_supervised:
            raise ValueError(f"consistency is a term on unlabeled images, but objective "
                             f"{c.objective!r} uses none; choose a semi-supervised objective "
                             f"(sscls, gan, ...) or leave consistency at 0")
        for name in ("lr", "margin_scale", "lam", "clip", "div_k", "div_p"):
            v = getattr(c, name)
            if not non_negative_number(v) or v == 0:     # also NaN, inf and strings
                raise ValueError(f"{name} must be a positive, finite number, got {v!r}")
        for name in ("gamma", "mode_seeking", "weight_decay", "gp_weight"):
            if not non_negative_number(getattr(c, name)):
                raise ValueError(f"{name} must be a non-negative, finite number, got "
                                 f"{getattr(c, name)!r}")
        if not (isinstance(c.nu, (int, float)) and math.isfinite(c.nu) and c.nu <= 1.0):
            raise ValueError(f"nu (the GLS slope) must be a finite number <= 1, got {c.nu!r}")
        if not 0.0 <= c.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {c.ema_decay}")
        if not 0.0 <= c.beta1 < 1.0:
            raise ValueError(f"beta1 must be in [0, 1), got {c.beta1}")
        if isinstance(c.gamma_rampup, bool) or not isinstance(c.gamma_rampup, int) or \
                c.gamma_rampup < 0:
            raise ValueError(f"gamma_rampup must be a whole number of epochs >= 0, got "
                             f"{c.gamma_rampup!r}")
        _refuse_no_effect(c, obj, default_gp)
        if not (c.device == "auto" or c.device == "cpu" or c.device.startswith("cuda")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {c.device!r}")
        for name, choices in SPEED_CHOICES.items():
            v = getattr(c, name)
            if isinstance(v, bool):              # TrainConfig(compile=False) reads naturally
                v = "on" if v else "off"
                setattr(c, name, v)
            if v not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}; got {v!r}")
        if c.lipschitz == "spectral-norm":     # over any norm net_options (a recipe) name
            c.net_options["norm"] = "spectral"
        return c

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # keys added after run folders were first written, with the value those runs trained with
    BEFORE_KEY_EXISTED = {"g_cond_weight": 0.0, "consistency": 0.0,
                          "consistency_teacher": "ema", "penalty_every": 1,
                          "recalibrate_bn": False, "standing_stats": 0}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """A saved configuration (a checkpoint's, config.json); keys it lacks take the value
        that reproduces runs saved before the key existed (``BEFORE_KEY_EXISTED``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**{**cls.BEFORE_KEY_EXISTED, **d})

    @classmethod
    def may_change(cls, key: str, old: Any, new: Any) -> bool:
        """Whether a resumed run may have ``new`` where it was saved with ``old``: equal
        values, a key in RESUMABLE, or another PATH of a ``folder:PATH`` dataset (a
        different spelling of its folder, or the folder moved, as ``data_root`` may; the
        data's fingerprint in the checkpoint refuses other images)."""
        if old == new or key in cls.RESUMABLE:
            return True
        return key == "dataset" and isinstance(old, str) and isinstance(new, str) and \
            folder_path(old) is not None and folder_path(new) is not None

    def diff(self, other: "TrainConfig") -> list[str]:
        """Keys whose values differ and may not (see :meth:`may_change`)."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if not self.may_change(k, b[k], a[k])]


def resolve_config(config: TrainConfig | None) -> TrainConfig:
    """``config`` (None: the defaults) validated, its ``auto`` values filled in
    (:meth:`TrainConfig.resolved`); a TypeError that says how to build one for anything else
    (a dict of settings, say)."""
    if config is None:
        return TrainConfig().resolved()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}: build one "
                        f"with TrainConfig(**settings), or TrainConfig.from_dict for a run's "
                        f"config.json")
    return config.resolved()
