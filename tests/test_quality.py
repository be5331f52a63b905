import itertools

import numpy as np
import pytest
import torch
from scipy import linalg

from ganaug.quality import (feature_statistics, fid, frechet_distance, intra_class_fid, kid,
                            precision_recall)


def gauss(n, d, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


# ----------------------------------------------------------------------------- statistics / FID

def test_feature_statistics_matches_numpy_and_accepts_torch():
    x = gauss(50, 3)
    mu, sigma = feature_statistics(torch.from_numpy(x).float())
    assert mu.shape == (3,) and sigma.shape == (3, 3) and mu.dtype == np.float64
    assert mu == pytest.approx(x.mean(0), abs=1e-6)
    assert sigma == pytest.approx(np.cov(x.T, ddof=1), abs=1e-6)  # unbiased
    assert feature_statistics(x[:, :1])[1].shape == (1, 1)


def test_frechet_distance_of_identical_gaussians_is_zero():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    s = a @ a.T + np.eye(6)
    mu = rng.normal(size=6)
    value = frechet_distance(mu, s, mu, s)
    assert value == pytest.approx(0.0, abs=1e-9) and value >= 0.0
    x = gauss(100, 5)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)
    assert isinstance(fid(x, x), float)


def test_frechet_distance_analytic_shift_and_diagonal():
    m = np.array([1.0, -2.0, 0.5, 3.0])
    assert frechet_distance(np.zeros(4), np.eye(4), m, np.eye(4)) == pytest.approx(m @ m, rel=1e-9)
    a, b = np.array([1.0, 4.0, 0.25, 2.0]), np.array([9.0, 1.0, 0.25, 0.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    expected = 5.0 + np.sum(a + b - 2 * np.sqrt(a * b))  # = 5 + 4 + 1 + 0 + 2
    assert expected == pytest.approx(12.0)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, np.diag(b), mu2, np.diag(a)) == pytest.approx(expected, rel=1e-6)


def test_fid_of_sampled_shifted_gaussians_near_analytic():
    # sampling noise of ||mean_1 - mean_2||^2 has relative std ~ 2 sqrt(2 / n) / ||m|| ~ 1%
    m = np.array([2.0, 2.0, 2.0, 2.0])  # ||m||^2 = 16
    value = fid(gauss(4000, 4, seed=1), gauss(4000, 4, shift=m, seed=2))
    assert value == pytest.approx(16.0, rel=0.05)
    # same distribution: small compared with the shift
    assert fid(gauss(4000, 4, seed=1), gauss(4000, 4, seed=2)) == pytest.approx(0.0, abs=0.05)


def test_fid_with_fewer_samples_than_dims_is_finite():
    value = fid(gauss(5, 20, seed=1), gauss(5, 20, seed=2))
    assert np.isfinite(value) and value > 0


def test_frechet_distance_falls_back_to_eps_offset(monkeypatch):
    calls = []
    real_sqrtm = linalg.sqrtm

    def fake_sqrtm(a):
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(linalg, "sqrtm", fake_sqrtm)
    value = frechet_distance(np.zeros(2), np.eye(2), np.array([3.0, 0.0]), np.eye(2), eps=0.5)
    assert len(calls) == 2
    assert calls[1] == pytest.approx((1.5 * np.eye(2)) @ (1.5 * np.eye(2)))
    # pytorch-fid convention: offset root, original traces: 9 + 2 + 2 - 2 * Tr(1.5 I)
    assert value == pytest.approx(7.0, rel=1e-9)
    calls.clear()                 # the first root fails again, so the offset one is used
    value = frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), eps=0.5)
    assert len(calls) == 2
    assert value == 0.0  # 2 + 2 - 2 * Tr(1.5 I) = -2 < 0 is clamped to 0


def test_frechet_distance_imaginary_component(monkeypatch):
    monkeypatch.setattr(linalg, "sqrtm", lambda a: np.eye(2) + 1e-9j)
    assert frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2)) == \
        pytest.approx(0.0, abs=1e-12)
    monkeypatch.setattr(linalg, "sqrtm", lambda a: np.eye(2) + 0.1j * np.eye(2))
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))


def test_frechet_distance_shape_errors():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="finite"):
        frechet_distance(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))


# ----------------------------------------------------------------------------- KID

def brute_force_mmd2(x, y, degree, gamma, coef0):
    k = lambda a, b: (gamma * float(a @ b) + coef0) ** degree
    m = len(x)
    pairs = [(i, j) for i, j in itertools.product(range(m), repeat=2) if i != j]
    xx = sum(k(x[i], x[j]) for i, j in pairs) / len(pairs)
    yy = sum(k(y[i], y[j]) for i, j in pairs) / len(pairs)
    xy = sum(k(x[i], y[j]) for i, j in itertools.product(range(m), repeat=2)) / m ** 2
    return xx + yy - 2 * xy


def test_kid_matches_unbiased_formula_on_whole_sets():
    x, y = gauss(6, 3, seed=1), gauss(6, 3, shift=0.3, seed=2)
    # subset_size clipped to 6 = whole set, so every subset gives the same value, std 0
    mean, std = kid(x, y, subsets=3, subset_size=1000)
    assert mean == pytest.approx(brute_force_mmd2(x, y, 3, 1 / 3, 1), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)
    mean, _ = kid(x, y, subsets=2, degree=2, gamma=0.5, coef0=2)
    assert mean == pytest.approx(brute_force_mmd2(x, y, 2, 0.5, 2), rel=1e-10)


def test_kid_same_distribution_small_and_shift_large():
    a, b = gauss(2000, 4, seed=1), gauss(2000, 4, seed=2)
    same, std = kid(a, b, subsets=10, subset_size=1000)
    shifted, _ = kid(a, b + 0.5, subsets=10, subset_size=1000)
    assert same == pytest.approx(0.0, abs=1e-2)
    assert std > 0
    assert shifted > 1.0 and shifted > 100 * abs(same)


def test_kid_linear_kernel_estimates_squared_mean_shift():
    m = np.ones(4)  # population MMD^2 with the linear kernel = ||m||^2 = 4
    mean, _ = kid(gauss(2000, 4, seed=1), gauss(2000, 4, shift=m, seed=2), subsets=10,
                  subset_size=1000, degree=1, gamma=1, coef0=0)
    assert mean == pytest.approx(4.0, rel=0.1)


def test_kid_is_reproducible_and_seed_dependent():
    a, b = gauss(300, 4, seed=1), gauss(300, 4, shift=0.2, seed=2)
    r1 = kid(a, b, subsets=5, subset_size=50, seed=3)
    assert kid(torch.from_numpy(a), b, subsets=5, subset_size=50, seed=3) == pytest.approx(r1)
    assert kid(a, b, subsets=5, subset_size=50, seed=4)[0] != pytest.approx(r1[0], rel=1e-9)


def test_kid_argument_errors():
    with pytest.raises(ValueError, match="at least 2"):
        kid(gauss(1, 3), gauss(10, 3))
    with pytest.raises(ValueError, match="subset"):
        kid(gauss(10, 3), gauss(10, 3), subset_size=1)


# ----------------------------------------------------------------------------- precision / recall

def four_modes(n_per_mode, modes, seed):
    rng = np.random.default_rng(seed)
    centres = np.array([(0, 0), (20, 0), (0, 20), (20, 20)], dtype=float)[modes]
    return np.concatenate([rng.normal(size=(n_per_mode, 2)) + c for c in centres])


def test_precision_recall_identical_and_disjoint():
    x = four_modes(50, [0, 1, 2, 3], seed=0)
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(x, torch.from_numpy(x + 100.0)) == (0.0, 0.0)


def test_precision_recall_half_the_modes():
    real = four_modes(200, [0, 1, 2, 3], seed=0)
    fake = four_modes(200, [0, 1], seed=1)
    precision, recall = precision_recall(real, fake, k=3)
    assert precision == pytest.approx(1.0, abs=0.07)
    assert recall == pytest.approx(0.5, abs=0.05)
    assert recall <= 0.5  # the two uncovered modes contribute nothing


def test_precision_recall_matches_brute_force_and_is_chunk_independent():
    real, fake = gauss(40, 3, seed=1), gauss(30, 3, shift=0.5, seed=2)

    def radii(x, k):
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def cover(p, c, r):
        return float(np.mean((np.linalg.norm(p[:, None] - c[None], axis=-1) <= r).any(1)))

    k = 4
    expected = (cover(fake, real, radii(real, k)), cover(real, fake, radii(fake, k)))
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1
    assert precision_recall(real, fake, k=k) == pytest.approx(expected)
    assert precision_recall(real, fake, k=k, chunk_size=7) == pytest.approx(expected)


def test_precision_recall_errors():
    with pytest.raises(ValueError, match="at least 4"):
        precision_recall(gauss(3, 2), gauss(10, 2), k=3)
    with pytest.raises(ValueError, match="k must"):
        precision_recall(gauss(10, 2), gauss(10, 2), k=0)


# ----------------------------------------------------------------------------- intra-class FID

def test_intra_class_fid_two_classes():
    real = np.concatenate([gauss(1000, 2, seed=1), gauss(1000, 2, shift=5.0, seed=2)])
    fake = np.concatenate([gauss(1000, 2, shift=[3.0, 3.0], seed=3),  # class 3: FID ~ 18
                           gauss(1000, 2, shift=5.0, seed=4)])        # class 7: FID ~ 0
    labels = np.repeat([3, 7], 1000)
    mean, per_class = intra_class_fid(real, torch.from_numpy(labels), fake, labels)
    assert list(per_class) == [3, 7]
    assert per_class[3] == pytest.approx(18.0, rel=0.1)
    assert per_class[7] == pytest.approx(0.0, abs=0.05)
    assert mean == pytest.approx((per_class[3] + per_class[7]) / 2, rel=1e-12)
    assert per_class[3] == pytest.approx(fid(real[:1000], fake[:1000]), rel=1e-12)


def test_intra_class_fid_errors():
    x = gauss(10, 2)
    labels = np.array([0] * 5 + [1] * 5)
    with pytest.raises(ValueError, match="class 2"):
        intra_class_fid(x, labels, x, np.array([0] * 5 + [1] * 4 + [2]))
    with pytest.raises(ValueError, match="class 1"):  # class missing from the fake set
        intra_class_fid(x, labels, x, np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="labels_real"):
        intra_class_fid(x, labels[:9], x, labels)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("func", [fid, kid, precision_recall])
def test_bad_feature_input(func):
    good = gauss(20, 3)
    with pytest.raises(ValueError, match="dims differ"):
        func(good, gauss(20, 4))
    with pytest.raises(ValueError, match="2-D"):
        func(good[:, 0], good)
    bad = good.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        func(good, bad)
    with pytest.raises(ValueError, match="at least"):
        func(good, good[:1])


def test_feature_statistics_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(gauss(1, 3))
    with pytest.raises(ValueError, match="infinite"):
        feature_statistics(np.array([[0.0, np.inf], [1.0, 2.0]]))


def test_kid_with_sets_of_different_sizes_and_population_std():
    # 9 real, 6 fake rows: m = 6; real rows are drawn from all 9, fake rows from all 6
    x, y = gauss(9, 3, seed=1), gauss(6, 3, shift=0.3, seed=2)
    mean, std = kid(x, y, subsets=20, subset_size=1000, seed=0)
    rng = np.random.default_rng(0)          # the documented draw: real rows, then fake rows
    vals = []
    for _ in range(20):
        xs = x[rng.choice(9, 6, replace=False)]
        ys = y[rng.choice(6, 6, replace=False)]
        vals.append(brute_force_mmd2(xs, ys, 3, 1 / 3, 1))
    assert mean == pytest.approx(np.mean(vals), rel=1e-10)
    assert std == pytest.approx(np.std(vals, ddof=0), rel=1e-10)   # population std, as torch-fidelity


def test_precision_recall_balls_include_their_edge():
    # on a 1-D grid with step 1 every 1-NN radius is exactly 1: a fake point at distance 1
    # from the last real point is inside its ball, one at distance 2 is not
    real = np.arange(4.0)[:, None]
    fake = np.array([[4.0], [6.0]])
    # fake radii are 2 (|6 - 4|): real 2 (on the edge) and real 3 are inside the ball of 4
    assert precision_recall(real, fake, k=1) == (0.5, 0.5)
    # duplicated points (a memorising generator): k-NN radius 0, the ball is its centre
    x = np.repeat(four_modes(5, [0, 1, 2, 3], seed=0), 4, axis=0)
    assert precision_recall(x, x, k=3) == (1.0, 1.0)


def test_intra_class_fid_uses_each_sets_own_labels_and_an_unweighted_mean():
    real = np.concatenate([gauss(400, 2, seed=1), gauss(400, 2, shift=5.0, seed=2),
                           gauss(400, 2, shift=-5.0, seed=3)])
    labels_real = np.repeat([0, 1, 2], 400)
    # fake: other sizes, other order (class 2 first), per-class FIDs ~ 0, 2 and 18
    fake = np.concatenate([gauss(100, 2, shift=-8.0, seed=4), gauss(300, 2, seed=5),
                           gauss(200, 2, shift=6.0, seed=6)])
    labels_fake = np.concatenate([np.full(100, 2), np.full(300, 0), np.full(200, 1)])
    mean, per_class = intra_class_fid(real, labels_real, fake, labels_fake)
    assert per_class[0] == pytest.approx(fid(real[:400], fake[100:400]), rel=1e-12)
    assert per_class[1] == pytest.approx(fid(real[400:800], fake[400:]), rel=1e-12)
    assert per_class[2] == pytest.approx(fid(real[800:], fake[:100]), rel=1e-12)
    assert per_class[0] < 0.2 and per_class[1] == pytest.approx(2.0, rel=0.25)
    assert per_class[2] == pytest.approx(18.0, rel=0.2)
    assert mean == pytest.approx(sum(per_class.values()) / 3, rel=1e-12)   # not weighted, not a median


def test_metrics_accept_tensors_that_require_grad():
    x = torch.from_numpy(gauss(50, 3, seed=1)).requires_grad_()
    y = torch.from_numpy(gauss(50, 3, shift=1.0, seed=2)).requires_grad_()
    assert fid(x, y) == pytest.approx(fid(x.detach().numpy(), y.detach().numpy()))
    assert kid(x, y, subsets=2, subset_size=20) == pytest.approx(
        kid(x.detach().numpy(), y.detach().numpy(), subsets=2, subset_size=20))


# ----------------------------------------------------------------------------- mutation review

def _spd_sqrt(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def test_frechet_distance_of_non_commuting_covariances_matches_an_independent_formula():
    # Tr sqrtm(s1 s2) = Tr sqrtm(s1^1/2 s2 s1^1/2), a symmetric PSD root (eigh), so no
    # sqrtm of a non-symmetric product is needed; s1 and s2 do not commute, so
    # Tr(sqrtm(s1) sqrtm(s2)) would be a different (wrong) number
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    r1 = _spd_sqrt(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * cross
    assert not np.allclose(s1 @ s2, s2 @ s1)
    assert np.trace(_spd_sqrt(s1) @ _spd_sqrt(s2)) != pytest.approx(cross, rel=1e-3)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    # and fid on anisotropic samples is the same formula on the sample mean / unbiased cov
    x = rng.normal(size=(60, 4)) @ a.T
    y = rng.normal(size=(50, 4)) @ b.T + 1.0
    mx, my, cx, cy = x.mean(0), y.mean(0), np.cov(x.T, ddof=1), np.cov(y.T, ddof=1)
    rx = _spd_sqrt(cx)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(rx @ cy @ rx), 0, None)).sum()
    assert fid(x, y) == pytest.approx((mx - my) @ (mx - my) + np.trace(cx + cy) - 2 * cross,
                                      rel=1e-8)


def test_float64_tensors_keep_their_precision():
    # features far from 0 with small spread: float32 would round the spread away
    x = 1e4 + gauss(40, 3, seed=1) * 1e-3
    y = 1e4 + gauss(40, 3, shift=1e-3, seed=2) * 1e-3
    mu, sigma = feature_statistics(torch.from_numpy(x))
    assert np.array_equal(mu, x.mean(0)) and np.array_equal(sigma, np.cov(x.T, ddof=1))
    assert fid(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(fid(x, y), rel=1e-9)


def test_features_with_no_columns_are_refused():
    for func in (fid, kid, precision_recall, feature_statistics):
        args = (np.zeros((5, 0)),) if func is feature_statistics else (np.zeros((5, 0)),) * 2
        with pytest.raises(ValueError, match="D >= 1"):
            func(*args)


def test_the_imaginary_part_check_reads_the_diagonal_with_tolerance_1e_3(monkeypatch):
    args = (np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))
    monkeypatch.setattr(linalg, "sqrtm", lambda a: np.eye(2) + 2e-3j * np.eye(2))
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(*args)
    monkeypatch.setattr(linalg, "sqrtm", lambda a: np.eye(2) + 5e-4j * np.eye(2))
    assert frechet_distance(*args) == pytest.approx(0.0, abs=1e-12)
    # a large imaginary part off the diagonal does not count (pytorch-fid's rule)
    monkeypatch.setattr(linalg, "sqrtm", lambda a: np.eye(2) + 0.5j * (1 - np.eye(2)))
    assert frechet_distance(*args) == pytest.approx(0.0, abs=1e-12)


def test_kid_refuses_zero_subsets():
    with pytest.raises(ValueError, match="subsets >= 1"):
        kid(gauss(10, 3), gauss(10, 3), subsets=0)


def test_precision_recall_refuses_bad_k_and_chunk_size():
    x = gauss(10, 2)
    for k in (2.5, "3", True):
        with pytest.raises(ValueError, match="k must"):
            precision_recall(x, x, k=k)
    # a numpy integer is an int like any other
    real, fake = gauss(10, 2, seed=1), gauss(10, 2, seed=2)
    assert precision_recall(real, fake, k=np.int64(3)) == precision_recall(real, fake, k=3)
    with pytest.raises(ValueError, match="chunk_size"):
        precision_recall(x, x, chunk_size=0)


def test_precision_recall_radii_are_float64_at_the_ball_edge():
    # real radii are exactly 0.1 (in float64); a fake point 0.1 + 1e-9 from real 0 is outside,
    # though float32(0.1) = 0.10000000149 would take it in
    real = np.array([[0.0], [0.1]])
    fake = np.array([[-0.1 - 1e-9], [0.05]])
    assert precision_recall(real, fake, k=1) == (0.5, 1.0)


def test_intra_class_fid_refuses_labels_that_are_not_1_d():
    x = gauss(10, 2)
    labels = np.array([0] * 5 + [1] * 5)
    with pytest.raises(ValueError, match="labels_real"):
        intra_class_fid(x, labels[:, None], x, labels)
    with pytest.raises(ValueError, match="labels_fake"):
        intra_class_fid(x, labels, x, torch.from_numpy(labels)[:, None])


def test_intra_class_fid_keys_are_python_ints():
    import json
    x = gauss(10, 2)
    labels = np.array([4] * 5 + [9] * 5, dtype=np.int64)
    _, per_class = intra_class_fid(x, labels, x, torch.from_numpy(labels))
    assert [type(c) for c in per_class] == [int, int] and list(per_class) == [4, 9]
    assert json.loads(json.dumps(per_class)).keys() == {"4", "9"}


# ----------------------------------------------------------------------------- audit fixes

def test_kid_accepts_a_negative_seed_modulo_2_64_as_torch_does():
    # numpy's default_rng refuses negative seeds; torch.manual_seed(-1) means 2**64 - 1
    a, b = gauss(300, 4, seed=1), gauss(300, 4, shift=0.2, seed=2)
    assert torch.Generator().manual_seed(-1).initial_seed() == 2**64 - 1
    value = kid(a, b, subsets=5, subset_size=50, seed=-1)
    assert value == kid(a, b, subsets=5, subset_size=50, seed=2**64 - 1)
    assert kid(a, b, subsets=5, subset_size=50, seed=np.int64(-2)) == \
        kid(a, b, subsets=5, subset_size=50, seed=2**64 - 2)
    assert value[0] != pytest.approx(kid(a, b, subsets=5, subset_size=50, seed=1)[0], rel=1e-9)


def test_kid_of_a_non_negative_seed_draws_from_default_rng_of_that_seed():
    # the subsets of seed 3 are numpy.random.default_rng(3)'s draws, as before negative seeds
    a, b = gauss(30, 4, seed=1), gauss(30, 4, shift=0.2, seed=2)
    rng = np.random.default_rng(3)
    x, y = a[rng.choice(30, 10, replace=False)], b[rng.choice(30, 10, replace=False)]
    mean, std = kid(a, b, subsets=1, subset_size=10, degree=3, gamma=0.25, coef0=1, seed=3)
    assert std == 0.0
    assert mean == pytest.approx(brute_force_mmd2(x, y, 3, 0.25, 1), rel=1e-12)


def test_bfloat16_and_float16_tensors_are_read_in_float64():
    x = torch.from_numpy(gauss(50, 8, seed=1)).bfloat16()
    y = torch.from_numpy(gauss(50, 8, shift=1.0, seed=2)).bfloat16()
    x64, y64 = x.double().numpy(), y.double().numpy()      # bf16 -> float64 is exact
    assert fid(x, y) == fid(x64, y64)
    assert kid(x, y, subsets=3, subset_size=20) == kid(x64, y64, subsets=3, subset_size=20)
    assert precision_recall(x, y) == precision_recall(x64, y64)
    assert intra_class_fid(x, [0, 1] * 25, y, [0, 1] * 25) == \
        intra_class_fid(x64, [0, 1] * 25, y64, [0, 1] * 25)
    mu, sigma = feature_statistics(x)
    assert np.array_equal(mu, x64.mean(0))
    t = (torch.from_numpy(v).bfloat16() for v in (mu, sigma, mu + 1, sigma))
    assert np.isfinite(frechet_distance(*t))
    assert fid(x.half(), y.half()) == fid(x.half().double().numpy(), y.half().double().numpy())


def test_float32_tensors_read_as_before():
    # float32 -> float64 is exact: the same numbers as numpy's own widening of the array
    x = torch.from_numpy(gauss(60, 5, seed=1)).float()
    y = torch.from_numpy(gauss(60, 5, shift=0.5, seed=2)).float()
    xn, yn = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    assert fid(x, y) == fid(xn, yn)
    assert kid(x, y, subsets=3, subset_size=20) == kid(xn, yn, subsets=3, subset_size=20)
    assert precision_recall(x, y) == precision_recall(xn, yn)


def test_too_few_rows_is_its_own_error_type():
    # evaluation.py tells "more samples would help" apart by this type, not by the message
    import numpy as np
    from ganaug.quality import TooFewSamples, fid, intra_class_fid, precision_recall
    x = np.zeros((1, 3))
    with pytest.raises(TooFewSamples):
        fid(x, np.ones((5, 3)))
    with pytest.raises(TooFewSamples):
        precision_recall(np.ones((3, 2)), np.ones((3, 2)), k=3)
    with pytest.raises(TooFewSamples, match="class 1"):
        intra_class_fid(np.random.rand(4, 2), [0, 0, 1, 1], np.random.rand(3, 2), [0, 0, 1])
    with pytest.raises(ValueError) as e:             # other bad input is not "too few"
        fid(np.ones((5, 2)), np.ones((5, 3)))
    assert not isinstance(e.value, TooFewSamples)
