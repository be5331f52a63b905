"""value_range and the sampler range checks: what is refused, what warns, and which line
the warnings name. From a mutation run of sampling.py and mix.py (run 11)."""

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from ganaug import BatchMixer, SyntheticMix


def _rand(n=16, c=1):
    return torch.rand(n, c, 8, 8, generator=torch.Generator().manual_seed(0))     # [0, 1]


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


# --- from a drive of the Python API (run 13): ranges a user can get wrong without a word ----
class _PIL(Dataset):
    def __init__(self, n=16):
        from PIL import Image
        g = np.random.default_rng(0)
        self.x = [Image.fromarray((g.random((8, 8)) * 255).astype(np.uint8), mode="L")
                  for _ in range(n)]
        self.targets = [i % 4 for i in range(n)]

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


@pytest.mark.parametrize("given", [(0, 1), (-1, 1)])
def test_pil_items_refuse_a_value_range_but_0_255(given):
    """PIL items are 0..255: value_range=(0, 1) made black synthetic images (values 0 and 1)
    and (-1, 1) wrapped -1 to 255. Refused, naming the fix; (0, 255) is what they are."""
    with pytest.raises(ValueError, match=rf"value_range={given!r}.*PIL images, whose values "
                                         rf"are 0..255.*leave value_range out"
                       .replace("(", r"\(").replace(")", r"\)")):
        SyntheticMix(_PIL(), _noise, fraction=0.5, value_range=given)
    mix = SyntheticMix(_PIL(), _noise, fraction=0.5, value_range=(0, 255))
    assert mix.format.value_range == (0, 255)


def _rgb(n=32):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))   # [0, 1]


def _rgb_noise(y):
    return torch.rand(len(y), 3, 8, 8) * 2 - 1


MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


def test_a_value_range_over_per_channel_normalised_items_warns():
    """One value_range for RGB items normalised per channel would shift the synthetic items'
    colours: a warning names the channels' ranges and the fix (the transform)."""
    x = (_rgb() - MEAN[:, None, None]) / STD[:, None, None]
    lo, hi = float(x.min()), float(x.max())
    with pytest.warns(UserWarning, match=r"one range for every channel, but the real items' "
                                         r"channels span different ranges \(\[-2.1.*, .*\].*"
                                         r"SyntheticMix's transform="):
        SyntheticMix(_Items(x), _rgb_noise, fraction=0.5, value_range=(lo, hi))


@pytest.mark.parametrize("given", [(0, 1), (-1, 1)])
def test_one_range_for_every_channel_does_not_warn(given):
    """Plain RGB items in [0, 1] given (0, 1), and in [-1, 1] given (-1, 1), are fine."""
    x = given[0] + _rgb() * (given[1] - given[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SyntheticMix(_Items(x), _rgb_noise, fraction=0.5, value_range=given)


@pytest.mark.parametrize("shift", [0.5, 0.3])
def test_centred_items_taken_as_minus_one_one_warn(shift):
    """Floats inside [-1, 1] that come nowhere near its ends (x - 0.5: [-0.5, 0.5]) are taken
    as (-1, 1), so the synthetic items would fill a wider range: a warning says so, naming
    the user's line; items reaching -1 do not warn."""
    x = _rand() - shift
    with pytest.warns(UserWarning, match=rf"values span \[-{shift}, .*inside \[-1, 1\] without "
                                         r"coming near its ends") as rec:
        SyntheticMix(_Items(x), _noise, fraction=0.5)
    assert rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SyntheticMix(_Items(_rand() * 2 - 1), _noise, fraction=0.5)


def test_batch_mixer_with_a_transform_still_checks_the_range():
    """A normalised batch of [0, 1] images with the default value_range (-1, 1): the
    synthetic images, mapped to (-1, 1) and then normalised, would reach -3.25 where the
    batch stops at -0.75. With a transform the first batch is compared with where the
    transform takes the range's ends."""
    norm = lambda t: (t - 0.3) / 0.4
    x = norm(_rand(8))
    x[0, 0, 0, :2] = norm(torch.tensor([0.0, 1.0]))
    y = torch.arange(8) % 4
    mixer = BatchMixer(_noise, 0.5, num_classes=4, transform=norm, label_check=0)
    with pytest.warns(UserWarning, match=r"the batch's images span \[-0.75, 1.75\] but "
                                         r"BatchMixer makes synthetic ones in value_range="
                                         r"\(-1, 1\) and then the transform, which takes it to "
                                         r"\[-3.25, 1.75\].*range before the transform"):
        mixer(x, y)
    right = BatchMixer(_noise, 0.5, num_classes=4, transform=norm, label_check=0,
                       value_range=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        right(x, y)
        right(x, y)


def test_batch_mixer_range_check_leaves_the_rng_and_skips_a_failing_transform():
    """The check's transform calls do not move torch's RNG (a random transform), and a
    transform that fails on the check's images skips the check, not the batch."""
    x, y = _rand(8) * 2 - 1, torch.arange(8) % 4
    noisy = lambda t: t + 0.01 * torch.randn_like(t)
    mixer = BatchMixer(_noise, 0.5, num_classes=4, transform=noisy, label_check=0)
    torch.manual_seed(0)
    mixer._check_range(x)
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))

    calls = []

    def picky(t):
        calls.append(len(t))
        if len(t) == 1:
            raise RuntimeError("wants whole batches")
        return t
    mixer = BatchMixer(_noise, 0.5, num_classes=4, transform=picky, label_check=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = mixer(x, y)
    assert len(out) == 16 and calls[-1] == 8


def test_batch_mixer_checks_a_per_channel_normalisation_channel_by_channel():
    """A batch of [0, 1] RGB images normalised with a mean and std per channel (ImageNet's),
    with the default value_range (-1, 1): each channel is mapped back through its own
    ends, so the forgotten range is seen (over all channels at once it read -0.04, not 0)."""
    m, s = MEAN[:, None, None], STD[:, None, None]
    norm = lambda t: (t - m) / s
    x = norm(_rgb(8))
    x[:, :, 0, 0] = norm(torch.zeros(3, 1, 1))[:, 0, 0]           # black and white pixels
    x[:, :, 0, 1] = norm(torch.ones(3, 1, 1))[:, 0, 0]
    y = torch.arange(8) % 4
    mixer = BatchMixer(_rgb_noise, 0.5, num_classes=4, transform=norm, label_check=0)
    with pytest.warns(UserWarning, match=r"span \[-2.12, 2.64\] .*takes it to \[-6.5, 2.64\]"):
        mixer(x, y)
    right = BatchMixer(_rgb_noise, 0.5, num_classes=4, transform=norm, label_check=0,
                       value_range=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        right(x, y)


@pytest.mark.parametrize("n", [1, 3, 32])
def test_rgb_items_inside_minus_one_one_with_a_colour_cast_do_not_warn(n):
    """Correct RGB items in [-1, 1] whose channels differ (a reddish class, one item) are not
    taken for a per-channel normalisation: that warning needs values past [-1, 1]."""
    x = _rgb(n) * 2 - 1
    x[:, 0] = x[:, 0] * 0.5 + 0.5                  # red in [0, 1], the others in [-1, 1]
    x[:, 2] = x[:, 2] * 0.8 - 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SyntheticMix(_Items(x), _rgb_noise, fraction=0.5, value_range=(-1, 1))


def test_a_few_low_contrast_items_are_not_warned_about():
    """Under 8 probed items (a tiny dataset), all low in contrast, say nothing."""
    x = _rand(4) * 0.8 - 0.4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SyntheticMix(_Items(x), _noise, fraction=0.5)


def _seeded_noise(labels):
    g = torch.Generator().manual_seed(1)
    return torch.rand(len(labels), 1, 8, 8, generator=g) * 2 - 1


def _batch(n=8):
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))     # [0, 1]
    return x, torch.arange(n) % 4


def _silent(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kw)


def test_a_constant_transform_skips_the_range_check():
    """A transform that takes both ends of the range to one value cannot be mapped back: the
    first batch is served without a check (and without an error)."""
    x, y = _batch()
    mixer = BatchMixer(_seeded_noise, 0.5, num_classes=4, transform=torch.zeros_like, label_check=0)
    out, labels = _silent(mixer, x, y)
    assert len(out) == 16 and len(labels) == 16


def test_a_transform_that_changes_the_channels_skips_the_range_check():
    """[0, 1] images with the default (-1, 1) would warn ("none below 0"), but the transform
    gives 2 channels for the batch's 1: the check is skipped."""
    x, _ = _batch()
    twice = lambda t: torch.cat([t, t], 1)                        # noqa: E731
    mixer = BatchMixer(_seeded_noise, 0.5, num_classes=4, transform=twice, label_check=0)
    _silent(mixer._check_range, x)
    plain = BatchMixer(_seeded_noise, 0.5, num_classes=4, transform=lambda t: t, label_check=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        plain._check_range(x)                                     # the same batch does warn
    assert any("value_range" in str(w.message) for w in rec)


def test_an_order_reversing_transform_skips_the_range_check():
    """A transform taking the range's low end above its high end (a negation) is not one the
    check can map back: no warning, whatever the batch spans."""
    x, y = _batch()
    neg = lambda t: -t                                            # noqa: E731
    mixer = BatchMixer(_seeded_noise, 0.5, num_classes=4, transform=neg, label_check=0)
    _silent(mixer._check_range, -(x * 255))


def test_a_transform_that_fails_on_the_checks_images_skips_the_check_whatever_the_batch():
    """A transform that refuses single images: the check cannot learn where it takes the
    range, so a [0, 1] batch (which the plain (-1, 1) check would warn about) passes."""
    x, y = _batch()

    def picky(t):
        if len(t) == 1:
            raise RuntimeError("wants whole batches")
        return t
    mixer = BatchMixer(_seeded_noise, 0.5, num_classes=4, transform=picky, label_check=0)
    out, _ = _silent(mixer, x, y)
    assert len(out) == 16


def test_every_channel_is_checked_not_the_first_alone():
    """With a transform, each channel's span is mapped back: a batch whose first channel fits
    (-1, 1) but whose second reaches 3 warns."""
    x = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x[:, 0, 0, 0], x[:, 0, 0, 1] = -1.0, 1.0
    x[:, 1] = x[:, 1] * 2 + 1                                     # [-1, 3]
    mixer = BatchMixer(lambda y: torch.rand(len(y), 3, 8, 8) * 2 - 1, 0.5, num_classes=4,
                       transform=lambda t: t * 1.0, label_check=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        mixer._check_range(x)
    assert any("the batch's images span" in str(w.message) for w in rec)


PARTIAL = r"inside \[-1, 1\] without coming near its ends"
PER_CHANNEL = r"channels span different ranges"


def test_the_partial_range_warning_starts_at_8_probed_items():
    _silent(SyntheticMix, _Items(_rand(7) - 0.5), _noise, fraction=0.5)
    with pytest.warns(UserWarning, match=PARTIAL):
        SyntheticMix(_Items(_rand(8) - 0.5), _noise, fraction=0.5)


def test_items_reaching_one_end_of_minus_one_one_are_not_warned_about():
    """[-1, 0.5]: near -1, so plainly in (-1, 1), not centred data."""
    _silent(SyntheticMix, _Items(_rand() * 1.5 - 1), _noise, fraction=0.5)


def test_items_guessed_0_1_are_not_warned_about_as_partial():
    """Low-contrast [0.3, 0.6] floats are guessed (0, 1): no word of (-1, 1)."""
    _silent(SyntheticMix, _Items(0.3 + 0.3 * _rand()), _noise, fraction=0.5)


def test_channels_that_differ_at_one_end_only_are_not_warned_about():
    """Channels from -1.5 up to 1.5, 2 and 2.5: one common low end, so not a mean and std per
    channel."""
    x = _rand(32, 3) * torch.tensor([3.0, 3.5, 4.0])[:, None, None] - 1.5
    x[:, :, 0, 0] = -1.5
    _silent(SyntheticMix, _Items(x), _rgb_noise, fraction=0.5, value_range=(-1.5, 2.5))


def test_0_255_items_with_a_colour_cast_are_not_taken_for_a_normalisation():
    """RGB values in 0..255, the channels apart (a reddish class), nothing below 0."""
    x = _rand(32, 3) * 255
    x[:, 0] = x[:, 0] * 0.5
    x[:, 1] = 100 + x[:, 1] * (155 / 255)
    _silent(SyntheticMix, _Items(x), _rgb_noise, fraction=0.5, value_range=(0, 255))


def test_channels_last_numpy_items_normalised_per_channel_warn():
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    x = (_rand(32, 3).permute(0, 2, 3, 1).numpy() - mean) / std          # (N, H, W, C)
    with pytest.warns(UserWarning, match=PER_CHANNEL):
        SyntheticMix(_Items(list(x)), _rgb_noise, fraction=0.5,
                     value_range=(float(x.min()), float(x.max())))


def test_tv_tensor_items_stay_tv_tensors_through_an_albumentations_transform():
    tv_tensors = pytest.importorskip("torchvision.tv_tensors")
    A = pytest.importorskip("albumentations")

    class Images(_Items):
        def __getitem__(self, i):
            return tv_tensors.Image(self.x[i]), self.targets[i]
    mix = SyntheticMix(Images(_rand()), _noise, fraction=0.5,
                       transform=A.Compose([A.HorizontalFlip(p=1.0)]))
    real, syn = mix[0][0], mix[len(mix) - 1][0]
    assert type(real) is type(syn) is tv_tensors.Image
