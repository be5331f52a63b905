"""The suite's GPU hiding (conftest.py), checked where there is no GPU: a copy of the
conftest in a scratch folder, on a torch that claims a GPU, runs a probe module with
pytest in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

PROBE = '''
import os
import pytest
import torch

SEEN = {}


@pytest.fixture(scope="module")
def trained():
    SEEN["module fixture"] = (torch.cuda.is_available(), os.environ.get("CUDA_VISIBLE_DEVICES"))


def test_plain(trained):
    SEEN["plain test"] = (torch.cuda.is_available(), os.environ.get("CUDA_VISIBLE_DEVICES"))


@pytest.mark.gpu
def test_gpu(trained):
    SEEN["gpu test"] = (torch.cuda.is_available(), os.environ.get("CUDA_VISIBLE_DEVICES"))


def test_report():
    assert SEEN == {"module fixture": (False, ""), "plain test": (False, ""),
                    "gpu test": (True, "3")}, SEEN
'''


def test_the_gpu_is_hidden_from_module_fixtures_and_plain_tests_not_from_gpu_tests(tmp_path):
    """A module-scoped fixture (a run trained once for a test file) is set up before any
    test's own fixtures: it must not see the GPU either, while a test marked gpu sees the
    machine as it is (here: a GPU, and CUDA_VISIBLE_DEVICES=3 as the job set it)."""
    here = Path(__file__).resolve().parent
    (tmp_path / "conftest.py").write_text(
        "import torch\ntorch.cuda.is_available = lambda: True   # a machine with a GPU\n"
        + (here / "conftest.py").read_text())
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a CUDA GPU\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "3"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "test_probe.py"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "3 passed" in r.stdout
