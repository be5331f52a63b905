"""The command line: the default job's files, every objective on digits, errors, SIGKILL."""
import json
import os
import re
import signal
import subprocess
import threading
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganaug import cli
from ganaug import experiment as E
from ganaug.cli import main
from ganaug.experiment import _check_not_a_run_file
from ganaug.objectives import list_objectives

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args):
    """Run ``python -m ganaug`` in a fresh process; returns CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ganaug", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["train", "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    return out


def test_train_writes_the_run_folder(digits_run, capsys):
    s = json.loads((digits_run / "summary.json").read_text())
    for key in ("test_accuracy", "epochs", "train_seconds", "objective", "dataset", "num_labeled"):
        assert key in s
    assert 0.0 <= s["test_accuracy"] <= 1.0
    assert s["epochs"] == 2 and s["objective"] == "sscls" and s["dataset"] == "digits"
    assert s["num_labeled"] == 100 and s["num_unlabeled"] == 1247
    assert s["diversity"] > 0                   # the last epoch's reading
    assert s["host"]["threads"] == torch.get_num_threads() >= 1   # what else the numbers
    assert s["host"]["torch"] == torch.__version__ and s["host"]["cpu"]  # depend on
    assert s["processes"] == 1
    assert s["speed"] == "fp32 eager" and "gpu" not in s          # the CPU's fast path: none
    assert (digits_run / "samples.png").stat().st_size > 0
    torch.load(digits_run / "checkpoint.pt", weights_only=True)


def test_the_final_lines_give_the_sample_diversity():
    from ganaug.cli import _diversity
    assert _diversity({"diversity": 0.712}) == ", sample diversity 0.71"
    assert _diversity({"diversity": 0.5}) == ", sample diversity 0.50 (low: may have collapsed)"
    assert _diversity({"diversity": None}) == "" == _diversity({})


def test_sample_png_and_pt(digits_run, tmp_path):
    assert main(["sample", "--run", str(digits_run), "--per-class", "3", "--out", str(tmp_path / "s.png")]) == 0
    from PIL import Image
    with Image.open(tmp_path / "s.png") as im:
        assert im.size[1] > im.size[0] * 2   # 10 rows (classes) of 3 columns
    assert main(["sample", "--run", str(digits_run), "--per-class", "4", "--out", str(tmp_path / "s.pt")]) == 0
    d = torch.load(tmp_path / "s.pt", weights_only=True)
    assert d["images"].shape == (40, 1, 8, 8) and d["labels"].tolist() == sorted(list(range(10)) * 4)
    assert main(["sample", "--run", str(digits_run), "--out", str(tmp_path / "s.jpg")]) == 2


def test_sample_with_standing_stats_leaves_the_run_as_it_was(digits_run, tmp_path, capsys):
    def images(name, *flags):
        assert main(["sample", "--run", str(digits_run), "--per-class", "2", *flags,
                     "--out", str(tmp_path / name)]) == 0
        return torch.load(tmp_path / name, weights_only=True)["images"]

    plain = images("a.pt")
    standing = images("b.pt", "--standing-stats", "256")
    assert "BatchNorm statistics on 256 of its own samples" in capsys.readouterr().err
    assert not torch.equal(plain, standing)
    assert torch.equal(standing, images("c.pt", "--standing-stats", "256"))   # seeded
    assert torch.equal(plain, images("d.pt"))                  # the checkpoint is unchanged
    assert main(["sample", "--run", str(digits_run), "--standing-stats", "1",
                 "--out", str(tmp_path / "e.pt")]) == 2
    err = capsys.readouterr().err
    assert "standing_stats (--standing-stats) is a number of generated images" in err
    assert not (tmp_path / "e.pt").exists()


def test_cli_warnings_are_one_line_and_a_closed_pipe_is_no_error(digits_run, tmp_path):
    """A library warning reaches the terminal as one `warning: ...` line, like the training
    log's, not Python's `file.py:544: StandingStatsWarning:` and a line of source; a reader
    that goes away (`ganaug eval --json | head`) ends the command quietly (status 141, as
    SIGPIPE would), not with `ganaug: error: [Errno 32] Broken pipe`."""
    r = _cli("sample", "--run", str(digits_run), "--per-class", "1", "--standing-stats", "2",
             "--out", str(tmp_path / "s.pt"))
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stderr.splitlines() if "standing statistics from 2" in l]
    assert len(lines) == 1 and lines[0].startswith("warning: standing statistics from 2 images")
    assert "StandingStatsWarning" not in r.stderr and ".py:" not in r.stderr
    p = subprocess.Popen([sys.executable, "-m", "ganaug", "eval", "--run", str(digits_run),
                          "--quick", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    p.stdout.close()                                       # the reader is gone before a line
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 141, err
    assert "error" not in err and "Broken pipe" not in err and "Exception" not in err


def test_eval_prints_every_metric(digits_run, capsys):
    assert main(["eval", "--run", str(digits_run)]) == 0
    out = capsys.readouterr().out
    for word in ("test accuracy", "balanced accuracy", "macro-F1", "per-class accuracy"):
        assert word in out
    s = json.loads((digits_run / "summary.json").read_text())
    assert f"{s['test_accuracy']:.4f}" in out


@pytest.mark.parametrize("objective", list_objectives())
def test_every_objective_runs_two_epochs_on_digits(objective, tmp_path):
    assert main(["train", "--objective", objective, "--epochs", "2", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert all(v == v and abs(v) != float("inf") for v in rec.values() if isinstance(v, float))


BAD = [
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--objective", "nope"], "unknown objective 'nope'"),
    (["--lipschitz", "nope"], "unknown Lipschitz regulariser 'nope'"),
    (["--labels-per-class", "0"], "labels_per_class (--labels-per-class) must be a positive integer"),
    (["--labels-per-class", "1000"], "more than class"),
    (["--dataset", "mnist", "--data-root", "{tmp}/empty"], "looked for"),
    (["--resume"], "--resume needs --out"),
    (["--g-cond-weight", "-1"], "g_cond_weight must be a non-negative, finite number"),
    (["--g-cond-share", "1"], "g_cond_share must be a number in [0, 1)"),
    (["--g-cond-share", "0.5", "--g-cond-weight", "3"], "give one of them"),
    (["--g-loss", "loss", "--g-cond-weight", "3"], "--g-loss feature-matching"),
    (["--fm-layers", "most"], "fm_layers must be one of last, all"),
    (["--lr-decay", "0"], "lr_decay multiplies the learning rate"),
    (["--lr-decay", "1.5"], "lr_decay multiplies the learning rate"),
    (["--lr-decay-every", "0"], "lr_decay_every must be a positive whole number"),
    (["--time-limit", "-1"], "time_limit is minutes of wall time"),
    (["--time-limit", "inf"], "time_limit is minutes of wall time"),
    (["--data-seed", "99999999999999999999999"],
     "data_seed (--data-seed) must be a whole number from -9223372036854775808 to "
     "18446744073709551615"),
    (["--seed", "-9223372036854775809"], "seed (--seed) must be a whole number"),
    (["--seeds", "0,18446744073709551616"], "--seeds: seed 18446744073709551616 is outside"),
    (["--net-option", "input_nois=0"],
     "unknown net_options key 'input_nois' for arch auto (did you mean 'input_noise'?)"),
]


def test_learning_rate_schedule_flags(tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--epochs", "3", "--lr", "0.002", "--lr-decay", "0.5",
                 "--lr-decay-every", "2", "--out", str(out), "--quiet"]) == 0
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([0.002, 0.002, 0.001])


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_clear_line_and_leaves_no_files(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["train", *args, "--out", str(out), "--quiet"] if "--resume" not in args
                else ["train", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganaug: error:") and message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_input_that_fails_only_with_the_data_leaves_no_default_folder(tmp_path, monkeypatch,
                                                                     capsys):
    """Without --out a run claims runs/<time>-...; checks that need the data (a shift as
    large as the 8x8 digits) come before that."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--translate", "8", "--epochs", "1", "--quiet"]) == 2
    assert "would move 8x8 images out of view" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("WORLD_SIZE", "2")         # as torchrun sets it: refused before the group
    assert main(["train", "--batch-size", "63", "--epochs", "1", "--quiet"]) == 2
    assert "does not split evenly over 2 processes" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_sample_refuses_to_write_over_a_run_s_own_files(digits_run, tmp_path, capsys):
    """--out RUN/checkpoint.pt (best.pt, samples.png, curves.png) or the model file sampled
    from would replace the run with its samples: refused, the file left as it was."""
    import shutil
    for name in ("checkpoint.pt", "samples.png", "curves.png", "samples/epoch_0002.png"):
        target = digits_run / name
        before = target.read_bytes()
        assert main(["sample", "--run", str(digits_run), "--out", str(target)]) == 2
        assert (f"--out (out=) {target} is a file of run folder {digits_run}: the samples would "
                f"replace it; name another file") in capsys.readouterr().err
        assert target.read_bytes() == before
    model = tmp_path / "model.pt"
    shutil.copy(digits_run / "checkpoint.pt", model)
    assert main(["sample", "--run", str(model), "--out", str(model)]) == 2
    assert "is the model file sampled from" in capsys.readouterr().err
    best = tmp_path / "best.pt"                 # a best.pt outside any run folder is free
    assert main(["sample", "--run", str(digits_run), "--out", str(best)]) == 0
    assert set(torch.load(best, weights_only=True)) == {"images", "labels", "classes"}


def test_sample_refuses_a_folder_as_out_and_a_run_without_a_generator(digits_run, tmp_path,
                                                                     capsys):
    folder = tmp_path / "d.png"
    folder.mkdir()
    assert main(["sample", "--run", str(digits_run), "--out", str(folder)]) == 2
    assert "is a folder; name a file in it" in capsys.readouterr().err
    afile = tmp_path / "notes.txt"
    afile.write_text("hi")
    assert main(["sample", "--run", str(digits_run), "--out", str(afile / "s.png")]) == 2
    assert f"is under {afile}, a file: name a file in a folder" in capsys.readouterr().err
    assert afile.read_text() == "hi"
    sup = tmp_path / "sup"
    assert main(["train", "--objective", "supervised", "--epochs", "1", "--quiet",
                 "--no-tensorboard", "--out", str(sup)]) == 0
    capsys.readouterr()
    # its generator is never trained: no grids of noise in its run folder
    assert not (sup / "samples.png").exists() and not (sup / "samples").exists()
    assert (sup / "checkpoint.pt").exists() and (sup / "curves.png").exists()
    assert main(["sample", "--run", str(sup), "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "trains no generator" in err and err.count("\n") == 1
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("command", ["sample", "eval"])
@pytest.mark.parametrize("seed,message", [
    ("99999999999999999999999", "argument --seed: 99999999999999999999999 is outside "
                                "-9223372036854775808 to 18446744073709551615"),
    ("1.5", "argument --seed: expected a whole number, got '1.5'")])
def test_a_seed_torch_cannot_take_is_refused_before_any_work(digits_run, tmp_path, capsys,
                                                             command, seed, message):
    """Before, eval trained its domain classifier first, then failed with torch's
    "Overflow when unpacking long long"."""
    out = ["--out", str(tmp_path / "s.png")] if command == "sample" else []
    with pytest.raises(SystemExit) as e:
        main([command, "--run", str(digits_run), "--seed", seed, *out])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_model_file_is_not_taken_for_a_run_by_eval_and_resume(digits_run, tmp_path, capsys):
    """A folder holding CLSGAN.save's file as checkpoint.pt (no training configuration):
    before, eval and --resume failed with KeyError: 'config'."""
    from ganaug import CLSGAN
    folder = tmp_path / "saved"
    folder.mkdir()
    CLSGAN.load(digits_run).save(folder / "checkpoint.pt")
    want = (f"{folder / 'checkpoint.pt'} holds a model without the configuration it was "
            f"trained with (a file of CLSGAN.save, not a run of `ganaug train`)")
    for argv in (["eval", "--run", str(folder), "--quick"],
                 ["train", "--resume", "--out", str(folder), "--quiet"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert want in err and err.count("\n") == 1
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"]
    assert main(["sample", "--run", str(folder), "--out", str(tmp_path / "s.png")]) == 0


def test_eval_and_sample_on_a_multi_seed_folder_name_its_seed_folders(digits_run, tmp_path,
                                                                     capsys):
    import shutil
    from ganaug import CheckpointError, SyntheticMix
    from ganaug.data import load_dataset
    multi = tmp_path / "multi"
    for seed in (10, 2):
        shutil.copytree(digits_run, multi / f"seed-{seed}")
    want = (f"{multi} holds a multi-seed run (--seeds), one run folder per seed: pass one of "
            f"them, e.g. {multi / 'seed-2'} (seed-2, seed-10)")
    for argv in (["eval", "--run", str(multi), "--quick"],
                 ["sample", "--run", str(multi), "--out", str(tmp_path / "s.png")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert want in err and err.count("\n") == 1
    with pytest.raises(CheckpointError, match="holds a multi-seed run"):
        SyntheticMix(load_dataset("digits")[0], multi, fraction=0.3)
    assert not (tmp_path / "s.png").exists()


def test_cuda_without_a_gpu_is_the_only_line(tmp_path, monkeypatch, capsys):
    from ganaug import experiment as E

    def load_data(cfg):
        raise AssertionError("the data was loaded before the device was checked")

    monkeypatch.setattr(E, "load_data", load_data)
    assert main(["train", "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ganaug: error: device 'cuda' was asked for but no CUDA GPU is available; "
                   "use --device cpu or auto (device='cpu' or 'auto' in Python)")
    assert list(tmp_path.iterdir()) == []


def test_data_root_error_names_folder_and_download(tmp_path, capsys):
    main(["train", "--dataset", "mnist", "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert str(tmp_path / "MNIST" / "raw") in err and "--download" in err


def test_eval_and_sample_say_what_run_to_pass(digits_run, tmp_path, capsys):
    """--run on a missing path, a folder without a checkpoint or a stray file: one line that
    says which it is and what to pass; a checkpoint file is fine for `sample`."""
    empty = tmp_path / "empty"
    empty.mkdir()
    stray = tmp_path / "notes.txt"
    stray.write_text("hello")
    png = tmp_path / "s.png"
    for cmd in (["eval", "--quick"], ["sample", "--per-class", "1", "--out", str(png)]):
        for run, message in ((tmp_path / "none", "does not exist"),
                             (empty, "is not a run folder (no checkpoint.pt in it)")):
            assert main([*cmd, "--run", str(run)]) == 2
            err = capsys.readouterr().err
            assert message in err and "ganaug train" in err and err.count("\n") == 1
    assert main(["eval", "--quick", "--run", str(stray)]) == 2
    assert "is a file: pass a run folder" in capsys.readouterr().err
    run = tmp_path / "run"                            # a run's own files name their folder
    run.mkdir()
    for name, tail in (("checkpoint.pt", f"pass its folder, {run}\n"),
                       ("best.pt", f"pass its folder, {run} with --best (its best epoch)\n")):
        (run / name).write_bytes(b"x")
        assert main(["eval", "--quick", "--run", str(run / name)]) == 2
        assert capsys.readouterr().err.endswith(tail)
    assert main(["sample", "--per-class", "1", "--out", str(png), "--run", str(stray)]) == 2
    assert "is not a checkpoint (a text file): pass a run folder" in capsys.readouterr().err
    assert not png.exists()
    assert main(["sample", "--per-class", "1", "--out", str(png),
                 "--run", str(digits_run / "checkpoint.pt")]) == 0
    assert png.is_file()


def test_resume_refusals(digits_run, tmp_path, capsys):
    assert main(["train", "--out", str(digits_run), "--resume", "--lr", "0.5",
                 "--data-seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "configuration differs" in err and "--data-seed 0 -> 1" in err   # names the flag
    assert main(["train", "--out", str(digits_run), "--resume", "--labels-per-class", "all"]) == 2
    assert "(--labels-per-class 10 -> all)" in capsys.readouterr().err    # as the flag takes it
    assert main(["train", "--out", str(digits_run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "checkpoint.pt").write_bytes((digits_run / "checkpoint.pt").read_bytes()[:5000])
    assert main(["train", "--out", str(bad), "--resume"]) == 2
    assert "corrupted or truncated" in capsys.readouterr().err
    assert sorted(p.name for p in bad.iterdir()) == ["checkpoint.pt"]


def test_a_run_folder_being_written_is_refused_to_a_second_process(digits_run, tmp_path,
                                                                    capsys):
    """Two `ganaug train --resume` of one folder at once: the second stops with one error
    line before it writes anything there (not even the curves), and the folder's lock goes
    with the first process."""
    import shutil
    fcntl = pytest.importorskip("fcntl")
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    fd = os.open(run, os.O_RDONLY)            # another process's lock, as run_lock takes it
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert main(["train", "--epochs", "3", "--out", str(run), "--resume", "--quiet"]) == 2
        assert (f"ganaug: error: run folder {run} is being written by another process (a ganaug "
                f"train of it is running): wait until it ends") in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    finally:
        os.close(fd)
    assert main(["train", "--epochs", "3", "--out", str(run), "--resume", "--quiet"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 3


@pytest.mark.parametrize("key", ["opt_d", "epoch", "model", "history"])
def test_a_checkpoint_without_a_key_is_one_error_line_naming_it(digits_run, tmp_path, capsys,
                                                               key):
    """A checkpoint lacking one of its keys (edited, or written by another program): --resume
    and eval end in one error line that names the key, not a KeyError traceback (eval needs
    the config, model, weights and epoch; --resume everything)."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    del ckpt[key]
    torch.save(ckpt, run / "checkpoint.pt")
    message = f"checkpoint {run / 'checkpoint.pt'} lacks '{key}': it was edited or written by"
    assert main(["train", "--epochs", "3", "--out", str(run), "--resume", "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert main(["eval", "--run", str(run), "--quick"]) == (2 if key in ("epoch", "model") else 0)
    assert (message in capsys.readouterr().err) == (key in ("epoch", "model"))


def test_a_checkpoint_of_a_newer_ganaug_is_refused(digits_run, tmp_path, capsys):
    from ganaug import CLSGAN
    ckpt = torch.load(digits_run / "checkpoint.pt", weights_only=True)
    for version, message in ((2, "was written by a newer ganaug (checkpoint version 2; this "
                                 "ganaug reads version 1): upgrade ganaug"),
                             ("1", "has no valid 'version' ('1')")):
        torch.save({**ckpt, "version": version}, tmp_path / "c.pt")
        with pytest.raises(Exception, match=re.escape(message)):
            CLSGAN.load(tmp_path / "c.pt")


class _Reached(Exception):
    """Raised by a stand-in for the experiment function a command calls, with its arguments."""


def _reached(monkeypatch, name, argv):
    """The arguments, by name and defaults filled in, that ``main(argv)`` passes to
    ``ganaug.experiment.<name>`` (which is not run)."""
    import inspect

    from ganaug import experiment as E
    signature = inspect.signature(getattr(E, name))

    def stand_in(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        raise _Reached(bound.arguments)

    monkeypatch.setattr(E, name, stand_in)
    with pytest.raises(_Reached) as e:
        main(argv)
    return e.value.args[0]


@pytest.mark.parametrize("argv,name,expected", [
    (["train", "--out", "o"], "fit",
     {"out": "o", "resume": False, "progress": True, "tensorboard": True, "recipe": None,
      "config.download": False, "config.balanced_labels": False, "config.seed": 0,
      "config.recalibrate_bn": True, "config.standing_stats": 0}),
    (["train", "--out", "o", "--quiet", "--no-tensorboard", "--download", "--balanced-labels",
      "--labels-per-class", "all", "--seed", "3", "--no-recalibrate-bn", "--standing-stats",
      "500"], "fit",
     {"progress": False, "tensorboard": False, "config.download": True,
      "config.balanced_labels": True, "config.labels_per_class": None, "config.seed": 3,
      "config.recalibrate_bn": False, "config.standing_stats": 500}),
    (["train", "--seeds", "2,0", "--out", "o"], "fit_seeds", {"seeds": [2, 0], "out": "o"}),
    (["train", "--out", "o", "--net-option", "input_noise=0", "--net-option", "d_hidden=[64, 32]",
      "--net-option", "norm=none", "--net-option", "hidden_noise=1e-3"], "fit",
     {"config.net_options": {"input_noise": 0, "d_hidden": [64, 32], "norm": "none",
                             "hidden_noise": 0.001}}),
    # flags override the recipe; a recipe's seed gives way to --seeds
    (["train", "--recipe", "{recipe}", "--seeds", "1", "--epochs", "3", "--out", "o"],
     "fit_seeds", {"seeds": [1], "recipe": "{recipe}", "config.epochs": 3, "config.lr": 0.002}),
    (["sample", "--run", "r", "--out", "s.png"], "sample_run",
     {"run": "r", "per_class": 10, "out": "s.png", "seed": 0, "device": "auto",
      "standing_stats": 0}),
    (["sample", "--run", "r", "--out", "s.pt", "--per-class", "3", "--seed", "5", "--device",
      "cpu", "--standing-stats", "64"], "sample_run",
     {"per_class": 3, "seed": 5, "device": "cpu", "standing_stats": 64}),
    (["eval", "--run", "r"], "evaluate_run",
     {"run": "r", "data_root": None, "quality": True, "save": True, "device": "auto",
      "quality_options.seed": 0}),
    (["eval", "--run", "r", "--quick", "--data-root", "d", "--device", "cpu"], "evaluate_run",
     {"data_root": "d", "quality": False, "save": False, "device": "cpu"}),
    (["eval", "--run", "r", "--seed", "4", "--samples", "5", "--tstr-per-class", "6",
      "--classifier-steps", "7", "--cache-dir", "c", "--inception-weights", "w"],
     "evaluate_run", {"quality_options.seed": 4, "quality_options.max_samples": 5,
                      "quality_options.tstr_per_class": 6, "quality_options.extractor_steps": 7,
                      "quality_options.cache_dir": "c", "quality_options.inception_weights": "w"}),
])
def test_every_flag_reaches_the_python_api(argv, name, expected, tmp_path, monkeypatch):
    """Each command passes its flags (or their documented defaults) on to the function it
    calls, with flags over recipe values over TrainConfig's defaults."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 5\nepochs: 1\nlr: 0.002\n")
    monkeypatch.chdir(tmp_path)
    got = _reached(monkeypatch, name, [a.replace("{recipe}", str(recipe)) for a in argv])
    for key, want in expected.items():
        value = got
        for part in key.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        assert value == (want.replace("{recipe}", str(recipe)) if isinstance(want, str)
                         else want), key


def test_net_option_flags_go_over_a_recipes_net_options(tmp_path, monkeypatch):
    """`--net-option` sets one key of `net_options`; the recipe's other keys stay."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("net_options:\n  input_noise: 0.6\n  hidden_noise: 0.5\n")
    got = _reached(monkeypatch, "fit", ["train", "--recipe", str(recipe), "--out", "o",
                                        "--net-option", "hidden_noise=0"])
    assert got["config"].net_options == {"input_noise": 0.6, "hidden_noise": 0}


def test_resume_with_net_option(tmp_path, capsys):
    """A run trained with `--net-option` resumes with the same flag (or none: the saved
    options stay), and refuses another value, naming the flag."""
    out = tmp_path / "r"
    base = ["train", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main([*base, "--net-option", "hidden_noise=0"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--net-option", "hidden_noise=0.1"]) == 2
    err = capsys.readouterr().err
    assert "configuration differs (--net-option {'hidden_noise': 0} -> {'hidden_noise': 0.1})" \
        in err
    assert main([*base, "--resume", "--epochs", "2", "--net-option", "hidden_noise=0"]) == 0
    assert main([*base, "--resume", "--epochs", "3"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["net_options"] == {"hidden_noise": 0} and cfg["epochs"] == 3


def test_seeds_resume_finds_any_seeds_checkpoint_and_ignores_a_recipes_seed(tmp_path,
                                                                           monkeypatch):
    """`--seeds 0,1 --resume` resumes when only seed 1 has a checkpoint, and a recipe's
    `seed` (which --seeds replaces) is no configuration clash."""
    from ganaug import CLSGAN, TrainConfig
    from ganaug.experiment import seed_dir
    folder = seed_dir(tmp_path / "o", 1)
    folder.mkdir(parents=True)
    CLSGAN((1, 8, 8), 10, "mlp").save(folder / "checkpoint.pt",
                                      extra={"config": TrainConfig(seed=1).resolved().to_dict()})
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 5\n")
    got = _reached(monkeypatch, "fit_seeds", ["train", "--recipe", str(recipe), "--seeds", "0,1",
                                              "--resume", "--out", str(tmp_path / "o")])
    assert got["seeds"] == [0, 1] and got["resume"] is True


@pytest.mark.parametrize("epochs", [1, 2])
def test_seeds_resume_checks_every_seeds_data_before_training_any(tmp_path, capsys, epochs):
    """A seed trained on other images (the image folder changed under the same path) is
    refused before any seed trains: seed 0 is not trained first (epochs 2), and a finished
    seed 1 is not averaged in unchecked (epochs 1)."""
    from _formats import write_image_classes
    images = write_image_classes(tmp_path / "images", value=64, n=6)
    out = tmp_path / "o"
    flags = ["--dataset", f"folder:{images}", "--labels-per-class", "3", "--quiet",
             "--no-tensorboard"]
    assert main(["train", *flags, "--epochs", "1", "--seed", "1",
                 "--out", str(out / "seed-1")]) == 0
    write_image_classes(images, value=192, n=6)     # other images, the same folder
    capsys.readouterr()
    assert main(["train", *flags, "--epochs", str(epochs), "--seeds", "0,1", "--resume",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cannot resume {out / 'seed-1'}: this is not the data it trained on" in err
    assert sorted(q.name for q in out.iterdir()) == ["seed-1"]


def test_a_resume_over_fewer_seeds_names_the_seed_folders_it_leaves_out(tmp_path, capsys):
    """--seeds 0 --resume on a folder that also holds seed-1/: the summary is over seed 0
    alone, and a warning names seed-1/ (it is not silently dropped)."""
    flags = ["--epochs", "1", "--quiet", "--no-tensorboard", "--out", str(tmp_path / "o")]
    assert main(["train", *flags, "--seeds", "0,1"]) == 0
    capsys.readouterr()
    assert main(["train", *flags, "--seeds", "0", "--resume"]) == 0
    assert (f"warning: {tmp_path / 'o'} also holds seed-1/, not in --seeds 0: left out of its "
            f"summary, which is over seeds 0 alone") in capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["seeds"] == [0]


def test_a_finished_seed_copied_elsewhere_is_reported_where_it_is_now(tmp_path, capsys):
    import shutil
    flags = ["--epochs", "1", "--quiet", "--no-tensorboard"]
    assert main(["train", *flags, "--seeds", "0", "--out", str(tmp_path / "a")]) == 0
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert main(["train", *flags, "--seeds", "0", "--resume", "--out", str(tmp_path / "b")]) == 0
    s = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert s["run"] == str(tmp_path / "b") and s["runs"][0]["run"] == str(tmp_path / "b" / "seed-0")
    assert f"already finished in {tmp_path / 'b' / 'seed-0'}" in capsys.readouterr().err


def test_a_run_saved_before_recalibrate_bn_existed_resumes_as_it_trained(tmp_path, monkeypatch):
    """A checkpoint whose config lacks keys added since resumes with the values it trained
    with (``TrainConfig.BEFORE_KEY_EXISTED``), not today's defaults."""
    from ganaug import CLSGAN, TrainConfig
    old = TrainConfig().resolved().to_dict()
    for key in ("recalibrate_bn", "standing_stats"):
        del old[key]
    (tmp_path / "o").mkdir()
    CLSGAN((1, 8, 8), 10, "mlp").save(tmp_path / "o" / "checkpoint.pt", extra={"config": old})
    got = _reached(monkeypatch, "fit", ["train", "--resume", "--out", str(tmp_path / "o")])
    assert got["config"].recalibrate_bn is False and got["config"].standing_stats == 0


def test_a_run_resumes_with_the_networks_it_trained_after_a_builder_default_changes(tmp_path,
                                                                                      capsys):
    """A run begun under other builder defaults (here: its checkpoint says the MLP loss
    network was built with hidden_noise 0.5, the config leaves it to the default) resumes
    through `ganaug train --resume` with the networks of its checkpoint; handed a model built
    otherwise, `ganaug.train` refuses to resume, saying why."""
    from ganaug import TrainConfig, build_model, load_dataset, split_labeled, train
    from ganaug._io import atomic_torch_save, safe_torch_load
    out = tmp_path / "r"
    base = ["train", "--out", str(out), "--quiet"]
    assert main([*base, "--epochs", "1"]) == 0
    ckpt = safe_torch_load(out / "checkpoint.pt")
    assert ckpt["model"]["net_options"]["hidden_noise"] == 0.0
    ckpt["model"]["net_options"]["hidden_noise"] = 0.5          # "the default when it began"
    atomic_torch_save(out / "checkpoint.pt", ckpt)
    cfg = TrainConfig.from_dict(ckpt["config"])
    data, _ = load_dataset("digits")
    lab, unl = split_labeled(data, cfg.labels_per_class, cfg.data_seed)
    with pytest.raises(ValueError, match=r"networks were built otherwise \(net_options .*"
                                         r"'hidden_noise': 0.5.* -> .*'hidden_noise': 0.0"):
        train(build_model(cfg, data), lab, unl, cfg, out=out, resume=True, progress=False)
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    ckpt = safe_torch_load(out / "checkpoint.pt")
    assert ckpt["epoch"] == 2 and ckpt["model"]["net_options"]["hidden_noise"] == 0.5


def test_an_interrupted_train_exits_130_with_what_it_left(tmp_path, monkeypatch, capsys):
    """Ctrl-C is exit status 130 and one line on whether there is a checkpoint, no traceback."""
    from ganaug import experiment as E

    def fit(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "fit", fit)
    assert main(["train", "--out", str(tmp_path / "o"), "--quiet"]) == 130
    assert "before the first epoch's checkpoint was written" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    ([], "the following arguments are required: command"),
    (["train", "--labels-per-class", "ten"], "expected an integer or 'all', got 'ten'"),
    (["train", "--seeds", ","], "expected at least one seed"),
    (["train", "--seeds", "0,x"], "expected comma-separated integers, got '0,x'"),
    (["train", "--gp-weight", "x"], "expected a number or 'auto', got 'x'"),
    (["train", "--recipe", "a.yaml", "--recipe", "b.yaml"],
     "--recipe is given twice (a.yaml and b.yaml); pass one"),
    (["train", "--net-option", "input_noise"], "expected KEY=VALUE (e.g. input_noise=0)"),
    (["train", "--net-option", "=0"], "expected KEY=VALUE"),
    (["train", "--net-option", "input_noise=0", "--net-option", "input_noise=0.1"],
     "--net-option input_noise is given twice (0 and 0.1); pass it once"),
])
def test_malformed_command_lines_are_usage_errors(argv, message, monkeypatch, capsys):
    """A missing command or a flag value of the wrong form stops in argparse: exit status 2
    and a message that says what form the value needs."""
    from ganaug import experiment as E

    def train(*args, **kwargs):
        raise _Reached("the command line was accepted")

    monkeypatch.setattr(E, "fit", train)
    monkeypatch.setattr(E, "fit_seeds", train)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_python_dash_m_and_sigkill_mid_epoch_then_resume(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["train", "--epochs", "5", "--quiet", "--batch-size", "16"]
    assert _cli(*common, "--out", str(a)).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ganaug", *common, "--out", str(b)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 600
    ckpt = b / "checkpoint.pt"
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)                       # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be killed")
    assert ckpt.exists(), "no checkpoint was written before the deadline"
    epoch = torch.load(ckpt, weights_only=True)["epoch"]
    assert 1 <= epoch < 5
    r = _cli(*common, "--out", str(b), "--resume")
    assert r.returncode == 0, r.stderr
    sa = torch.load(a / "checkpoint.pt", weights_only=True)["state"]
    sb = torch.load(ckpt, weights_only=True)["state"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ja, jb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert ja["test_accuracy"] == jb["test_accuracy"]


def test_sigterm_is_handled_as_ctrl_c(tmp_path):
    """SIGTERM (what `timeout` and batch schedulers send) ends a run as Ctrl-C does: the line
    that says which checkpoint is kept, exit status 143 (128 + SIGTERM), no temporary file."""
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ganaug", "train", "--epochs", "100",
                             "--quiet", "--no-tensorboard", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 600
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be stopped")
    assert proc.returncode == 143, err
    assert err.splitlines()[-1].startswith("ganaug: interrupted; the checkpoint of the last "
                                           "complete epoch is kept (epoch "), err
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name or p.name.startswith(".")]


def test_eval_says_a_run_is_unfinished_or_has_no_model_yet(tmp_path, capsys):
    """eval of a run stopped before its epochs (here by --time-limit) says so and how to go on;
    of a folder whose run ended before its first epoch did, that there is no model yet."""
    run = tmp_path / "r"
    assert main(["train", "--epochs", "3", "--time-limit", "0.0001", "--quiet",
                 "--no-tensorboard", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--quick"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"run {run} (checkpoint.pt: epoch 1 of 3 planned: an unfinished run (interrupted or "
        f"stopped early; --resume continues it); the run's own classifier argmin_y L(x, y), EMA "
        f"weights, on the digits test split, 450 images)")
    early = tmp_path / "early"
    early.mkdir()
    (early / "config.json").write_text((run / "config.json").read_text())
    assert main(["eval", "--run", str(early), "--quick"]) == 2
    assert (f"{early} holds a run that ended before its first epoch did (no checkpoint.pt yet): "
            f"there is no model to read") in capsys.readouterr().err


def test_a_resume_deletes_the_temporary_files_a_killed_run_left(digits_run, tmp_path, capsys):
    """A run killed mid-write (kill -9) leaves the temporary file of whichever file it was
    writing: the resume deletes those of the run's own files (not only the checkpoint's),
    says so, and leaves other files alone (an eval's, the user's)."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    stale = [run / ".metrics.jsonl.k2j3.tmp", run / ".summary.json.x1.tmp",
             run / ".curves.png.a9.tmp", run / ".config.json.zz.tmp",
             run / "samples" / ".epoch_0002.png.q7.tmp"]
    kept = [run / ".eval.json.b4.tmp", run / ".notes.txt.tmp", run / "notes.tmp"]
    for p in stale + kept:
        p.write_bytes(b"half")
    assert main(["train", "--epochs", "3", "--out", str(run), "--resume", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    for p, name in zip(stale, ["metrics.jsonl", "summary.json", "curves.png", "config.json",
                               "epoch_0002.png"]):
        assert f"deleted {p.name}, left by a run killed while writing {name}" in err


def _summary(cfg, accuracy, epochs, seconds):
    """A seed's summary.json as fit writes it (the fields fit_seeds reads)."""
    return {"test_accuracy": accuracy, "test_error": 1 - accuracy, "balanced_accuracy": accuracy,
            "macro_f1": accuracy / 2, "epochs": epochs, "epochs_planned": cfg.epochs,
            "stopped": "time limit" if epochs < cfg.epochs else None, "seed": cfg.seed,
            "train_seconds": seconds, "dataset": cfg.dataset, "num_labeled": 10,
            "num_unlabeled": 20, "num_test": 30, "objective": cfg.objective, "arch": "mlp",
            "recipe": None}


def test_seeds_summary_is_mean_and_sample_std_over_every_seed(tmp_path, monkeypatch):
    import statistics

    from ganaug import experiment as E

    runs = {0: (0.5, 2, 1.5), 1: (0.6, 1, 2.0), 2: (0.9, 2, 4.0)}   # accuracy, epochs, seconds
    monkeypatch.setattr(E, "fit", lambda c, folder, **k: _summary(c, *runs[c.seed]))
    cfg = E.TrainConfig(epochs=2)
    s = E.fit_seeds(cfg, (0, 1, 2), tmp_path / "m", progress=False, log=lambda m: None)
    assert s["test_accuracy_mean"] == pytest.approx(2 / 3)       # the mean, not the median
    assert s["test_accuracy_std"] == pytest.approx(statistics.stdev([0.5, 0.6, 0.9]))
    assert s["macro_f1_mean"] == pytest.approx(1 / 3)
    assert s["balanced_accuracy_std"] == pytest.approx(s["test_error_std"])
    assert (s["epochs"], s["epochs_per_seed"], s["stopped_seeds"]) == (None, [2, 1, 2], [1])
    assert s["train_seconds"] == 7.5 and s["num_seeds"] == 3
    assert json.loads((tmp_path / "m" / "summary.json").read_text()) == s
    one = E.fit_seeds(cfg, (2,), tmp_path / "one", progress=False, log=lambda m: None)
    assert one["test_accuracy_mean"] == 0.9 and one["test_accuracy_std"] is None
    # another set of seeds into the same folder would mix two experiments
    with pytest.raises(ValueError, match="already holds a run"):
        E.fit_seeds(cfg, (3, 4), tmp_path / "m", progress=False, log=lambda m: None)


def test_seeds_line_gives_a_spread_only_over_several_seeds(tmp_path, monkeypatch, capsys):
    """--seeds 0: one seed has no spread, so the line has no "± n/a" and says "one seed";
    --seeds 0,1: mean ± sample std over 2 seeds."""
    from ganaug import experiment as E

    monkeypatch.setattr(E, "fit", lambda c, folder, **k: {
        **_summary(c, 0.8 + c.seed / 10, 2, 1.0), "run": str(folder)})
    monkeypatch.chdir(tmp_path)
    main(["train", "--seeds", "0", "--epochs", "2", "--out", "one", "--quiet"])
    line = capsys.readouterr().out.splitlines()[-1]
    assert "test accuracy 0.8000, test error 20.00% (one seed, 0;" in line and "±" not in line
    main(["train", "--seeds", "0,1", "--epochs", "2", "--out", "two", "--quiet"])
    line = capsys.readouterr().out.splitlines()[-1]
    assert "test accuracy 0.8500 ± 0.0707, test error 15.00% ± 7.07% (mean ± sample std " \
           "over 2 seeds 0,1;" in line


def test_train_summary_counts_the_training_clock_of_the_whole_run(tiny, tmp_path, monkeypatch):
    from ganaug import experiment as E
    from ganaug.data import split_labeled

    from _tiny import FAST

    monkeypatch.setattr(E, "load_data", lambda c: (*split_labeled(tiny, 4, c.data_seed), tiny, None))
    out = tmp_path / "r"
    E.fit(E.TrainConfig(**FAST), out, progress=False, log=lambda m: None, tensorboard=False)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    s = json.loads((out / "summary.json").read_text())
    assert s["train_seconds"] == round(ckpt["train_seconds"], 3) > 0
    assert s["train_seconds"] == ckpt["history"][-1]["seconds"]
    assert (s["epochs"], s["stopped"], s["num_test"]) == (2, None, 48)


def _no_data(monkeypatch):
    """Make loading data an error: a refusal must come before it."""
    from ganaug import experiment as E

    def load_data(cfg):
        raise AssertionError("the data was loaded before the run folder was checked")

    monkeypatch.setattr(E, "load_data", load_data)


def test_out_that_is_a_file_is_refused_before_the_data_loads(tmp_path, monkeypatch, capsys):
    _no_data(monkeypatch)
    afile = tmp_path / "afile"
    afile.write_text("hi")
    is_file, under = f"{afile} is a file: name a folder", f"is under {afile}, a file: name a folder"
    for argv, want in ((["--out", str(afile)], is_file), (["--out", str(afile / "run")], under),
                       (["--seeds", "0,1", "--out", str(afile)], is_file),
                       (["--resume", "--out", str(afile)], is_file)):
        assert main(["train", "--quiet", *argv]) == 2
        err = capsys.readouterr().err
        assert want in err and err.count("\n") == 1
    assert afile.read_text() == "hi"


def test_single_runs_and_multi_seed_runs_do_not_share_a_folder(tmp_path, monkeypatch, capsys):
    """A single run into a --seeds folder (or --resume there without --seeds) is refused
    with the --seeds to pass, and --seeds into a single run's folder with the reverse
    advice; before any data is loaded, and nothing is overwritten."""
    _no_data(monkeypatch)
    multi = tmp_path / "ms"
    for seed in (0, 1):
        (multi / f"seed-{seed}").mkdir(parents=True)
    aggregate = json.dumps({"seeds": [0, 1], "runs": [], "test_accuracy_mean": 0.5})
    (multi / "summary.json").write_text(aggregate)
    for argv in (["--out", str(multi)], ["--resume", "--out", str(multi)]):
        assert main(["train", "--quiet", *argv]) == 2
        err = capsys.readouterr().err
        assert "holds a multi-seed run" in err and "pass --seeds 0,1 (with --resume" in err
    assert (multi / "summary.json").read_text() == aggregate
    from ganaug import TrainConfig, fit
    with pytest.raises(ValueError, match="holds a multi-seed run"):
        fit(TrainConfig(epochs=1), multi, progress=False, log=lambda m: None)
    (tmp_path / "gone").mkdir()                          # the aggregate alone tells too
    (tmp_path / "gone" / "summary.json").write_text(aggregate)
    assert main(["train", "--out", str(tmp_path / "gone")]) == 2
    assert "pass --seeds 0,1" in capsys.readouterr().err
    single = tmp_path / "single"
    single.mkdir()
    (single / "checkpoint.pt").write_bytes(b"")
    for argv in (["--seeds", "0,1", "--out", str(single)],
                 ["--seeds", "0,1", "--resume", "--out", str(single)]):
        assert main(["train", "--quiet", *argv]) == 2
        assert "holds a single run (without --seeds): drop --seeds" in capsys.readouterr().err


def _image_folder(root, n=5):
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (8, 8)).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def test_a_folder_run_resumes_and_evaluates_from_any_directory(tmp_path, monkeypatch, capsys):
    """A folder:PATH run records PATH absolute; resumed and evaluated from elsewhere, any
    spelling of the folder (or a moved copy of the same images) is accepted."""
    _image_folder(tmp_path / "img")
    monkeypatch.chdir(tmp_path)
    common = ["--quiet", "--no-tensorboard", "--labels-per-class", "2"]
    assert main(["train", "--dataset", "folder:img", "--epochs", "1", "--out", "run", *common]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"] == \
        f"folder:{tmp_path / 'img'}"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["eval", "--quick", "--run", "../run"]) == 0
    assert main(["train", "--resume", "--out", "../run", "--epochs", "2", *common]) == 0
    assert main(["train", "--resume", "--out", "../run", "--dataset", "folder:../img",
                 "--epochs", "3", *common]) == 0
    import shutil
    shutil.copytree(tmp_path / "img", tmp_path / "moved")
    assert main(["train", "--resume", "--out", "../run", "--dataset", "folder:../moved",
                 "--epochs", "4", *common]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 4
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"] == \
        f"folder:{tmp_path / 'moved'}"
    capsys.readouterr()
    assert main(["train", "--resume", "--out", "../run", "--dataset", "digits",
                 "--epochs", "5", *common]) == 2
    assert "configuration differs" in capsys.readouterr().err


def test_eval_refuses_a_folder_that_changed_and_finds_one_that_moved(tmp_path, capsys):
    """One image more splits a folder otherwise: the test split would hold images the run
    trained on. eval refuses other data (as a resume does) before writing eval.json; the
    same images moved elsewhere are evaluated with --data-root (the folder's new place)."""
    import shutil
    from PIL import Image
    img, run = _image_folder(tmp_path / "img", n=8), tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{img}", "--epochs", "1", "--out", str(run),
                 "--quiet", "--no-tensorboard", "--labels-per-class", "2"]) == 0
    shutil.copytree(img, tmp_path / "moved")
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(img / "a" / "new.png")
    capsys.readouterr()
    assert main(["eval", "--quick", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"cannot evaluate {run}: this is not the data it trained on" in err
    assert "--data-root" in err and not (run / "eval.json").exists()
    assert "ganaug.evaluate" not in err        # the advice for a digits run from Python
    assert main(["eval", "--quick", "--run", str(run), "--data-root", str(tmp_path / "moved"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_test"] == \
        json.loads((run / "summary.json").read_text())["num_test"]


def test_eval_of_a_run_whose_folder_is_not_there_says_what_to_do(tmp_path, monkeypatch,
                                                                  capsys):
    from ganaug import CLSGAN, TrainConfig
    old = TrainConfig(labels_per_class=2).resolved().to_dict()
    old["dataset"] = "folder:img"                       # as saved before paths were absolute
    (tmp_path / "o").mkdir()
    CLSGAN((1, 8, 8), 2, "mlp").save(tmp_path / "o" / "checkpoint.pt",
                                     extra={"config": old, "epoch": 1})
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--quick", "--run", "o"]) == 2
    err = capsys.readouterr().err
    assert "relative to the directory it was trained from; run `ganaug eval` from there" in err
    old["dataset"] = f"folder:{tmp_path / 'gone'}"       # an absolute folder, since removed
    CLSGAN((1, 8, 8), 2, "mlp").save(tmp_path / "o" / "checkpoint.pt",
                                     extra={"config": old, "epoch": 1})
    assert main(["eval", "--quick", "--run", "o"]) == 2
    err = capsys.readouterr().err
    assert "does not exist: it was moved or deleted since the run trained: put the images " \
           "back there, or pass their new place as --data-root" in err and "--dataset" not in err


def test_resume_with_a_data_root_of_other_data_is_refused(tmp_path, capsys):
    """--data-root may change on resume (the files moved), but not to other data."""
    from _formats import write_mnist
    rng = np.random.default_rng(0)
    for name, per_class in (("d1", 6), ("d2", 7)):
        x = rng.integers(0, 256, (10 * per_class, 28, 28))
        y = np.arange(10 * per_class) % 10
        write_mnist(tmp_path / name, x, y, x[:20], y[:20])
    import shutil
    shutil.copytree(tmp_path / "d1", tmp_path / "copy")
    out = str(tmp_path / "run")
    common = ["--quiet", "--no-tensorboard", "--dataset", "mnist", "--labels-per-class", "2"]
    assert main(["train", *common, "--data-root", str(tmp_path / "d1"), "--epochs", "1",
                 "--out", out]) == 0
    stamp = (tmp_path / "run" / "checkpoint.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["train", "--resume", "--out", out, "--data-root", str(tmp_path / "d2"),
                 "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "this is not the data it trained on (unlabeled images 40 -> 50)" in err
    assert (tmp_path / "run" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert main(["train", "--resume", "--out", out, "--data-root", str(tmp_path / "copy"),
                 "--epochs", "2", "--quiet", "--no-tensorboard"]) == 0


def test_a_diverged_generator_and_an_allocation_that_fails_are_one_line(digits_run, tmp_path,
                                                                        monkeypatch, capsys):
    """`ganaug sample` of a generator whose output is NaN wrote NaN images and said
    "wrote"; a request too large for memory was a torch traceback. Both are one error line
    (exit 2) that names the fix, and no file is written."""
    from ganaug import CLSGAN, experiment as E
    real = CLSGAN.sample_per_class

    def diverged(self, per_class, seed=0):
        images, labels = real(self, per_class, seed)
        return images * float("nan"), labels

    monkeypatch.setattr(CLSGAN, "sample_per_class", diverged)
    out = tmp_path / "s.png"
    assert main(["sample", "--run", str(digits_run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "generator returns NaN or inf values (it diverged in training" in err
    assert err.count("\n") == 2 and not out.exists()          # "sampling ..." and the error

    def too_large(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 256000000000 bytes.")

    monkeypatch.setattr(E, "sample_run", too_large)
    assert main(["sample", "--run", str(digits_run), "--per-class", "100000000",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganaug: error: out of memory (can't allocate memory: you tried to "
                          "allocate 256000000000 bytes.): ask for less at once")
    assert "Traceback" not in err

    def other(*args, **kwargs):
        raise RuntimeError("some other failure")

    monkeypatch.setattr(E, "sample_run", other)
    with pytest.raises(RuntimeError, match="some other failure"):   # not hidden as memory
        main(["sample", "--run", str(digits_run), "--out", str(out)])


def test_a_resume_clash_that_comes_from_the_recipe_names_the_recipe(digits_run, tmp_path,
                                                                     capsys):
    """The clash message named "--lr" when no --lr was given (the recipe set it)."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr: 0.002\n")
    argv = ["train", "--out", str(digits_run), "--resume", "--recipe", str(recipe)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"(lr (from --recipe {recipe}) 0.001 -> 0.002)" in err and "--lr" not in err
    assert main([*argv, "--lr", "0.003"]) == 2                    # a flag is named as one
    assert "(--lr 0.001 -> 0.003)" in capsys.readouterr().err


def test_a_folder_run_names_its_classes_and_reads_an_uneven_test_set_balanced(tmp_path, capsys):
    """The start line names a folder's classes; summary.json holds them and each class's test
    images (per_class_support, in per_class_accuracy's order); with uneven test classes (6
    and 2 images) the final line adds the balanced accuracy, which plain accuracy hides."""
    from _formats import write_image_classes
    root = tmp_path / "images"
    write_image_classes(root / "train", value=64, n=6, names=("cat", "dog"))
    write_image_classes(root / "test", value=64, n=6, names=("cat",))
    write_image_classes(root / "test", value=64, n=2, names=("dog",))
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{root}", "--epochs", "1", "--labels-per-class",
                 "3", "--no-tensorboard", "--out", str(out)]) == 0
    got = capsys.readouterr()
    assert "; 2 classes (cat, dog); arch " in got.err
    s = json.loads((out / "summary.json").read_text())
    assert s["classes"] == ["cat", "dog"] and s["per_class_support"] == [6, 2]
    assert f", balanced accuracy {s['balanced_accuracy']:.4f} (folder:" in got.out


def test_class_lists_and_the_balanced_reading():
    from ganaug.cli import _balanced
    from ganaug.experiment import class_list
    assert class_list([str(i) for i in range(10)]) == "10 classes"      # ids: no names
    assert class_list(["b", "a"]) == "2 classes (b, a)"                  # label order
    assert class_list(list("abcdefghijkl")) == "12 classes (a, b, c, d, e, f, g, h, i, j, ...)"
    s = {"balanced_accuracy": 0.5}
    assert _balanced({**s, "per_class_support": [15, 10]}) == ""        # 1.5x: even enough
    assert _balanced({**s, "per_class_support": [16, 10, 0]}) == ", balanced accuracy 0.5000"
    assert _balanced({**s, "per_class_support": [10, 0]}) == ""         # an absent class
    assert _balanced(s) == ""                                           # an older summary


# --- the usual slips on the command line get a hint (from a newcomer's drive, run 12) ----
def _usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_misspelt_flag_gets_the_nearest_one(capsys):
    err = _usage_error(["train", "--lables-per-class", "5"], capsys)
    assert err.endswith("unrecognized arguments: --lables-per-class 5 (--lables-per-class: "
                        "did you mean --labels-per-class?)")


def test_a_space_separated_list_is_told_to_use_commas(capsys):
    err = _usage_error(["train", "--seeds", "0", "1", "2"], capsys)
    assert err.endswith("unrecognized arguments: 1 2 (a flag takes one value, and a list is "
                        "comma-separated: --seeds 0,1,2)")


def test_time_limit_takes_minutes_as_a_number(capsys):
    err = _usage_error(["train", "--time-limit", "30m"], capsys)
    assert err.endswith("argument --time-limit: expected minutes as a number (e.g. 30, or 0.5 "
                        "for 30 seconds), got '30m'")


def test_labels_per_class_all_in_any_case():
    from ganaug.cli_args import _parser
    assert _parser().parse_args(["train", "--labels-per-class", "ALL"]).labels_per_class is None


@pytest.mark.parametrize("name, hint", [("MNIST", "(did you mean 'mnist'?)"),
                                        ("CIFAR-10", "(did you mean 'cifar10'?)")])
def test_a_dataset_name_in_other_case_is_named(tmp_path, capsys, name, hint):
    assert main(["train", "--dataset", name, "--out", str(tmp_path / "r")]) == 2
    assert f"unknown dataset {name!r} {hint}" in capsys.readouterr().err


def test_a_folder_given_without_folder_prefix_is_told_it(tmp_path, capsys, monkeypatch):
    (tmp_path / "imgs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "imgs", "--out", "r"]) == 2
    assert "unknown dataset 'imgs' (imgs is a folder: for its images pass folder:imgs)" in \
        capsys.readouterr().err


def test_a_run_folder_s_best_pt_is_refused(tmp_path):
    """sample's --out check: best.pt of a run folder is refused; the model file sampled from is
    refused however its path is spelled (relative, or through a symlink)."""
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=f"is a file of run folder {tmp_path}"):
        _check_not_a_run_file(tmp_path / "best.pt", tmp_path)


def test_the_model_file_under_another_spelling_is_refused(tmp_path, monkeypatch):
    model = tmp_path / "model.pt"
    model.write_bytes(b"x")
    (tmp_path / "link.pt").symlink_to(model)
    monkeypatch.chdir(tmp_path)
    for out, run in ((model, Path("model.pt")), (tmp_path / "link.pt", model)):
        with pytest.raises(ValueError, match="is the model file sampled from"):
            _check_not_a_run_file(out, run)


QUICK = ["--epochs", "1", "--labels-per-class", "2", "--quiet", "--no-tensorboard"]


def test_a_stale_recipe_temporary_is_deleted(tmp_path, capsys):
    """fit(): deletes a killed write's temporary recipe.yaml (as it does summary.json's and
    curves.png's)."""
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".recipe.yaml.k2j3.tmp"
    stale.write_bytes(b"half")
    assert main(["train", "--out", str(out), *QUICK]) == 0
    assert not stale.exists()
    assert f"deleted {stale.name}, left by a run killed while writing recipe.yaml" in \
        capsys.readouterr().err


def test_fit_holds_the_lock_while_it_evaluates_after_training(tmp_path, monkeypatch):
    """fit() holds the run folder's lock after train() returns too, while it evaluates and
    writes summary.json."""
    fcntl = pytest.importorskip("fcntl")
    out, seen, evaluate = tmp_path / "run", [], E.evaluate

    def probe(model, test):
        fd = os.open(out, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append("free")
        except BlockingIOError:
            seen.append("held")
        finally:
            os.close(fd)
        return evaluate(model, test)
    monkeypatch.setattr(E, "evaluate", probe)
    assert main(["train", "--out", str(out), *QUICK]) == 0
    assert seen == ["held"]


def _seen(monkeypatch):
    seen = []

    def run(args):
        seen.append(signal.getsignal(signal.SIGTERM))
        return 0
    monkeypatch.setattr(cli, "_run", run)
    return seen


def test_the_handler_is_set_for_the_command_and_restored_after(monkeypatch):
    """main()'s SIGTERM handler: set while a command runs in a single process's main thread,
    restored afterwards; not set in another thread (signal.signal would raise there) nor under
    torchrun (WORLD_SIZE > 1), where SIGTERM must end a rank at once."""
    seen = _seen(monkeypatch)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["eval", "--run", "x", "--quick"]) == 0
    assert seen == [cli._terminate]
    assert signal.getsignal(signal.SIGTERM) is before


def test_main_runs_in_a_thread_that_is_not_the_main_one(monkeypatch):
    seen, got = _seen(monkeypatch), []
    t = threading.Thread(target=lambda: got.append(cli.main(["eval", "--run", "x", "--quick"])))
    t.start()
    t.join(60)
    assert got == [0] and seen and seen[0] is not cli._terminate


def test_under_torchrun_sigterm_keeps_its_default(monkeypatch):
    seen = _seen(monkeypatch)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["eval", "--run", "x", "--quick"]) == 0
    assert seen == [before]


def _m(epoch, planned, checkpoint="checkpoint.pt"):
    return {"checkpoint": checkpoint, "epoch": epoch, "epochs_planned": planned,
            "dataset": "digits", "num_test": 4, "accuracy": 0.5, "balanced_accuracy": 0.5,
            "macro_f1": 0.5, "classes": ["a", "b"], "per_class_accuracy": [0.5, 0.5],
            "per_class_support": [2, 2], "test_error": 0.5}


@pytest.mark.parametrize("epoch,planned,best,unfinished", [
    (1, 3, False, True), (3, 3, False, False), (1, 3, True, False)])
def test_the_unfinished_note(monkeypatch, capsys, epoch, planned, best, unfinished):
    """eval's first line: 'of N planned: an unfinished run' only for a checkpoint.pt before its
    last epoch, not for a finished run, nor for --best (best.pt's epoch is the best one)."""
    m = _m(epoch, planned, "best.pt" if best else "checkpoint.pt")
    monkeypatch.setattr(E, "evaluate_run", lambda *a, **k: m)
    assert cli.main(["eval", "--run", "r", "--quick"] + (["--best"] if best else [])) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert (f"epoch {epoch} of {planned} planned: an unfinished run" in first) == unfinished
    assert first.startswith(f"run r ({m['checkpoint']}: epoch {epoch}")


def test_eval_lines_fit_a_terminal_and_stay_whole_in_a_file(capsys, monkeypatch):
    """eval's quality lines run to 400 characters: on a terminal they wrap under the number,
    the protocol indented; redirected (a file, a pipe) each stays one line, for grep."""
    from ganaug.cli import _say, fit_to_width
    line = ("  domain FID       12.216 [real reference 0.371]  -- " +
            " ".join(f"word{i}" for i in range(60)))
    wrapped = fit_to_width(line, 80)
    assert wrapped[0] == "  domain FID       12.216 [real reference 0.371]"
    assert all(len(w) <= 80 and w.startswith("      word") for w in wrapped[1:])
    assert " ".join(w.strip() for w in wrapped[1:]).split() == line.split("  -- ")[1].split()
    assert fit_to_width("short", 80) == ["short"]
    _say(line)
    assert capsys.readouterr().out == line + "\n"                  # captured: no terminal
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("shutil.get_terminal_size", lambda *a, **k: os.terminal_size((80, 24)))
    _say(line)
    assert capsys.readouterr().out.splitlines() == wrapped


def test_another_commands_flag_is_named_as_such(capsys):
    err = _usage_error(["eval", "--run", "x", "--epochs", "5"], capsys)
    assert err.endswith("unrecognized arguments: --epochs 5 (--epochs is a flag of ganaug "
                        "train, not of ganaug eval)")
    assert _usage_error(["train", "-e", "5"], capsys).endswith("unrecognized arguments: -e 5")


def test_a_torchvision_root_given_as_the_dataset_is_told_to_be_the_data_root(tmp_path, capsys,
                                                                             monkeypatch):
    (tmp_path / "tv" / "MNIST").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "tv", "--out", "r"]) == 2
    assert "(tv is a torchvision root holding mnist: pass --dataset mnist --data-root tv)" in \
        capsys.readouterr().err
    assert main(["train", "--recipe", "mine.yaml", "--out", "r"]) == 2
    assert capsys.readouterr().err.strip() == "ganaug: error: recipe mine.yaml does not exist"
