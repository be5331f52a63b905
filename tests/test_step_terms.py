"""The training step's terms against DESIGN.md written out by hand in numpy (float64).

A loss network a(x) = W x + b (or W x^3 + b, whose input gradient depends on the point)
makes every term computable by hand: the supervised term S, lam x the labeled critic,
gamma x the unlabeled critic of sscls, the penalties at their points with their weights,
and the generator's losses.
"""
import contextlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from ganaug import TrainConfig, build_model
from ganaug import objectives as O
from ganaug import step as S
from ganaug.step import step_kind

from _tiny import CONV, FAST, _run, colour, first_draw

C, N_LAB, N_UNL = 3, 4, 3


class LinD(torch.nn.Module):
    def __init__(self, d, c, cubic=False):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = torch.nn.Parameter(torch.randn(c, d, generator=g, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.randn(c, generator=g, dtype=torch.float64))
        self.cubic = cubic

    def forward(self, x, features=False):
        h = x.flatten(1) ** 3 if self.cubic else x.flatten(1)
        a = h @ self.W.T + self.b
        return (a, h) if features else a


class Nets:
    batch_stats = False                     # a linear loss network: rows are independent

    def __init__(self, D, G=None):
        self.D, self.g = D, G

    def frozen_stats(self):
        return contextlib.nullcontext()

    def d(self, x, features=False, eager=False):
        return self.D(x, features=features) if features else self.D(x)

    def teacher(self, x, which):
        return self.D(x) * 0.5              # any fixed function of the second view


def lse(a):
    m = a.max(1, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(1, keepdims=True)))[:, 0]


def softplus(t):
    return np.log1p(np.exp(t))


def L(a, y, form="semi"):          # L(x, y) = -a_y + softplus(lse a); softmax: -a_y + lse a
    return -a[np.arange(len(a)), y] + (softplus(lse(a)) if form == "semi" else lse(a))


def L_ul(a, form="semi"):          # min_y L(x, y)
    return -a.max(1) + (softplus(lse(a)) if form == "semi" else lse(a))


def real(a):                       # -log P(real | x), P(real | x) = sigmoid(lse a)
    return softplus(-lse(a))


def logit(a):                      # the unconditional LS / WGAN critics' loss: -lse a
    return -lse(a)


def hinge(t, nu=0.0):
    return np.maximum(t, nu * t)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    xr = torch.rand(N_LAB + N_UNL, 1, 2, 2, generator=g, dtype=torch.float64) * 2 - 1
    xf = torch.rand(N_LAB + N_UNL, 1, 2, 2, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.tensor([0, 1, 2, 1])
    cu = torch.tensor([2, 0, 1])                # the generator's labels for unlabeled rows
    return xr, xf, y, cu


def _batch(obj, xr, y, cu):
    if not obj.semi_supervised:
        return S._Batch(xr[:N_LAB], y, y, N_LAB)
    return S._Batch(xr, torch.cat([y, cu]), torch.cat([y, torch.full_like(cu, -1)]), N_LAB)


SETTINGS = {   # non-default weights, a margin small enough for negative hinge arguments
    "ls": dict(lam=2.0, margin_scale=0.01), "gls": dict(lam=2.0, nu=0.3, margin_scale=0.01),
    "cls": dict(lam=2.0, margin_scale=0.5), "sscls": dict(lam=2.0, gamma=0.5, margin_scale=0.01),
    "gan": dict(lam=2.0), "cgan": dict(lam=2.0), "wgan": dict(lam=2.0), "cwgan": dict(lam=2.0)}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_loss_network_terms_match_design_by_hand(name, data):
    xr, xf, y, cu = data
    obj = O.get_objective(name)
    cfg = TrainConfig(objective=name, lipschitz="none", **SETTINGS[name]).resolved()
    D = LinD(4, C)
    b = _batch(obj, xr, y, cu)
    x_f = xf[:len(b.x)]
    got = S._loss_net_terms(obj, cfg, Nets(D), b, x_f, S._ell(obj, cfg.loss_form),
                            cfg.gamma, None).detach().numpy()

    W, bias = D.W.detach().numpy(), D.b.detach().numpy()
    ar = b.x.flatten(1).numpy() @ W.T + bias
    af = x_f.flatten(1).numpy() @ W.T + bias
    yn, n = y.numpy(), N_LAB
    delta = cfg.margin_scale * np.abs(b.x.flatten(1).numpy() - x_f.flatten(1).numpy()).mean(1)
    sup = L(ar[:n], yn).mean()
    crit_u = 0.0
    if name in ("ls", "gls"):                  # unconditional: every real row, the logit
        crit = hinge(delta + logit(ar) - logit(af), cfg.nu if name == "gls" else 0.0).mean()
    elif name in ("cls", "sscls"):
        crit = hinge(delta[:n] + L(ar[:n], yn) - L(af[:n], yn)).mean()
        if name == "sscls":                    # unlabeled reals paired with their own fakes
            crit_u = hinge(delta[n:] + L_ul(ar[n:]) - L_ul(af[n:])).mean()
    elif name == "gan":
        sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
        crit = -np.log(sig(lse(ar))).mean() - np.log(1 - sig(lse(af))).mean()
    elif name == "cgan":
        crit = L(ar, yn).mean() - np.log(1 - np.exp(-L(af, yn))).mean()
    elif name == "wgan":
        crit = logit(ar).mean() - logit(af).mean()
    else:
        crit = L(ar, yn).mean() - L(af, yn).mean()
    if name in ("ls", "gls", "cls", "sscls"):  # the hinge's arguments fall on both sides of
        if name in ("ls", "gls"):              # its kink, so both of its pieces are checked
            args = delta + logit(ar) - logit(af)
        else:
            args = delta[:n] + L(ar[:n], yn) - L(af[:n], yn)
            if name == "sscls":
                args = np.concatenate([args, delta[n:] + L_ul(ar[n:]) - L_ul(af[n:])])
        assert (args < 0).any() and (args > 0).any()
    want = np.array([sup, cfg.lam * crit, cfg.gamma * crit_u, 0.0, 0.0])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["supervised", "sscls"])
def test_the_softmax_form_reaches_every_term_by_hand(name, data):
    """loss_form='softmax' is the L of S, of both critics and of the generator's loss."""
    xr, xf, y, cu = data
    obj = O.get_objective(name)
    cfg = TrainConfig(objective=name, lipschitz="none", loss_form="softmax", g_loss="loss",
                      **({"margin_scale": 0.01} if name == "sscls" else {})).resolved()
    D = LinD(4, C)
    b = _batch(obj, xr, y, cu)
    ell = S._ell(obj, cfg.loss_form)
    x_f = xf if obj.critic != "none" else None
    got = S._loss_net_terms(obj, cfg, Nets(D), b, x_f, ell, 1.0, None).detach().numpy()
    W, bias = D.W.detach().numpy(), D.b.detach().numpy()
    ar = b.x.flatten(1).numpy() @ W.T + bias
    yn, n, sm = y.numpy(), N_LAB, "softmax"
    want = np.array([L(ar[:n], yn, sm).mean(), 0.0, 0.0, 0.0, 0.0])
    if x_f is not None:
        af = xf.flatten(1).numpy() @ W.T + bias
        delta = 0.01 * np.abs(xr.flatten(1).numpy() - xf.flatten(1).numpy()).mean(1)
        want[1] = hinge(delta[:n] + L(ar[:n], yn, sm) - L(af[:n], yn, sm)).mean()
        want[2] = hinge(delta[n:] + L_ul(ar[n:], sm) - L_ul(af[n:], sm)).mean()
        g_loss, g_cond = S._generator_loss(cfg, Nets(D), b, xf, ell, 1).tolist()
        assert g_cond == 0.0 and g_loss == pytest.approx(
            np.concatenate([L(af[:n], yn, sm), L_ul(af[n:], sm)]).mean(), rel=1e-10)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_the_consistency_term_on_the_unlabeled_rows_by_hand(data):
    xr, xf, y, cu = data
    cfg = TrainConfig(objective="sscls", lipschitz="none", consistency=3.0).resolved()
    obj = O.get_objective("sscls")
    D = LinD(4, C)
    b = _batch(obj, xr, y, cu)
    b.x_view = xr[N_LAB:].flip(-1)              # the unlabeled rows' second view
    cons = S._loss_net_terms(obj, cfg, Nets(D), b, xf, S._ell(obj, "semi"), 1.0, None)[4]
    W, bias = D.W.detach().numpy(), D.b.detach().numpy()

    def softmax(a):
        e = np.exp(a - a.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    xu = xr[N_LAB:].flatten(1).numpy()
    student = softmax(xu @ W.T + bias)
    teacher = softmax(0.5 * (b.x_view.flatten(1).numpy() @ W.T + bias))
    want = 3.0 * ((student - teacher) ** 2).sum(1).mean()
    assert cons.item() == pytest.approx(want, rel=1e-10)
    # its gradient moves the student's view only (the teacher's is a fixed target):
    # d/da of sum_c (p_c - t_c)^2 is 2 p * (r - sum_c p_c r_c), r = p - t, through a = W x + b
    r = student - teacher
    ga = 2 * student * (r - (student * r).sum(1, keepdims=True))
    (gW,) = torch.autograd.grad(cons, D.W)
    np.testing.assert_allclose(gW.numpy(), 3.0 * ga.T @ xu / len(xu), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("lipschitz,opts,k", [("gp", {"gp_weight": 5.0}, 1),
                                              ("zero-gp", {"gp_weight": 0.3}, 4),
                                              ("div", {"div_k": 0.5, "div_p": 3.0}, 2)])
def test_penalties_at_their_points_with_their_weights(lipschitz, opts, k, data):
    """A cubic loss network: the input gradient differs from point to point, so only the
    right points (interpolates of each real row and its own fake, or reals and fakes for
    div) give the right value; every row counts, labeled and unlabeled."""
    xr, xf, y, cu = data
    cfg = TrainConfig(objective="sscls", lipschitz=lipschitz, penalty_every=k, **opts).resolved()
    obj = O.get_objective("sscls")
    D = LinD(4, C, cubic=True)
    b = _batch(obj, xr, y, cu)
    eps = torch.rand(len(b.x), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = S._loss_net_terms(obj, cfg, Nets(D), b, xf, S._ell(obj, "semi"), 1.0, eps)[3].item()

    W, bias = D.W.detach().numpy(), D.b.detach().numpy()
    yc = b.y_crit.numpy()

    def grad_norm(x):                          # || d ell(a(x), y) / dx || by finite differences
        def ell(xx):
            a = (xx ** 3) @ W.T + bias
            return np.where(yc >= 0, L(a, np.maximum(yc, 0)), L_ul(a))
        x = x.reshape(len(x), -1)
        g = np.zeros_like(x)
        for j in range(x.shape[1]):
            e = np.zeros_like(x)
            e[:, j] = 1e-6
            g[:, j] = (ell(x + e) - ell(x - e)) / 2e-6
        return np.linalg.norm(g, axis=1)

    xr_, xf_, e = xr.numpy(), xf.numpy(), eps.numpy().reshape(-1, 1, 1, 1)
    if lipschitz == "div":
        norms = np.concatenate([grad_norm(xr_), grad_norm(xf_)])
        want = k * cfg.div_k * (norms ** cfg.div_p).mean()
    else:
        centre = 1.0 if lipschitz == "gp" else 0.0
        norms = grad_norm(e * xr_ + (1 - e) * xf_)
        want = k * cfg.gp_weight * ((norms - centre) ** 2).mean()
    assert got == pytest.approx(want, rel=1e-5)
    skipped = S._loss_net_terms(obj, cfg, Nets(D), b, xf, S._ell(obj, "semi"), 1.0, eps,
                                penalize=False)[3].item()
    assert skipped == 0.0


@pytest.mark.parametrize("name", ["sscls", "cls", "ls", "gan", "cgan", "wgan", "cwgan"])
def test_generator_losses_match_design_by_hand(name, data):
    xr, xg, y, cu = data
    obj = O.get_objective(name)
    cfg = TrainConfig(objective=name, lipschitz="none", g_loss="loss").resolved()
    D = LinD(4, C)
    b = _batch(obj, xr, y, cu)
    x_g = xg[:len(b.x)]
    got, cond = S._generator_loss(cfg, Nets(D), b, x_g, S._ell(obj, "semi"), 1).tolist()
    assert cond == 0.0                         # no conditional term beside the loss itself
    ag = x_g.flatten(1).numpy() @ D.W.detach().numpy().T + D.b.detach().numpy()
    if obj.conditional:                        # L_ul for the fakes paired with unlabeled rows
        want = np.concatenate([L(ag[:N_LAB], y.numpy()), L_ul(ag[N_LAB:])]).mean()
    elif name == "gan":                        # non-saturating: -log D(G(z))
        want = real(ag).mean()
    else:                                      # ls, wgan: the critic's logit loss
        want = logit(ag).mean()
    assert got == pytest.approx(want, rel=1e-10)


def test_mode_seeking_joins_the_generators_loss_with_its_weight_by_hand(data):
    """G's step: mean L(G(z, y)) + mode_seeking x 1 / (mean|x1 - x2| / mean|z1 - z2| + 1e-5),
    x1 and x2 the fakes of the two noise draws z and z2 for the same labels."""
    xr, _, y, cu = data
    obj = O.get_objective("sscls")
    cfg = TrainConfig(objective="sscls", lipschitz="none", g_loss="loss",
                      mode_seeking=0.7).resolved()
    D = LinD(4, C)
    b = _batch(obj, xr, y, cu)
    g = torch.Generator().manual_seed(3)
    A = torch.randn(5, 4, generator=g, dtype=torch.float64) * 0.3
    z, z2 = (torch.rand(N_LAB + N_UNL, 5, generator=g, dtype=torch.float64) for _ in range(2))
    G = lambda z, yy: (z @ A + 0.1 * yy.view(-1, 1).double()).view(-1, 1, 2, 2)  # noqa: E731
    step = SimpleNamespace(cfg=cfg, nets=Nets(D, G), ell=S._ell(obj, "semi"), world=1,
                           opt_g=None, _update=lambda opt, loss: None)
    got, cond = S.TrainStep._generator_step(step, b, S._Noise(z=z, z2=z2)).tolist()
    assert cond == 0.0
    zn, z2n, An, yg = z.numpy(), z2.numpy(), A.numpy(), b.y_gen.numpy().reshape(-1, 1)
    x1, x2 = zn @ An + 0.1 * yg, z2n @ An + 0.1 * yg
    ag = x1 @ D.W.detach().numpy().T + D.b.detach().numpy()
    fit = np.concatenate([L(ag[:N_LAB], y.numpy()), L_ul(ag[N_LAB:])]).mean()
    diverse = 1.0 / (np.abs(x1 - x2).mean() / np.abs(zn - z2n).mean() + 1e-5)
    assert got == pytest.approx(fit + 0.7 * diverse, rel=1e-10)


def test_feature_matching_plus_the_conditional_term_by_hand(data):
    xr, xg, y, cu = data
    cfg = TrainConfig(objective="sscls", lipschitz="none", g_cond_weight=2.0).resolved()
    D = LinD(4, C)
    b = _batch(O.get_objective("sscls"), xr, y, cu)
    fm, cond = S._generator_loss(cfg, Nets(D), b, xg, S._ell(O.get_objective("sscls"), "semi"),
                                 1).tolist()
    hr, hf = xr.flatten(1).numpy(), xg.flatten(1).numpy()
    ag = hf @ D.W.detach().numpy().T + D.b.detach().numpy()
    assert fm == pytest.approx(((hr.mean(0) - hf.mean(0)) ** 2).sum(), rel=1e-10)
    assert cond == pytest.approx(2.0 * L(ag, np.concatenate([y, cu])).mean(), rel=1e-10)


def test_the_conditional_terms_share_by_hand(data):
    """g_cond_share s: the term is L's mean x s / (1 - s) x FM / L's mean, read without
    gradient, i.e. s of the generator's loss; its gradient is that constant x L's."""
    xr, xg, y, cu = data
    cfg = TrainConfig(objective="sscls", lipschitz="none", g_cond_share=0.2).resolved()
    assert cfg.g_cond_weight == 0.0                     # the share replaces the fixed weight
    D = LinD(4, C)
    b = _batch(O.get_objective("sscls"), xr, y, cu)
    xg = xg.clone().requires_grad_(True)
    parts = S._generator_loss(cfg, Nets(D), b, xg, S._ell(O.get_objective("sscls"), "semi"), 1)
    fm, cond = parts.tolist()
    hr, hf = xr.flatten(1).numpy(), xg.detach().flatten(1).numpy()
    ag = hf @ D.W.detach().numpy().T + D.b.detach().numpy()
    fm_hand, L_hand = ((hr.mean(0) - hf.mean(0)) ** 2).sum(), L(ag, np.concatenate([y, cu])).mean()
    assert fm == pytest.approx(fm_hand, rel=1e-10)
    assert cond == pytest.approx(0.25 * fm_hand, rel=1e-10)          # 0.2 of fm + cond
    assert cond / (fm + cond) == pytest.approx(0.2, rel=1e-10)
    (g_cond,) = torch.autograd.grad(parts[1], xg)
    a = torch.as_tensor(ag).requires_grad_(True)        # d/dx of the plain mean L, x k
    L_t = O.conditional_loss(a, torch.as_tensor(np.concatenate([y, cu]))).mean()
    (g_a,) = torch.autograd.grad(L_t, a)
    k = 0.25 * fm_hand / L_hand
    want = (k * g_a @ D.W.detach()).reshape(xg.shape)
    torch.testing.assert_close(g_cond, want, rtol=1e-9, atol=1e-12)


def test_the_registry_flags_that_decide_the_math():
    flags = {name: (o.critic, o.conditional, o.semi_supervised, o.default_lipschitz)
             for name, o in O.OBJECTIVES.items()}
    assert flags == {
        "ls": ("ls", False, True, "zero-gp"), "gls": ("ls", False, True, "zero-gp"),
        "cls": ("ls", True, False, "zero-gp"), "sscls": ("ls", True, True, "zero-gp"),
        "gan": ("gan", False, True, "none"), "cgan": ("gan", True, False, "none"),
        "wgan": ("wgan", False, True, "clip"), "cwgan": ("wgan", True, False, "clip"),
        "wgan-gp": ("wgan", False, True, "gp"), "cwgan-gp": ("wgan", True, False, "gp"),
        "wgan-div": ("wgan", False, True, "div"), "cwgan-div": ("wgan", True, False, "div"),
        "supervised": ("none", True, False, "weight-decay")}
    assert [n for n, o in O.OBJECTIVES.items() if o.critic == "ls" and o.nu is None] == ["gls"]


def _step(tiny, **kw):
    """(config, model, TrainStep) for FAST's settings on ``tiny``, overridden by ``kw``."""
    cfg = TrainConfig(**{**FAST, **kw}).resolved()
    model = build_model(cfg, tiny)
    return cfg, model, S.TrainStep(model, cfg, torch.device("cpu"))


@pytest.mark.parametrize("lipschitz,fused", [("weight-decay", "on"), ("zero-gp", "off")])
def test_the_optimisers_take_their_settings(tiny, lipschitz, fused):
    """Adam with the run's lr and beta1 for both nets, fused when asked; weight decay on the
    loss network only, and only when it is the Lipschitz regulariser."""
    *_, step = _step(tiny, lipschitz=lipschitz, fused_adam=fused, lr=2e-3, beta1=0.3)
    for opt, wd in ((step.opt_d, 1e-4 if lipschitz == "weight-decay" else 0.0), (step.opt_g, 0)):
        d = opt.defaults
        assert (d["lr"], d["betas"], d["weight_decay"]) == (2e-3, (0.3, 0.999), wd)
        assert bool(d["fused"]) == (fused == "on")


def test_clipping_bounds_the_weights_before_their_average_takes_them(tiny):
    """wgan: after the loss network's update every weight is within +-clip (some on the
    bound), and its EMA moves from where it was towards the clipped weights by 1 - decay."""
    cfg, model, step = _step(tiny, objective="wgan")
    y = tiny.targets[:16]
    b = S._Batch(tiny.images[:16], y, torch.cat([y[:8], torch.full((8,), -1)]), 8)
    nz = S._Noise(z_f=torch.rand(16, model.noise_dim, generator=torch.Generator().manual_seed(0)))
    before = [e.clone() for e in model.loss_net_ema.parameters()]
    step(b, nz, 1.0, 0.9)
    layers = _linears(model.loss_net)
    assert layers and all(parametrize.is_parametrized(m) for m in layers)   # weight norm
    weights = [t for m in layers for t in (m.weight, m.bias)]
    assert max(t.abs().max().item() for t in weights) == pytest.approx(cfg.clip)
    params = list(model.loss_net.parameters())
    for e, e0, p in zip(model.loss_net_ema.parameters(), before, params):
        torch.testing.assert_close(e, 0.9 * e0 + 0.1 * p)


def _linears(net):
    return [m for m in net.modules() if isinstance(m, torch.nn.Linear)]


def test_clipping_a_weight_normalised_network_clips_the_weights_it_uses(tiny):
    """Weight clipping on the MLP loss network (weight-normalised by default) acts on the
    weights W = g v / |v| the layers use, as on the same network without weight norm. The
    clamp on g and v themselves, as before 2026-12-07, capped every row's norm at the bound:
    a loss network that gave every image the same activations (chance accuracy)."""
    _, model, _ = _step(tiny, objective="wgan")
    net = model.loss_net.eval()
    plain = build_model(TrainConfig(**{**FAST, "objective": "wgan",                # no norm
                                       "net_options": {**FAST["net_options"], "norm": "none"}}).resolved(),
                        tiny).loss_net.eval()
    with torch.no_grad():
        for m, p in zip(_linears(net), _linears(plain), strict=True):
            p.weight.copy_(m.weight), p.bias.copy_(m.bias)       # the same W, stored as is
    x = tiny.images[:16]
    torch.testing.assert_close(plain(x), net(x))
    with torch.no_grad():
        for m, p in zip(_linears(net), _linears(plain)):
            m.weight = m.weight * 40        # beyond the bound, as training would take them
            m.bias.mul_(40), p.weight.mul_(40), p.bias.mul_(40)
    S.clip_weights(net, 0.01)
    S.clip_weights(plain, 0.01)
    torch.testing.assert_close(net(x), plain(x))
    rows = [m.weight.norm(dim=1) for m in _linears(net)]
    assert max(r.max().item() for r in rows) > 0.05               # rows not capped at 0.01


def test_the_unlabeled_critic_is_weighted_by_the_steps_gamma_not_the_configs(data):
    """gamma_rampup: the training loop passes each epoch's gamma (ramping from 0 up to
    cfg.gamma) to the step; the unlabeled critic term is weighted by that argument."""
    xr, xf, y, cu = data
    obj = O.get_objective("sscls")
    cfg = TrainConfig(objective="sscls", lipschitz="none", gamma=0.5,
                      margin_scale=0.01).resolved()
    D, b, ell = LinD(4, C), _batch(obj, xr, y, cu), S._ell(obj, cfg.loss_form)
    full = S._loss_net_terms(obj, cfg, Nets(D), b, xf, ell, 0.5, None).detach()
    ramp = S._loss_net_terms(obj, cfg, Nets(D), b, xf, ell, 0.125, None).detach()
    assert full[2] > 0
    assert ramp[2].item() == pytest.approx(full[2].item() / 4, rel=1e-12)
    torch.testing.assert_close(ramp[[0, 1, 3, 4]], full[[0, 1, 3, 4]])


def test_the_loss_networks_update_follows_the_sum_of_every_reported_term(tiny):
    """The step's gradient for the loss network is that of sup + lam critic + gamma critic_ul
    + penalty + consistency, the five terms it reports: none is only logged."""
    import copy

    from _tiny import first_draw
    cfg = TrainConfig(**{**FAST, "lipschitz": "zero-gp", "consistency": 3.0,
                         "consistency_teacher": "ema"}).resolved()
    torch.manual_seed(0)
    model = build_model(cfg, tiny)
    twin = copy.deepcopy(model)
    step, ref = (S.TrainStep(m, cfg, torch.device("cpu")) for m in (model, twin))
    b, nz = first_draw(tiny, cfg, generator_step=False)
    torch.manual_seed(1)
    terms = step(b, nz, 1.0, 0.0)[:5]
    got = [p.grad for p in model.loss_net.parameters()]
    torch.manual_seed(1)                               # the same noise draws, by hand
    with torch.no_grad():
        x_f = ref.nets.g(nz.z_f, b.y_gen)
    hand = S._loss_net_terms(ref.obj, cfg, ref.nets, b, x_f, ref.ell, 1.0, nz.eps, True)
    torch.testing.assert_close(terms, hand.detach())
    assert terms[3] > 0 and terms[4] > 0               # the penalty and consistency count
    want = torch.autograd.grad(hand.sum(), list(twin.loss_net.parameters()))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


class _Double(torch.nn.Module):
    def forward(self, w):
        return 2 * w

    def right_inverse(self, w):
        return w / 2


def test_clipping_undoes_stacked_parametrisations_last_first():
    """clip_weights on a weight with two parametrisations (weight norm, then x2): the clipped
    W goes back through them last to first, so the layer uses exactly the clipped W."""
    torch.manual_seed(0)
    lin = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(4, 3))
    parametrize.register_parametrization(lin, "weight", _Double())
    with torch.no_grad():
        big = lin.weight.clone()
    S.clip_weights(lin, 0.05)
    torch.testing.assert_close(lin.weight, big.clamp(-0.05, 0.05))


def test_balanced_stream_draws_classes_equally_with_replacement():
    """balanced_labels: every class equally likely whatever its count, drawn with replacement
    (a batch may be larger than the labeled set)."""
    targets = torch.tensor([0] * 90 + [1] * 10)
    s = S._BalancedStream(targets, 1000, torch.Generator().manual_seed(0))
    idx = torch.cat([s.next() for _ in range(4)])
    share = (targets[idx] == 1).double().mean().item()
    assert 0.45 < share < 0.55                           # not the 0.1 of the counts
    small = S._BalancedStream(torch.tensor([0, 0, 0, 1]), 32, torch.Generator().manual_seed(0))
    assert small.next().shape == (32,)                  # more rows than labeled images


@pytest.mark.parametrize("consistency", [0.0, 1.0])
def test_translate_zero_draws_no_shifts(tiny, monkeypatch, consistency):
    """translate=0 shifts nothing and draws nothing: the data stream stays as it was before the
    option existed (so default runs reproduce)."""
    monkeypatch.setattr(S, "shift_images", lambda *a: pytest.fail("shifted with translate=0"))
    cfg = TrainConfig(**{**FAST, "translate": 0, "consistency": consistency}).resolved()
    b, _ = first_draw(tiny, cfg)
    assert b.x.shape[0] == b.y_gen.shape[0]


def test_fake_classes_follow_the_labeled_class_frequencies():
    """The unlabeled rows' fake partners get classes from the label prior: the labeled set's
    class frequencies, not uniform over the classes."""
    y = torch.tensor([0] * 45 + [1] * 5)
    x = torch.zeros(50, 1, 4, 4)
    cfg = TrainConfig(batch_size=50, unlabeled_ratio=4).resolved()
    d = S._Draws(cfg, x, y, y, torch.zeros(200, 1, 4, 4), torch.Generator().manual_seed(0),
               S._Shard(), 8, True, torch.device("cpu"))
    cu = torch.cat([b.y_gen[b.n:] for b, _ in (d.next(False) for _ in range(5))])
    assert len(cu) == 1000
    assert 0.05 < (cu == 1).double().mean().item() < 0.15    # 0.1 of the labels, not 0.5


# ------------------------------------------------------------------ mutation-testing gaps (step)


# Feature matching on every layer holds the real features fixed through BatchNorm.
def test_feature_matching_on_all_layers_holds_the_real_features_fixed_through_batchnorm():
    """fm_layers='all' with a BatchNorm loss network: the reals share the joint pass with the
    fakes, so their features depend on the fakes through the batch statistics. They are the
    target all the same: the generator's gradient comes through the fakes' features alone,
    as with fm_layers='last'."""
    data = colour()
    torch.manual_seed(0)
    cfg = TrainConfig(**{**CONV, "objective": "sscls", "g_cond_weight": 0.0, "fm_layers": "all",
                         "net_options": {**CONV["net_options"], "input_noise": 0.0,
                                         "dropout": 0.0}}).resolved()
    model = build_model(cfg, data)
    step = S.TrainStep(model, cfg, torch.device("cpu"))
    assert step.nets.batch_stats
    b, nz = first_draw(data, cfg)
    with torch.no_grad():
        x_g = step.nets.g(nz.z, b.y_gen)
    ell = S._ell(step.obj, cfg.loss_form)
    m, x_g = len(b.x), x_g.clone().requires_grad_(True)
    with step.nets.frozen_stats():
        loss = S._generator_loss(cfg, step.nets, b, x_g, ell, 1).sum()
        (got,) = torch.autograd.grad(loss, x_g)
        _, hs = step.nets.d(torch.cat([b.x, x_g]), features="all")
        (both,) = torch.autograd.grad(O.feature_matching([h[:m] for h in hs], [h[m:] for h in hs]),
                                      x_g, retain_graph=True)
        (want,) = torch.autograd.grad(O.feature_matching([h[:m].detach() for h in hs],
                                                         [h[m:] for h in hs]), x_g)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(both, want)              # the real side's path is not negligible


# The generator's conditional term uses the run's loss form.
class _Lin(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = torch.nn.Parameter(torch.randn(3, 4, generator=g, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64))

    def forward(self, x, features=False):
        h = x.flatten(1)
        a = h @ self.W.T + self.b
        return (a, h) if features else a


class _Nets:
    batch_stats = False

    def __init__(self, D):
        self.D = D

    def d(self, x, features=False, eager=False):
        return self.D(x, features=features) if features else self.D(x)


def test_the_conditional_term_with_the_softmax_form_by_hand():
    """loss_form='softmax' with feature matching and g_cond_weight 2: the conditional term is
    2 x mean(-a_y + logsumexp a) over the fakes with their labels, the plain softmax loss
    (not the semi-supervised form's -a_y + softplus(logsumexp a))."""
    cfg = TrainConfig(objective="sscls", lipschitz="none", loss_form="softmax",
                      g_cond_weight=2.0).resolved()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(7, 1, 2, 2, generator=g, dtype=torch.float64) * 2 - 1
    x_g = torch.rand(7, 1, 2, 2, generator=g, dtype=torch.float64) * 2 - 1
    y_gen = torch.tensor([0, 1, 2, 1, 2, 0, 1])
    b = S._Batch(x, y_gen, torch.cat([y_gen[:4], torch.full((3,), -1)]), 4)
    D = _Lin()
    obj = O.get_objective("sscls")
    _, cond = S._generator_loss(cfg, _Nets(D), b, x_g, S._ell(obj, cfg.loss_form), 1).tolist()
    a = x_g.flatten(1).numpy() @ D.W.detach().numpy().T + D.b.detach().numpy()
    lse = np.log(np.exp(a).sum(1))
    softmax_L = -a[np.arange(7), y_gen.numpy()] + lse
    assert cond == pytest.approx(2.0 * softmax_L.mean(), rel=1e-10)


# The supervised baseline never updates the generator.
def test_no_generator_step_without_an_adversary(tiny):
    """step_kind gives no generator update to an objective without a critic (supervised),
    whatever d_steps (an adversarial objective gets one on every step with d_steps 1); a
    supervised run records no generator loss."""
    cfg = TrainConfig(objective="supervised").resolved()
    assert [step_kind(s, cfg, False)[1] for s in range(1, 7)] == [False] * 6
    assert [step_kind(s, cfg, True)[1] for s in range(1, 7)] == [True] * 6
    state = _run(tiny, objective="supervised", epochs=1, seed=3)
    assert state.history and all(r["g_loss"] == 0 for r in state.history)


# The gradient penalty's interpolation points cover the whole segment real-fake.
def test_penalty_interpolation_weights_are_uniform_on_0_1():
    """WGAN-GP draws eps ~ U[0, 1] per row (x_hat = eps x_real + (1 - eps) x_fake): over a
    few steps the draws reach both ends of [0, 1] and average about 1/2."""
    y = torch.arange(4).repeat(16)
    cfg = TrainConfig(batch_size=64, lipschitz="gp", objective="sscls").resolved()
    d = S._Draws(cfg, torch.zeros(64, 1, 4, 4), y, y, torch.zeros(64, 1, 4, 4),
                 torch.Generator().manual_seed(0), S._Shard(), 8, True, torch.device("cpu"))
    eps = torch.cat([d.next(False)[1].eps for _ in range(4)])
    assert len(eps) == 4 * 128
    assert eps.min() >= 0 and eps.max() <= 1
    assert eps.min() < 0.05 and eps.max() > 0.95
    assert 0.4 < eps.mean().item() < 0.6


# Training draws the generator's noise as sampling does: uniform on [-1, 1].
def test_training_noise_is_uniform_on_minus_1_1_like_the_samplers():
    """The fakes of the loss network's step (z_f) and of the generator's (z, z2 for mode
    seeking) use the same noise as CLSGAN.sample: uniform on [-1, 1], half of it negative."""
    y = torch.arange(4).repeat(16)
    cfg = TrainConfig(batch_size=64, objective="sscls", mode_seeking=1.0).resolved()
    d = S._Draws(cfg, torch.zeros(64, 1, 4, 4), y, y, torch.zeros(64, 1, 4, 4),
                 torch.Generator().manual_seed(0), S._Shard(), 16, True, torch.device("cpu"))
    _, nz = d.next(True)
    for z in (nz.z_f, nz.z, nz.z2):
        assert z.shape == (128, 16)
        assert z.min() >= -1 and z.max() <= 1
        assert z.min() < -0.9 and z.max() > 0.9
        assert 0.4 < (z < 0).double().mean().item() < 0.6


# The labeled and unlabeled streams reshuffle at every pass over their images.
def test_each_pass_over_the_images_is_a_fresh_permutation():
    """_Stream gives every index once per pass, in a new random order each pass (an epoch of
    SGD), including a batch that straddles two passes."""
    s = S._Stream(10, 5, torch.Generator().manual_seed(0))
    passes = [torch.cat([s.next(), s.next()]) for _ in range(4)]
    for p in passes:
        assert sorted(p.tolist()) == list(range(10))
    assert len({tuple(p.tolist()) for p in passes}) == 4
    s = S._Stream(4, 3, torch.Generator().manual_seed(0))
    seq = torch.cat([s.next() for _ in range(8)]).view(6, 4)    # 24 draws: six passes
    for p in seq:
        assert sorted(p.tolist()) == [0, 1, 2, 3]
    assert len({tuple(p.tolist()) for p in seq}) > 1
