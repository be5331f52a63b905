"""Pure loss functions of the CLS-GAN family (DESIGN.md section 2 is the specification).

Sign convention, everywhere in ganaug: the loss network f outputs class activations
a(x) of shape (N, C), and L(x, y) is a *loss*: LOWER means "real and of class y".
This is the opposite of most GAN code, where a higher discriminator output means real.

Every function here maps tensors to tensors: no optimisers, devices, logging or state.
The critic terms of the baselines (GAN, WGAN) are written in terms of the same L, so every
objective trains the same networks and every trained loss network is a classifier:
predict(x) = argmin_y L(x, y) = argmax_y a_y(x).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "conditional_loss", "unlabeled_loss", "real_loss", "logit_loss", "fake_loss", "pair_loss",
    "margin", "gls_cost", "ls_critic", "gan_critic", "wgan_critic", "feature_matching",
    "mode_seeking", "mode_seeking_from_distances", "consistency", "gradient_penalty",
    "div_penalty",
    "Objective", "OBJECTIVES", "get_objective", "list_objectives",
]


# ----------------------------------------------------------------------------- losses of x

def conditional_loss(a: Tensor, y: Tensor, form: str = "semi") -> Tensor:
    """L(x, y) for activations ``a`` (N, C) and labels ``y`` (N,); returns (N,).

    ``form="semi"`` (default, the paper's): -a_y + log(1 + sum_l exp a_l), an implicit
    extra logit fixed at 0 stands for "belongs to no known class" (i.e. fake), so L > 0.
    ``form="softmax"``: the plain supervised -log softmax(a)_y.
    """
    a_y = a.gather(1, y.long().unsqueeze(1)).squeeze(1)
    lse = torch.logsumexp(a, dim=1)
    if form == "semi":
        return -a_y + F.softplus(lse)
    if form == "softmax":
        return -a_y + lse
    raise ValueError(f"unknown loss form {form!r}; use 'semi' or 'softmax'")


def unlabeled_loss(a: Tensor, form: str = "semi") -> Tensor:
    """L_ul(x) = min_l L(x, l) = -max_l a_l + softplus(logsumexp a); returns (N,)."""
    lse = torch.logsumexp(a, dim=1)
    top = a.max(dim=1).values
    if form == "semi":
        return -top + F.softplus(lse)
    if form == "softmax":
        return -top + lse
    raise ValueError(f"unknown loss form {form!r}; use 'semi' or 'softmax'")


def real_loss(a: Tensor) -> Tensor:
    """-log P(real | x) with the implicit fake logit 0: softplus(-logsumexp a); (N,).

    The unconditional counterpart of L(x, y): lower means "real, of any class".
    """
    return F.softplus(-torch.logsumexp(a, dim=1))


LOGIT_CRITIC = "logit"   # a run checkpoint's "unconditional_critic": what its critic compared


def logit_loss(a: Tensor) -> Tensor:
    """The unconditional LS and WGAN critics' loss (``ls``, ``gls``, ``wgan``, ``wgan-gp``,
    ``wgan-div``): -logsumexp a, the negated logit of P(real | x); (N,). Lower means "real,
    of any class".

    Unbounded, unlike ``real_loss`` = softplus(logit_loss): a critic comparing
    ``real_loss`` saturates once the supervised term makes every image, the fakes included,
    look real (its gradient vanishes and the generator stops learning), which this one
    does not.
    """
    return -torch.logsumexp(a, dim=1)


def fake_loss(a: Tensor, y: Tensor | None = None) -> Tensor:
    """-log(1 - P(real [and of class y] | x)), computed from logits stably; (N,).

    Unconditional: softplus(logsumexp a). Conditional: log(1 + Z) - log(1 + Z - e^{a_y})
    with Z = sum_l e^{a_l}, i.e. softplus(lse a) - softplus(lse of a without column y).
    """
    full = F.softplus(torch.logsumexp(a, dim=1))
    if y is None:
        return full
    others = a.scatter(1, y.long().unsqueeze(1), float("-inf"))
    return full - F.softplus(torch.logsumexp(others, dim=1))


def pair_loss(a: Tensor, y: Tensor, conditional: bool, form: str = "semi") -> Tensor:
    """The loss an objective's LS or WGAN critic compares: L(x, y) if conditional, else
    ``logit_loss``."""
    return conditional_loss(a, y, form) if conditional else logit_loss(a)


def margin(x: Tensor, x_fake: Tensor, scale: float) -> Tensor:
    """Delta(x, x') = scale * mean |x - x'| over pixels and channels; (N,).

    The mean (not the reference code's sum) lets one ``scale`` serve every resolution.
    """
    return scale * (x - x_fake).abs().flatten(1).mean(dim=1)


# ----------------------------------------------------------------------------- critic terms

def gls_cost(t: Tensor, nu: float) -> Tensor:
    """C(t) = max(t, nu * t) for nu <= 1; nu = 0 is LS-GAN's hinge, nu = 1 is linear
    (WGAN-like), nu = -1 is |t| (the GLS-GAN reference code's default)."""
    if not (math.isfinite(nu) and nu <= 1.0):
        raise ValueError(f"GLS slope nu must be a finite number <= 1, got {nu}")
    return torch.maximum(t, nu * t)


def ls_critic(l_real: Tensor, l_fake: Tensor, delta: Tensor, nu: float = 0.0) -> Tensor:
    """mean C(Delta + L(real) - L(fake)): zero once L(fake) exceeds L(real) by the margin."""
    return gls_cost(delta + l_real - l_fake, nu).mean()


def gan_critic(a_real: Tensor, a_fake: Tensor, y_real: Tensor | None,
               y_fake: Tensor | None) -> Tensor:
    """Binary cross-entropy of the original GAN with D(x[, y]) = exp(-L): real -> 1, fake -> 0.

    Pass labels for the conditional variant (D = P(real and of class y | x)), ``None``
    for the unconditional one (D = P(real | x), Salimans et al.'s semi-supervised GAN).
    """
    real = conditional_loss(a_real, y_real) if y_real is not None else real_loss(a_real)
    return real.mean() + fake_loss(a_fake, y_fake).mean()


def wgan_critic(l_real: Tensor, l_fake: Tensor) -> Tensor:
    """WGAN's critic objective with critic value -L: mean L(real) - mean L(fake)."""
    return l_real.mean() - l_fake.mean()


def feature_matching(h_real: Tensor | Sequence[Tensor],
                     h_fake: Tensor | Sequence[Tensor]) -> Tensor:
    """Squared distance between mean features of real and generated batches (Salimans 2016).

    One tensor (N, ...) per side: ||mean_n h_real - mean_n h_fake||^2 over all feature units.
    Lists of layers (first to last, same length on both sides): the sum over layers of each
    layer's squared distance times (units of the last layer / units of this layer), i.e. the
    mean squared distance per unit of every layer on the last layer's scale, so a list of one
    layer gives the single-tensor value and no wide layer outweighs a narrow one.
    """
    if isinstance(h_real, Tensor) and isinstance(h_fake, Tensor):
        return (h_real.mean(dim=0) - h_fake.mean(dim=0)).pow(2).sum()
    if isinstance(h_real, Tensor) or isinstance(h_fake, Tensor) or len(h_real) != len(h_fake) \
            or not len(h_real):
        raise ValueError("feature_matching takes two tensors or two equally long, non-empty "
                         "lists of layers")
    units = h_real[-1][0].numel()
    return sum(feature_matching(r, f) * (units / r[0].numel()) for r, f in zip(h_real, h_fake))


MODE_SEEKING_EPS = 1e-5    # one default for one process and several (they must agree)


def mode_seeking(x1: Tensor, x2: Tensor, z1: Tensor, z2: Tensor,
                 eps: float = MODE_SEEKING_EPS) -> Tensor:
    """Mode-seeking term of Mao et al. 2019 (MSGAN), to add to the generator's loss.

    ``x1 = G(z1, y)`` and ``x2 = G(z2, y)`` share labels; the term is
    ``1 / (mean|x1 - x2| / mean|z1 - z2| + eps)``: small when different noise gives
    different images, large when the generator collapses a class onto a few images.
    """
    return mode_seeking_from_distances((x1 - x2).abs().mean(), (z1 - z2).abs().mean(), eps)


def mode_seeking_from_distances(dx: Tensor, dz: Tensor, eps: float = MODE_SEEKING_EPS) -> Tensor:
    """:func:`mode_seeking` from its two mean distances mean|x1 - x2| and mean|z1 - z2|
    (for callers that average them over more than one batch, e.g. over processes)."""
    return 1.0 / (dx / dz + eps)


def consistency(a_student: Tensor, a_teacher: Tensor) -> Tensor:
    """Consistency of class predictions on two perturbed views of the same images; (N,).

    sum_c (softmax(a_student)_c - softmax(a_teacher)_c)^2 over the C classes, the squared
    error of Laine & Aila's Pi-model (2017); the teacher's side is detached (a target, as in
    UDA / FixMatch), so only the student's view is pushed towards the other.
    """
    if a_student.shape != a_teacher.shape:
        raise ValueError(f"consistency compares activations of the same shape, got "
                         f"{tuple(a_student.shape)} and {tuple(a_teacher.shape)}")
    p_t = torch.softmax(a_teacher.detach(), dim=1)
    return (torch.softmax(a_student, dim=1) - p_t).pow(2).sum(dim=1)


# ----------------------------------------------------------------------------- penalties

def _input_grad_norm(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor) -> Tensor:
    """||d fn(x, y) / dx|| per sample, differentiable (create_graph) for the penalty."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x, y).sum(), x, create_graph=True)
    return g.flatten(1).norm(dim=1)


def gradient_penalty(fn: Callable[[Tensor, Tensor], Tensor], x_real: Tensor, x_fake: Tensor,
                     y: Tensor, eps: Tensor, center: float = 1.0) -> Tensor:
    """mean (||grad_x fn(x_hat, y)|| - center)^2 at x_hat = eps x_real + (1 - eps) x_fake.

    ``center=1`` is WGAN-GP; ``center=0`` is the zero-centred penalty. ``eps`` is (N,)
    in [0, 1], drawn by the caller so randomness stays with the training loop.
    """
    e = eps.view(-1, *([1] * (x_real.dim() - 1)))
    x_hat = e * x_real.detach() + (1 - e) * x_fake.detach()
    return (_input_grad_norm(fn, x_hat, y) - center).pow(2).mean()


def div_penalty(fn: Callable[[Tensor, Tensor], Tensor], x_real: Tensor, x_fake: Tensor,
                y: Tensor, k: float = 2.0, p: float = 6.0) -> Tensor:
    """WGAN-div: k * E ||grad_x fn||^p (Wu et al. 2018: k=2, p=6), the mean taken over the
    real and the fake images themselves (as the common PyTorch implementations do), not over
    interpolates between them as WGAN-GP's penalty is."""
    x = torch.cat([x_real.detach(), x_fake.detach()])
    return k * _input_grad_norm(fn, x, torch.cat([y, y])).pow(p).mean()


# ----------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class Objective:
    """One member of the family, selectable by name.

    critic: "ls" (hinge with margin, slope nu), "gan" (binary cross-entropy), "wgan", or
    "none" (no adversarial term and no generator training: the supervised baseline).
    conditional: whether the critic judges (x, y) pairs (else only x, and the generator's
    labels are free). semi_supervised: whether unlabeled images enter the adversarial term.
    """
    name: str
    critic: str
    conditional: bool
    semi_supervised: bool
    default_lipschitz: str
    description: str
    nu: float | None = None   # fixed GLS slope; None = take TrainConfig.nu (gls only)

    @property
    def logit_critic(self) -> bool:
        """Whether the critic compares ``logit_loss``: the unconditional LS and WGAN ones."""
        return not self.conditional and self.critic in ("ls", "wgan")


_OBJ = [
    Objective("ls", "ls", False, True, "zero-gp", "LS-GAN (unconditional critic)", 0.0),
    Objective("gls", "ls", False, True, "zero-gp", "GLS-GAN, cost max(a, nu a)", None),
    Objective("cls", "ls", True, False, "zero-gp", "conditional LS-GAN (labeled data)", 0.0),
    Objective("sscls", "ls", True, True, "zero-gp", "semi-supervised CLS-GAN", 0.0),
    Objective("gan", "gan", False, True, "none", "original GAN, non-saturating"),
    Objective("cgan", "gan", True, False, "none", "conditional GAN, non-saturating"),
    Objective("wgan", "wgan", False, True, "clip", "WGAN, weight clipping"),
    Objective("cwgan", "wgan", True, False, "clip", "conditional WGAN, weight clipping"),
    Objective("wgan-gp", "wgan", False, True, "gp", "WGAN-GP"),
    Objective("cwgan-gp", "wgan", True, False, "gp", "conditional WGAN-GP"),
    Objective("wgan-div", "wgan", False, True, "div", "WGAN-div"),
    Objective("cwgan-div", "wgan", True, False, "div", "conditional WGAN-div"),
    Objective("supervised", "none", True, False, "weight-decay",
              "baseline: the loss network trained on the labels alone, no GAN"),
]
OBJECTIVES: dict[str, Objective] = {o.name: o for o in _OBJ}


def list_objectives() -> list[str]:
    return list(OBJECTIVES)


def get_objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective {name!r}; choose one of: "
                         f"{', '.join(OBJECTIVES)}") from None
