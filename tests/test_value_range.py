"""value_range and the sampler range checks: what is refused, what warns, and which line
the warnings name. From a mutation run of sampling.py and mix.py (run 11)."""

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from ganaug import BatchMixer, SyntheticMix


def _rand(n=16):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))     # [0, 1]


class _Items(Dataset):
    """Items ``x`` (tensors or arrays), labelled 0, 1, 2, 3, 0, ..."""

    def __init__(self, x):
        self.x, self.targets = x, [i % 4 for i in range(len(x))]

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def test_constant_items_inside_their_range_do_not_warn():
    """Constant items (one value everywhere) inside value_range are not called "under 2% of it"."""
    x = torch.full((16, 1, 8, 8), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SyntheticMix(_Items(x), lambda y: torch.rand(len(y), 1, 8, 8) * 2 - 1, fraction=0.5,
                     value_range=(0, 1))


def _noise(y):
    return torch.rand(len(y), 1, 8, 8) * 2 - 1


def test_the_narrow_range_line_is_2_percent():
    """Items using 4% of value_range (over the 2% line) are not warned about."""
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 10   # [0, 10]
    x[0, 0, 0, :2] = torch.tensor([0.0, 10.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SyntheticMix(_Items(x), _noise, fraction=0.5, value_range=(0, 255))      # 3.9%
    with pytest.warns(UserWarning, match="under 2% of it"):
        SyntheticMix(_Items(x / 10 * 4), _noise, fraction=0.5, value_range=(0, 255))  # 1.6%


def test_items_up_to_2_given_0_1_are_refused():
    """Items reaching twice value_range's top (over half its width past it) are refused."""
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2    # [0, 2]
    x[0, 0, 0, :2] = torch.tensor([0.0, 2.0])
    with pytest.raises(ValueError, match=r"value_range=\(0, 1\) but the real items' values "
                                         r"span \[0, 2\], far outside it"):
        SyntheticMix(_Items(x), lambda y: torch.zeros(len(y), 1, 8, 8), fraction=0.5,
                     value_range=(0, 1))


def test_the_value_range_warning_is_attributed_to_the_callers_line():
    """The value_range warning points at the caller's line that built the mix."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        SyntheticMix(_Items(_rand()), lambda y: torch.rand(len(y), 1, 8, 8) * 2 - 1,
                     fraction=0.5, value_range=(-1, 1))
    got = [w for w in rec if "but the real items' values span" in str(w.message)]
    assert len(got) == 1 and "none below 0" in str(got[0].message)
    assert got[0].filename == __file__


def test_uint8_arrays_given_0_1_are_refused():
    """numpy items are checked against a value_range given for them, as tensor items are."""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (8, 8, 1), dtype=np.uint8) for _ in range(16)]
    with pytest.raises(ValueError, match=r"value_range=\(0, 1\) but the real items' values "
                                         r"span \[\d+, 2\d\d\], far outside it"):
        SyntheticMix(_Items(arrays), lambda y: torch.zeros(len(y), 1, 8, 8), fraction=0.5,
                     value_range=(0, 1))


def _faint(y):                                          # spans [-0.01, 0.01]: 1% of [-1, 1]
    return (torch.rand(len(y), 1, 8, 8) * 2 - 1) * 0.01


def test_a_faint_sampler_in_minus_one_one_is_not_warned_about():
    """A sampler whose images stay near 0 (inside [-1, 1], below and above 0) is not told that it
    must return [-1, 1] images."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*the sampler's images span")
        SyntheticMix(_Items(_rand() * 2 - 1), _faint, fraction=0.5)
        BatchMixer(_faint, 0.5, num_classes=4)(torch.rand(8, 1, 8, 8) * 2 - 1,
                                               torch.arange(8) % 4)
