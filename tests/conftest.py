import os
from pathlib import Path

import pytest
import torch

from ganaug.data import ImageSet

# 2 threads (CI's cores), or OMP_NUM_THREADS when set: on a machine busy with other jobs,
# one thread is far faster (two were 20 to 80 times slower for these small nets)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or min(2, os.cpu_count() or 1)))

# a torchvision root with the real MNIST for the tests that use it (they skip without it):
# GANAUG_TEST_DATA, else the team's ../shared/data beside the checkout
SHARED_DATA = Path(os.environ.get("GANAUG_TEST_DATA")
                   or Path(__file__).resolve().parents[2] / "shared" / "data")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA GPU and skip cleanly without one."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


_CUDA_IS_AVAILABLE = torch.cuda.is_available          # the real ones, for the tests marked gpu
_CUDA_VISIBLE = os.environ.get("CUDA_VISIBLE_DEVICES")


def _hide_gpu(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(torch.cuda, "is_available", lambda: False)
    mp.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="module", autouse=True)
def _no_gpu_in_module_fixtures():
    """A module's fixtures (a run trained once for a whole test file) are set up before any
    test's own fixtures, so they are hidden from the GPU here, for the module's lifetime;
    before, such a run trained on the GPU where there was one, and a test that loaded its
    checkpoint without map_location then failed where CUDA was hidden."""
    with pytest.MonkeyPatch.context() as mp:
        _hide_gpu(mp)
        yield


@pytest.fixture(autouse=True)
def _no_gpu_unless_marked(request, monkeypatch):
    """Every test not marked ``gpu`` sees no GPU, also where there is one: device "auto" is
    the CPU (fp32, eager), in this process and in the ones it starts, so the suite checks
    the same numbers on every machine (on a GPU, "auto" would train in bf16 through
    torch.compile, and the tests' exact comparisons are written for fp32 on the CPU). A
    test marked ``gpu`` sees the machine as it is."""
    if request.node.get_closest_marker("gpu") is None:
        _hide_gpu(monkeypatch)
        return
    monkeypatch.setattr(torch.cuda, "is_available", _CUDA_IS_AVAILABLE)
    if _CUDA_VISIBLE is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", _CUDA_VISIBLE)


@pytest.fixture
def tiny() -> ImageSet:
    """48 random 8x8 grey images in 4 classes, each class a different mean brightness."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(12)
    x = (torch.rand(48, 1, 8, 8, generator=g) * 0.5 + (y.view(-1, 1, 1, 1) * 0.3 - 0.9)).clamp(-1, 1)
    return ImageSet(x, y, ["a", "b", "c", "d"])
