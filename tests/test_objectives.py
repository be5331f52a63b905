"""The math of DESIGN.md section 2, checked against values derived by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from ganaug import objectives as O


def test_conditional_loss_picks_the_labelled_column():
    a = torch.tensor([[1.0, 2.0, 3.0]])
    expected = -2.0 + math.log(1 + math.e ** 1 + math.e ** 2 + math.e ** 3)
    assert O.conditional_loss(a, torch.tensor([1])).item() == pytest.approx(expected, rel=1e-6)
    softmax = -2.0 + math.log(math.e ** 1 + math.e ** 2 + math.e ** 3)
    assert O.conditional_loss(a, torch.tensor([1]), "softmax").item() == pytest.approx(softmax, rel=1e-6)


def test_lower_loss_means_real_and_of_class_y():
    # sign convention: raising a_y lowers L(x, y)
    a = torch.zeros(1, 4)
    before = O.conditional_loss(a, torch.tensor([2])).item()
    a[0, 2] = 3.0
    assert O.conditional_loss(a, torch.tensor([2])).item() < before
    assert O.conditional_loss(a, torch.tensor([2])).item() > 0  # the implicit fake logit


def test_conditional_loss_is_stable_for_large_activations():
    a = torch.tensor([[1000.0, -1000.0]])
    assert torch.isfinite(O.conditional_loss(a, torch.tensor([0]))).all()
    assert O.conditional_loss(a, torch.tensor([0])).item() == pytest.approx(0.0, abs=1e-6)


def test_unlabeled_loss_is_the_minimum_over_classes():
    a = torch.randn(16, 5, generator=torch.Generator().manual_seed(1)) * 3
    every = torch.stack([O.conditional_loss(a, torch.full((16,), c)) for c in range(5)], dim=1)
    torch.testing.assert_close(O.unlabeled_loss(a), every.min(dim=1).values)
    every_sm = torch.stack([O.conditional_loss(a, torch.full((16,), c), "softmax") for c in range(5)], 1)
    torch.testing.assert_close(O.unlabeled_loss(a, "softmax"), every_sm.min(dim=1).values)


def test_argmin_loss_equals_argmax_activation():
    a = torch.randn(64, 10, generator=torch.Generator().manual_seed(2))
    every = torch.stack([O.conditional_loss(a, torch.full((64,), c)) for c in range(10)], dim=1)
    assert torch.equal(every.argmin(dim=1), a.argmax(dim=1))


def test_margin_is_zero_when_fake_equals_real_and_a_scaled_mean_otherwise():
    x = torch.rand(3, 2, 4, 4) * 2 - 1
    assert torch.equal(O.margin(x, x.clone(), 2.5), torch.zeros(3))
    y = x + 0.1
    torch.testing.assert_close(O.margin(x, y, 2.5), torch.full((3,), 0.25))


def test_margin_is_resolution_independent():
    small, big = torch.zeros(1, 1, 8, 8), torch.zeros(1, 3, 32, 32)
    assert O.margin(small, small + 0.5, 2.0).item() == pytest.approx(O.margin(big, big + 0.5, 2.0).item())


def test_hinge_is_exactly_zero_once_the_margin_is_met():
    l_real, delta = torch.tensor([0.5, 1.0]), torch.tensor([0.2, 0.3])
    met = l_real + delta          # L(fake) = L(real) + Delta: the margin is met exactly
    assert O.ls_critic(l_real, met, delta).item() == 0.0
    assert O.ls_critic(l_real, met + 1.0, delta).item() == 0.0
    # not met by 0.1 on each: the hinge is that shortfall
    assert O.ls_critic(l_real, met - 0.1, delta).item() == pytest.approx(0.1)


def test_gls_with_nu_zero_equals_ls_and_nu_one_is_linear():
    t = torch.linspace(-2, 2, 9)
    assert torch.equal(O.gls_cost(t, 0.0), F.relu(t))
    assert torch.equal(O.gls_cost(t, 1.0), t)
    torch.testing.assert_close(O.gls_cost(t, 0.25), torch.where(t > 0, t, 0.25 * t))
    with pytest.raises(ValueError, match="nu"):
        O.gls_cost(t, 1.5)


def test_gls_takes_negative_slopes_as_the_reference_code_does():
    t = torch.linspace(-2, 2, 9)
    assert torch.equal(O.gls_cost(t, -1.0), t.abs())             # the glsgan code's default
    torch.testing.assert_close(O.gls_cost(t, -0.5), torch.where(t > 0, t, -0.5 * t))
    for bad in (float("nan"), float("inf"), 1.01):
        with pytest.raises(ValueError, match="finite number <= 1"):
            O.gls_cost(t, bad)


def test_gan_critic_is_binary_cross_entropy_of_the_implicit_real_logit():
    g = torch.Generator().manual_seed(3)
    a_r, a_f = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    d_r, d_f = torch.logsumexp(a_r, 1), torch.logsumexp(a_f, 1)   # logit of P(real | x)
    expected = (F.binary_cross_entropy_with_logits(d_r, torch.ones(8))
                + F.binary_cross_entropy_with_logits(d_f, torch.zeros(8)))
    torch.testing.assert_close(O.gan_critic(a_r, a_f, None, None), expected)


def test_conditional_fake_loss_is_minus_log_one_minus_exp_minus_L():
    a = torch.randn(8, 4, generator=torch.Generator().manual_seed(4))
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    L = O.conditional_loss(a, y)
    torch.testing.assert_close(O.fake_loss(a, y), -torch.log1p(-torch.exp(-L)))


def test_wgan_critic_is_the_difference_of_means():
    assert O.wgan_critic(torch.tensor([1.0, 3.0]), torch.tensor([4.0, 6.0])).item() == pytest.approx(-3.0)


def test_gradient_penalties_on_a_linear_function():
    """The penalties' values, and the gradient penalty differentiable in the weights."""
    w = torch.tensor([3.0, 4.0], requires_grad=True)  # ||w|| = 5 everywhere
    fn = lambda x, y: (x.flatten(1) * w).sum(1)       # noqa: E731
    xr, xf = torch.randn(6, 2), torch.randn(6, 2)
    y, eps = torch.zeros(6, dtype=torch.long), torch.rand(6)
    gp = O.gradient_penalty(fn, xr, xf, y, eps, 1.0)
    assert gp.item() == pytest.approx(16.0)
    gp.backward()                                      # d (||w|| - 1)^2 / dw = 2 (5 - 1) w / 5
    torch.testing.assert_close(w.grad, torch.tensor([4.8, 6.4]))
    assert O.gradient_penalty(fn, xr, xf, y, eps, 0.0).item() == pytest.approx(25.0)
    assert O.div_penalty(fn, xr, xf, y, k=2.0, p=6.0).item() == pytest.approx(2.0 * 5.0 ** 6)


def test_feature_matching_is_zero_for_equal_means():
    h = torch.randn(10, 3)
    assert O.feature_matching(h, h.flip(0)).item() == pytest.approx(0.0, abs=1e-6)
    assert O.feature_matching(torch.zeros(2, 2), torch.ones(2, 2)).item() == pytest.approx(2.0)


def test_feature_matching_over_layers_scales_each_to_the_last_layers_width():
    torch.manual_seed(0)
    r = [torch.randn(5, 10), torch.randn(5, 2, 2)]       # 10 units, then 4 (a small map)
    f = [torch.randn(5, 10), torch.randn(5, 2, 2)]
    one = lambda a, b: (a.mean(0) - b.mean(0)).pow(2).sum()  # noqa: E731
    expected = one(r[0], f[0]) * 4 / 10 + one(r[1], f[1])
    torch.testing.assert_close(O.feature_matching(r, f), expected)
    torch.testing.assert_close(O.feature_matching(r[1:], f[1:]), O.feature_matching(r[1], f[1]))
    assert O.feature_matching(r, [h[[1, 0, 2, 3, 4]] for h in r]).item() == pytest.approx(0.0)
    for bad in [(r, f[:1]), ([], []), (r, f[0])]:
        with pytest.raises(ValueError, match="equally long, non-empty lists"):
            O.feature_matching(*bad)


def test_objective_registry():
    assert {"ls", "gls", "cls", "sscls", "gan", "cgan", "wgan", "cwgan", "wgan-gp", "cwgan-gp",
            "wgan-div", "cwgan-div"} <= set(O.list_objectives())
    for name in O.list_objectives():
        obj = O.get_objective(name)
        assert obj.critic in ("ls", "gan", "wgan", "none")
    with pytest.raises(ValueError, match="unknown objective 'nope'"):
        O.get_objective("nope")


def test_mode_seeking_is_the_inverse_image_to_noise_distance_ratio():
    z1, z2 = torch.zeros(4, 10), torch.ones(4, 10)                   # mean |z1 - z2| = 1
    x1, x2 = torch.zeros(4, 1, 2, 2), torch.full((4, 1, 2, 2), 0.5)  # mean |x1 - x2| = 0.5
    assert O.mode_seeking(x1, x2, z1, z2, eps=0.0).item() == pytest.approx(2.0)
    # a collapsed generator (same image for different noise) is penalised by 1 / eps
    assert O.mode_seeking(x1, x1, z1, z2, eps=1e-5).item() == pytest.approx(1e5)


def test_conditional_gan_critic_scores_each_side_with_its_own_labels():
    """gan_critic(a_real, a_fake, y_real, y_fake): L(real, y_real) and -log(1 - exp(-L(fake,
    y_fake))); ganaug's step passes one label tensor twice, so only this test tells them apart."""
    g = torch.Generator().manual_seed(5)
    a_r, a_f = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    y_r, y_f = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([2, 0, 1, 1, 2, 0])
    want = (O.conditional_loss(a_r, y_r).mean()
            - torch.log1p(-torch.exp(-O.conditional_loss(a_f, y_f))).mean())
    torch.testing.assert_close(O.gan_critic(a_r, a_f, y_r, y_f), want)


# ------------------------------------------------------------------ mutation-testing gaps (objectives)


# Conditional and fake losses take class labels of any integer dtype.
def test_conditional_and_fake_losses_accept_int32_and_uint8_labels():
    """Labels held as int32 (numpy's default int on some platforms) or uint8 (a uint8 label
    array) give the same L(x, y) and fake loss as int64 labels; uint8 must not end in
    gather's index-dtype error."""
    a = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    y64 = torch.tensor([1, 2])
    for dtype in (torch.int32, torch.uint8):
        y = y64.to(dtype)
        for form in ("semi", "softmax"):
            torch.testing.assert_close(O.conditional_loss(a, y, form), O.conditional_loss(a, y64, form))
        torch.testing.assert_close(O.fake_loss(a, y), O.fake_loss(a, y64))


# The GLS slope must be finite: minus infinity is refused like plus infinity and NaN.
def test_gls_cost_refuses_minus_infinity():
    """nu = -inf is <= 1 but not finite; C(t) = max(t, nu t) would be +inf for t < 0 and NaN
    at t = 0, so gls_cost refuses it with the same message as +inf and NaN."""
    t = torch.linspace(-2, 2, 9)
    with pytest.raises(ValueError, match="finite number <= 1"):
        O.gls_cost(t, float("-inf"))
    with pytest.raises(ValueError, match="finite number <= 1"):
        O.ls_critic(t, t, torch.zeros(9), float("-inf"))


# The consistency term refuses activations of different batch sizes.
def test_consistency_refuses_a_teacher_batch_of_another_size():
    """Student and teacher activations must match row for row: a teacher batch of one row
    would otherwise broadcast silently against every student row."""
    with pytest.raises(ValueError, match="same shape"):
        O.consistency(torch.zeros(4, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="same shape"):
        O.consistency(torch.zeros(4, 3), torch.zeros(2, 3))


# div_penalty's defaults are the WGAN-div paper's k = 2, p = 6 (DESIGN.md section 2).
def test_div_penalty_defaults_to_k_2_and_p_6():
    """On a linear function with ||grad|| = 5 everywhere the penalty without k or p is
    2 * 5 ** 6."""
    w = torch.tensor([3.0, 4.0])
    fn = lambda x, y: (x.flatten(1) * w).sum(1)  # noqa: E731
    xr, xf = torch.randn(5, 2), torch.randn(5, 2)
    y = torch.zeros(5, dtype=torch.long)
    assert O.div_penalty(fn, xr, xf, y).item() == pytest.approx(2.0 * 5.0 ** 6)
