"""The benchmark scripts refuse bad flags before any work and write their result files
whole (temporary file, then rename) or not at all; their shared helpers and the numbers
they derive from timings."""
import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import ganaug._io

from _bench import BENCH
import _common  # noqa: E402
from _common import write_outputs  # noqa: E402


def test_write_outputs_writes_json_and_csv_or_nothing(tmp_path, monkeypatch):
    written = []
    real = ganaug._io.atomic_write_text
    monkeypatch.setattr(ganaug._io, "atomic_write_text",
                        lambda path, text: written.append(Path(path).name) or real(path, text))
    write_outputs([{"a": 1, "b": [1, 2]}, {"a": 2, "c": 3}], tmp_path, "r", {"m": 1})
    assert json.loads((tmp_path / "r.json").read_text())["rows"][1] == {"a": 2, "c": 3}
    # the scalar columns of every row, not only the first's
    assert (tmp_path / "r.csv").read_text().splitlines() == ["a,c", "1,", "2,3"]
    assert sorted(written) == ["r.csv", "r.json"]  # both through the temp-file-and-rename writer
    with pytest.raises(ValueError, match="nothing was measured"):
        write_outputs([], tmp_path / "empty", "r", {})
    assert not (tmp_path / "empty").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json"]   # no temp left


@pytest.mark.parametrize("script,args,message", [
    ("speed.py", ["--sections", "trian"], "unknown 'trian'"),
    ("speed.py", ["--repeats", "1"], "--repeats must be at least 3"),
    ("imbalance.py", ["--datasets", "digits,mnsit"], "unknown dataset 'mnsit'"),
    ("imbalance.py", ["--gate", "1.5"], "--gate takes a confidence in (0, 1]"),
    ("imbalance.py", ["--gate-mode", "softmax"], "argument --gate-mode: invalid choice"),
    ("augment.py", ["--fractions", "0.5,1.0"], "--fractions takes shares in [0, 1)"),
    ("objectives.py", ["--objectives", "sscls,bogus"], "unknown objective(s) bogus"),
    ("objectives.py", ["--objectives", "gan:spectral"], "unknown objective(s) gan:spectral"),
    ("objectives.py", ["--epochs", "0"], "--epochs and --jobs must be positive"),
    ("digits.py", ["--extra=--labels-per-class 3"], "--extra cannot change --labels-per-class"),
    ("digits.py", ["--extra=--data-seed=2"], "--extra cannot change --data-seed (the baselines"),
    # however spelled: abbreviated, or through a recipe (it could set the labels per class)
    ("digits.py", ["--extra=--labels-per 3"], "--extra cannot change --labels-per-class"),
    ("digits.py", ["--extra=--recipe r.yaml --seed 4"],
     "cannot change --recipe (the baselines beside the ganaug rows use digits, 10 labels per "
     "class, data seed 0); --seed (set per row here)"),
    ("digits.py", ["--extra=--epochs x"], "'--epochs x' is not a `ganaug train` command line"),
    ("conditioning.py", ["--extra=--g-cond-w 2"], "--extra cannot change --g-cond-weight"),
    ("conditioning.py", ["--extra=--g-cond-share 0.2"], "--extra cannot change --g-cond-share"),
    ("conditioning.py", ["--shares", "0.5,1"], "--shares takes shares in (0, 1)"),
    ("conditioning.py", ["--weights", "", "--shares", ""], "at least one value between them"),
    ("speed.py", ["--batch-sizes", "64,0"], "--batch-sizes must be positive"),
    ("speed.py", ["--ablate", "--variants", "bf16,fp8"], "unknown 'fp8'"),
    ("speed.py", ["--variants", "bf16"], "pass --ablate too"),
    ("epoch_time.py", ["--steps", "0"], "--steps must be positive"),
    ("augment.py", ["--mixer-fraction", "1"], "--mixer-fraction takes shares in [0, 1)"),
    ("objectives.py", ["--jobs", "0"], "--epochs and --jobs must be positive"),
    # a configuration ganaug train refuses, for any of the rows: before the first row trains
    ("objectives.py", ["--objectives", "gan,supervised", "--extra=--d-steps 2"],
     "supervised: ganaug train --objective supervised --seed 0 --d-steps 2 would be refused: "
     "d_steps has no effect"),
    ("objectives.py", ["--objectives", "gls,ls", "--extra=--nu -1"],
     "ls: ganaug train --objective ls --seed 0 --nu -1 would be refused: nu is the slope"),
    ("standing_stats.py", ["--samples", "0,1"], "--samples: each is 0 (as trained) or at least 2"),
    ("standing_stats.py", ["--samples", "0,x"], "--samples takes comma-separated whole numbers"),
    ("standing_stats.py", ["--extra=--standing-stats 100"], "--extra cannot change --standing-stats"),
    ("standing_stats.py", ["--jobs", "0"], "--jobs must be at least 1"),
    ("diversity.py", ["--runs", "nowhere"], "--runs: nowhere has no checkpoint.pt"),
    ("diversity.py", ["--runs", "r", "--fraction", "1"], "--fraction takes a share in (0, 1)"),
    ("diversity.py", ["--runs", "r", "--reference", "1"], "--reference must be at least 2"),
    ("gate.py", ["--gates", "0,1.5"], "--gates take confidences in [0, 1]"),
    ("gate.py", ["--gates", "0,x"], "--gates takes comma-separated numbers"),
    ("gate.py", ["--probe", "0"], "--probe must be at least 1"),
    ("gate.py", ["--runs", "nowhere"], "--runs: nowhere holds no checkpoint.pt"),
    ("gate.py", ["--runs", "r", "--extra=--epochs 3"], "with --runs nothing is trained"),
    ("gate.py", ["--extra=--seed 3"], "--extra cannot change --seed"),
    ("patience.py", ["nowhere", "--patience", "5,0"], "--patience takes positive epochs"),
    ("patience.py", ["nowhere", "--patience", "5,x"], "--patience takes whole numbers"),
    ("patience.py", ["nowhere"], "nowhere holds no metrics.jsonl"),
])
def test_bad_flags_fail_before_any_work(script, args, message, tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / script), *args, "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr[-500:]
    assert not (tmp_path / "o").exists()


def test_objectives_update_refuses_other_seeds_before_training(tmp_path):
    """objectives.py --update with seeds other than the results' stops before any training
    and leaves objectives.json as it was."""
    out = tmp_path / "o"
    out.mkdir()
    old = json.dumps({"meta": {"seeds": [0], "epochs": 1}, "rows": []})
    (out / "objectives.json").write_text(old)
    r = subprocess.run([sys.executable, str(BENCH / "objectives.py"), "--update", "--seeds", "1",
                        "--epochs", "1", "--objectives", "supervised", "--jobs", "1",
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "--update needs the --seeds, --epochs and --extra" in r.stderr, r.stderr
    assert (out / "objectives.json").read_text() == old


def test_objectives_update_refuses_other_extra_flags_and_extra_cannot_set_what_rows_set(tmp_path):
    """--update into results measured without --extra (or with other flags) stops before any
    training: rows of two settings must not share a table. --extra cannot set the seed, the
    objective, its regulariser or the epochs, which the script sets per row."""
    out = tmp_path / "o"
    out.mkdir()
    old = json.dumps({"meta": {"seeds": [0], "epochs": 1}, "rows": []})
    (out / "objectives.json").write_text(old)
    base = [sys.executable, str(BENCH / "objectives.py"), "--seeds", "0", "--epochs", "1",
            "--objectives", "supervised", "--jobs", "1", "--out", str(out)]
    r = subprocess.run([*base, "--update", "--extra=--net-option input_noise=0.15"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "extra none" in r.stderr, r.stderr
    assert (out / "objectives.json").read_text() == old
    for flag in ("--seed 3", "--objective gan", "--lipschitz clip", "--epochs 2"):
        r = subprocess.run([*base, f"--extra={flag}"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and "--extra cannot change" in r.stderr, (flag, r.stderr[-300:])
    assert (out / "objectives.json").read_text() == old


def test_common_helpers(tmp_path, monkeypatch):
    """mean ± sample std; a gate of 1 and shares at their bounds accepted; a child's
    environment; a dataset without files skipped and noted."""
    assert _common.mean_std([1.0, 2.0, 6.0]) == pytest.approx((3.0, 7 ** 0.5))
    assert _common.mean_std([0.5]) == (0.5, 0.0)
    p = argparse.ArgumentParser()
    _common.check_args(p, datasets="digits,mnist", gate=1.0,
                       unit={"--open": ([0.0, 0.99], False), "--closed": ([0.0, 1.0], True)})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert "OMP_NUM_THREADS" not in _common.ganaug_env()
    env = _common.ganaug_env(3)
    assert env["OMP_NUM_THREADS"] == "3" and env["PYTHONPATH"] == str(_common.ROOT)
    skipped = []
    assert _common.load_or_skip("mnist", str(tmp_path), skipped) is None
    assert len(skipped) == 1 and skipped[0].startswith("mnist: ")


def test_interleaved_reports_the_median_and_the_first_call(monkeypatch):
    """speed.interleaved: per function the median of the timed calls (after the warm-up) and
    the first call's time; a slow round cuts the repeats, never below 3."""
    import speed

    times = iter([10.0, 20.0, 1.0, 2.0, 1.0, 2.0, 4.0, 8.0, 9.0, 9.0])
    monkeypatch.setattr(speed, "timed", lambda fn, device: next(times))
    res = speed.interleaved({"a": None, "b": None}, "cpu", 1, 10, budget_s=3.0)
    assert res == {"a": (1.0, 10.0), "b": (2.0, 20.0)}
    assert next(times) == 9.0                      # 1 warm-up + 3 timed rounds of 2 calls


def test_speed_quick_run_writes_consistent_ratios(tmp_path):
    """speed.py --quick (3 repeats, 1 warm-up) on the digits nets: each variant's speedup
    and overhead are its time against the reference row's."""
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, str(BENCH / "speed.py"), "--quick", "--nets", "digits",
                        "--sections", "sample,classifier", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "speed.json").read_text())
    assert (res["meta"]["args"]["repeats"], res["meta"]["args"]["warmup"]) == (3, 1)
    rows = res["rows"]
    assert {r["section"] for r in rows} == {"sample", "classifier"}
    for section, base, key in (("sample", "reference", "speedup"),
                               ("classifier", "real only", "overhead")):
        sel = {r["variant"]: r for r in rows if r["section"] == section}
        assert len(sel) >= 2 and sel[base][key] == 1.0
        for v, row in sel.items():
            ratio = sel[base]["ms"] / row["ms"] if key == "speedup" else row["ms"] / sel[base]["ms"]
            assert row[key] == pytest.approx(ratio), (section, v)


def test_epoch_time_reads_the_last_epoch_from_metrics(tmp_path, monkeypatch):
    """epoch_time.time_epochs: the last epoch's training seconds (not the running total) and
    the steps of one epoch, from the run's metrics.jsonl."""
    import epoch_time

    def fake_fit(cfg, out, **kw):
        out.mkdir(parents=True)
        (out / "metrics.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in ({"step": 10, "seconds": 5.0},
                                                   {"step": 20, "seconds": 7.5})))
        return {"num_labeled": 100, "num_unlabeled": 900, "num_test": 50}

    monkeypatch.setattr(epoch_time, "fit", fake_fit)
    cfg = types.SimpleNamespace(batch_size=8, unlabeled_ratio=3)
    r = epoch_time.time_epochs(cfg, tmp_path / "run")
    assert r == {"epoch_s": 2.5, "epoch_s_each": [5.0, 2.5], "steps_per_epoch": 10,
                 "n_train": 1000, "n_test": 50, "step_s": 0.25,
                 "images_per_step": 8 + 3 * 8}   # 8 labeled, 3 unlabeled per labeled


def test_epoch_time_weights_each_kind_of_step_by_how_often_it_comes():
    """epoch_time.seconds_per_step: the penalty on one step in 4 and the generator's update on
    one in 2 make three kinds of step; each kind's median counts by its share of the 4-step
    cycle (a median over all steps would say 2.0); a kind never timed is an error."""
    from types import SimpleNamespace

    import epoch_time
    cfg = SimpleNamespace(penalty_every=4, d_steps=2)   # steps 1..4: (T, F) (F, T) (F, F) (F, T)
    times = {(True, False): [4.0, 4.0, 40.0], (False, True): [2.0, 3.0, 2.0],
             (False, False): [1.0]}
    assert epoch_time.seconds_per_step(times, cfg, True) == (4 + 2 + 1 + 2) / 4
    one = SimpleNamespace(penalty_every=1, d_steps=1)
    assert epoch_time.seconds_per_step({(True, True): [1.0, 5.0, 2.0]}, one, True) == 2.0
    assert epoch_time.seconds_per_step({(True, False): [3.0]}, one, False) == 3.0   # no generator
    with pytest.raises(ValueError, match="time at least 4 steps"):
        epoch_time.seconds_per_step({(True, False): [1.0], (False, True): [1.0]}, cfg, True)


def test_smote_skips_a_class_with_one_image(monkeypatch):
    """imbalance.smote: None when a class has a single image; else SMOTE with the seed and as
    many neighbours as the smallest class allows (at most 5), on the flattened images, its
    rows given back in image shape. imblearn (optional, the `bench` extra) is replaced by a
    stand-in that records its settings and repeats each class's rows up to the majority."""
    import types

    import imbalance
    seen = {}

    class SMOTE:
        def __init__(self, k_neighbors, random_state):
            seen.update(k=k_neighbors, seed=random_state)

        def fit_resample(self, x, y):
            seen["x_shape"] = x.shape
            n = max(int((y == c).sum()) for c in set(y.tolist()))
            idx = [i for c in sorted(set(y.tolist())) for i in
                   ([j for j in range(len(y)) if y[j] == c] * n)[:n]]
            return x[idx], y[idx]

    module = types.ModuleType("imblearn.over_sampling")
    module.SMOTE = SMOTE
    monkeypatch.setitem(sys.modules, "imblearn", types.ModuleType("imblearn"))
    monkeypatch.setitem(sys.modules, "imblearn.over_sampling", module)
    x = torch.rand(14, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    assert imbalance.smote(x[:5], torch.tensor([0, 0, 0, 0, 1]), 0) is None
    assert seen == {}                                     # refused before SMOTE is built
    y = torch.tensor([0, 0, 0, 0, 1, 1])
    ds = imbalance.smote(x[:6], y, 7)
    assert seen == {"k": 1, "seed": 7, "x_shape": (6, 4)}
    assert torch.bincount(ds.tensors[1]).tolist() == [4, 4]
    assert torch.equal(ds.tensors[0], x[[0, 1, 2, 3, 4, 5, 4, 5]])
    imbalance.smote(x, torch.tensor([0] * 7 + [1] * 7), 0)
    assert seen["k"] == 5                                 # at most 5 neighbours
