"""The benchmark scripts refuse bad flags before any work and write their result files
whole (temporary file, then rename) or not at all."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
from _common import write_outputs  # noqa: E402


def test_write_outputs_writes_json_and_csv_or_nothing(tmp_path):
    write_outputs([{"a": 1, "b": [1, 2]}, {"a": 2}], tmp_path, "r", {"m": 1})
    assert json.loads((tmp_path / "r.json").read_text())["rows"][1] == {"a": 2}
    assert (tmp_path / "r.csv").read_text().splitlines() == ["a", "1", "2"]
    with pytest.raises(ValueError, match="nothing was measured"):
        write_outputs([], tmp_path / "empty", "r", {})
    assert not (tmp_path / "empty").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json"]   # no temp left


@pytest.mark.parametrize("script,args,message", [
    ("speed.py", ["--sections", "trian"], "unknown 'trian'"),
    ("speed.py", ["--repeats", "1"], "--repeats must be at least 3"),
    ("imbalance.py", ["--datasets", "digits,mnsit"], "unknown dataset 'mnsit'"),
    ("imbalance.py", ["--gate", "1.5"], "--gate takes a confidence in (0, 1]"),
    ("augment.py", ["--fractions", "0.5,1.0"], "--fractions takes shares in [0, 1)"),
    ("objectives.py", ["--objectives", "sscls,bogus"], "unknown objective(s) bogus"),
    ("objectives.py", ["--epochs", "0"], "--epochs and --jobs must be positive"),
    ("digits.py", ["--extra=--labels-per-class 3"], "--extra cannot change --labels-per-class"),
])
def test_bad_flags_fail_before_any_work(script, args, message, tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / script), *args, "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr[-500:]
    assert not (tmp_path / "o").exists()
