"""Sample-quality metrics on feature vectors: FID, KID, improved precision/recall, intra-class FID.

Pure math in the style of pytorch-fid: no network, no file I/O. Every function takes 2-D feature
arrays of shape ``(N, D)`` (one row per sample; numpy arrays or torch tensors, any device), works in
float64 and returns Python floats. Extract the features yourself (e.g. Inception pool3, or a
classifier's penultimate layer) and pass the same extractor's output for both sets.

Bad input (not 2-D, mismatched ``D``, NaN/inf) raises ``ValueError``; too few rows raise
``TooFewSamples``, a ``ValueError`` too.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from scipy import linalg


def _numpy(x):
    """A tensor as a CPU numpy array, floating-point ones (bfloat16 too) as float64; else ``x``."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        # numpy has no bfloat16; float16/32 -> float64 is exact, so other dtypes read the same
        return (x.double() if x.is_floating_point() else x).numpy()
    return x


class TooFewSamples(ValueError):
    """A set has fewer rows than the metric needs (more samples would fix it)."""


def _as_features(x, name: str, min_rows: int = 2) -> np.ndarray:
    """``x`` as a finite float64 ``(N, D)`` numpy array with ``N >= min_rows``, else ValueError."""
    x = np.asarray(_numpy(x), dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D (N, D) array with D >= 1, got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise TooFewSamples(f"{name} needs at least {min_rows} samples, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_pair(real, fake, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    real = _as_features(real, "features_real", min_rows)
    fake = _as_features(fake, "features_fake", min_rows)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dims differ: real has D={real.shape[1]}, fake has D={fake.shape[1]}")
    return real, fake


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` (rows are samples) of ``(N, D)`` features, N >= 2."""
    x = _as_features(features, "features")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 @ sigma2))`` with means of shape
    ``(D,)`` and covariances ``(D, D)``. As in pytorch-fid, if the matrix square root is not finite
    (singular product) it is retried with ``eps * I`` added to both covariances, and a negligible
    imaginary part of the root is dropped (ValueError if its diagonal has ``|imag| > 1e-3``).
    Round-off can push the result slightly below zero; it is clamped to 0.
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(_numpy(m), dtype=np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(_numpy(s), dtype=np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"need mu1, mu2 of shape (D,) and sigma1, sigma2 of shape (D, D); got "
                         f"{mu1.shape}, {mu2.shape}, {s1.shape}, {s2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, mu2, s1, s2)):
        raise ValueError("means and covariances must be finite")
    with warnings.catch_warnings():  # scipy warns on singular input; we check the result instead
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(d) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if not np.isfinite(covmean).all():
        raise ValueError("matrix square root of sigma1 @ sigma2 is not finite, even with eps added")
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has a large imaginary component: "
                             f"{np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    return max(float(value), 0.0)


def fid(features_real, features_fake) -> float:
    """Frechet Inception Distance between two ``(N, D)`` feature sets (each N >= 2); lower is better."""
    real, fake = _check_pair(features_real, features_fake)
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def kid(features_real, features_fake, *, subsets: int = 100, subset_size: int = 1000,
        degree: int = 3, gamma: float | None = None, coef0: float = 1,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): ``(mean, std)`` of unbiased MMD^2 over subsets.

    Kernel ``k(x, y) = (gamma * x.y + coef0) ** degree`` with ``gamma = 1 / D`` by default. Each of
    ``subsets`` rounds draws ``m = min(subset_size, N_real, N_fake)`` rows from each set without
    replacement (``numpy.random.default_rng(seed)``, so results are reproducible; a negative
    ``seed`` is taken modulo 2**64, as ``torch.manual_seed`` does) and computes
    ``sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1)) - 2 mean k(x_i, y_j)``.
    ``std`` is the population std (ddof=0) over subsets, as in torch-fidelity. The estimate is
    unbiased, so it can be slightly negative for matching distributions. Each set needs N >= 2.
    """
    real, fake = _check_pair(features_real, features_fake)
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    gamma = 1.0 / real.shape[1] if gamma is None else float(gamma)
    m = min(subset_size, len(real), len(fake))
    if isinstance(seed, numbers.Integral) and seed < 0:
        seed = int(seed) % 2**64     # numpy refuses negative seeds; torch.manual_seed wraps them
    rng = np.random.default_rng(seed)

    def kernel(a, b):
        return (gamma * (a @ b.T) + coef0) ** degree

    mmds = np.empty(subsets)
    for i in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
        off_xx = k_xx.sum() - np.trace(k_xx)
        off_yy = k_yy.sum() - np.trace(k_yy)
        mmds[i] = (off_xx + off_yy) / (m * (m - 1)) - 2 * k_xy.mean()
    return float(mmds.mean()), float(mmds.std())


def _knn_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row, shape ``(N,)``."""
    radii = torch.empty(len(x), dtype=x.dtype)
    for start in range(0, len(x), chunk):
        d = torch.cdist(x[start:start + chunk], x)
        rows = torch.arange(d.shape[0])
        d[rows, rows + start] = float("inf")  # exclude the point itself (not its duplicates)
        radii[start:start + chunk] = d.topk(k, dim=1, largest=False).values[:, -1]
    return radii


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    """Share of ``points`` within ``radii[i]`` of at least one ``centres[i]`` (ball includes its edge)."""
    inside = 0
    for start in range(0, len(points), chunk):
        d = torch.cdist(points[start:start + chunk], centres)
        inside += int((d <= radii[None, :]).any(dim=1).sum())
    return inside / len(points)


def precision_recall(features_real, features_fake, *, k: int = 3,
                     chunk_size: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019), each in [0, 1].

    Each point gets a ball whose radius is the distance to its ``k``-th nearest neighbour in its own
    set (itself excluded). ``precision`` is the share of fake points inside at least one real ball
    (fidelity); ``recall`` the share of real points inside at least one fake ball (coverage). Each
    set needs more than ``k`` rows. Distances use ``torch.cdist`` on ``chunk_size`` rows at a time,
    so memory is O(chunk_size * N), e.g. 10k x 10k sets work.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    k = int(k)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    real, fake = (torch.from_numpy(a) for a in _check_pair(features_real, features_fake, k + 1))
    r_real, r_fake = _knn_radii(real, k, chunk_size), _knn_radii(fake, k, chunk_size)
    return _coverage(fake, real, r_real, chunk_size), _coverage(real, fake, r_fake, chunk_size)


def intra_class_fid(features_real, labels_real, features_fake,
                    labels_fake) -> tuple[float, dict[int, float]]:
    """FID per class: returns ``(mean, {class_id: fid})`` over the union of classes in both label sets.

    ``labels_*`` are 1-D integer arrays/tensors with one label per feature row. ``mean`` is the
    unweighted mean of the per-class values; the dict is ordered by class id. A class with fewer
    than 2 samples in either set raises ValueError naming the class.
    """
    real, fake = _check_pair(features_real, features_fake)
    labels = []
    for name, lab, feats in (("labels_real", labels_real, real), ("labels_fake", labels_fake, fake)):
        lab = lab.detach().cpu().numpy() if isinstance(lab, torch.Tensor) else np.asarray(lab)
        if lab.shape != (len(feats),):
            raise ValueError(f"{name} must have shape ({len(feats)},), got {lab.shape}")
        labels.append(lab)
    per_class = {}
    for c in np.union1d(*labels):
        n_real, n_fake = int((labels[0] == c).sum()), int((labels[1] == c).sum())
        if n_real < 2 or n_fake < 2:
            raise TooFewSamples(f"class {c.item()!r} needs at least 2 samples in each set, "
                             f"got {n_real} real and {n_fake} fake")
        per_class[c.item()] = fid(real[labels[0] == c], fake[labels[1] == c])
    return float(np.mean(list(per_class.values()))), per_class
