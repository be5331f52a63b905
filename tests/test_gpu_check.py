"""benchmarks/gpu_check.sh refuses bad input before any work (its stages need a GPU and
minutes: they run on a lent GPU machine, not here)."""
import shutil
import subprocess

import numpy as np
import pytest

from _bench import BENCH
from _formats import write_mnist

SCRIPT = BENCH / "gpu_check.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(tmp_path, *args, **env):
    out = tmp_path / "out"
    r = subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "OUT": str(out), "PYTHON": "false", **env},
                       timeout=60)
    return r, out


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_a_root_without_mnist_is_refused_with_the_fix(tmp_path):
    r, out = _run(tmp_path, tmp_path / "empty")
    assert r.returncode == 2
    assert "MNIST/raw/train-images-idx3-ubyte(.gz) is missing" in r.stderr
    assert "cp ROOT/MNIST/raw/*.gz" in r.stderr
    assert not out.exists()                      # nothing started, nothing written


def _mnist(root):
    rng = np.random.default_rng(0)
    return write_mnist(root, rng.integers(0, 256, (4, 28, 28)), np.arange(4),
                       rng.integers(0, 256, (2, 28, 28)), np.arange(2), decompressed=False)


@pytest.mark.parametrize("missing", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_a_root_lacking_one_mnist_file_is_refused(tmp_path, missing):
    """Each of the four MNIST files is required, compressed or not."""
    (_mnist(tmp_path / "data") / f"{missing}.gz").unlink()
    r, out = _run(tmp_path, tmp_path / "data")
    assert r.returncode == 2 and f"MNIST/raw/{missing}(.gz) is missing" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("minutes", ["abc", "2", "-5"])
def test_a_budget_under_three_minutes_is_refused(tmp_path, minutes):
    _mnist(tmp_path / "data")
    r, out = _run(tmp_path, tmp_path / "data", minutes)
    assert r.returncode == 2 and "MINUTES must be a number >= 3" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("stages,message", [
    ("tests mnst", "unknown stage 'mnst' in STAGES: use tests, epoch-time and/or mnist"),
    ("  ", "STAGES is empty: name one or more of tests, epoch-time, mnist")])
def test_unknown_or_no_stages_are_refused(tmp_path, stages, message):
    _mnist(tmp_path / "data")
    r, out = _run(tmp_path, tmp_path / "data", STAGES=stages)
    assert r.returncode == 2 and message in r.stderr
    assert not out.exists()


def test_stages_run_alone(tmp_path):
    """STAGES=mnist runs the MNIST stage and nothing before it (PYTHON=false: every Python
    step fails at once, so the stages the script entered are in its log)."""
    _mnist(tmp_path / "data")
    r, out = _run(tmp_path, tmp_path / "data", 3, STAGES="mnist")
    log = (out / "log.txt").read_text()
    assert "=== 3. MNIST 100 labels" in log and "ganaug train exit status 1" in log
    assert "=== 1." not in log and "=== 2." not in log
    assert r.returncode == 1 and "gpu_check: a stage failed" in log    # not 0 after a failure


def _fake_python(tmp_path):
    """A stand-in for python that succeeds and says where the tests would read MNIST."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/bash\necho "fake python $* data=${GANAUG_TEST_DATA:-unset}"\n')
    fake.chmod(0o755)
    return fake


def test_only_the_mnist_stage_needs_mnist_and_the_tests_read_the_data_root(tmp_path):
    """STAGES=tests starts on a root without MNIST (only the mnist stage needs it), points
    the tests at that root (GANAUG_TEST_DATA: ../shared is not on a lent machine) and exits
    0 when every stage it ran succeeded."""
    (tmp_path / "data").mkdir()
    r, out = _run(tmp_path, tmp_path / "data", 3, STAGES="tests",
                  PYTHON=str(_fake_python(tmp_path)))
    log = (out / "log.txt").read_text()
    assert r.returncode == 0, log
    assert "-m pytest -v" in log and f"data={tmp_path / 'data'}" in log
    assert "pytest exit status 0" in log and "gpu_check: a stage failed" not in log
