"""The benchmark scripts refuse bad lists, counts and GAN options with a message (exit 2)
before any work: no seed, weight, share or dataset twice (a repeated run into one folder or
a doubled row in a mean), no count below 1, no --gan-options field TrainConfig does not know
or the script sets itself. The scripts' work is replaced by stand-ins that fail the test
when reached; and what their tables and files say a number is."""
import argparse
import json
import sys
import types

import pytest

import _bench  # noqa: F401  (puts benchmarks/ on sys.path)
import _common  # noqa: E402


class _Reached(Exception):
    """The script got past its checks to its work."""


def _never(*args, **kwargs):
    raise _Reached


def _refused(monkeypatch, capsys, module, argv, message):
    monkeypatch.setattr(sys, "argv", [f"{module.__name__}.py", *argv])
    with pytest.raises(SystemExit) as e:
        module.main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err, err[-500:]


def test_parse_list_refuses_nothing_non_numbers_and_repeats(capsys):
    p = argparse.ArgumentParser(prog="x")
    assert _common.parse_list(p, "0, 1,2", "--seeds") == [0, 1, 2]
    assert _common.parse_list(p, "0.5,1e-1", "--f", float) == [0.5, 0.1]
    assert _common.parse_list(p, "", "--w", float, empty_ok=True) == []
    assert _common.parse_list(p, "digits,mnist", "--datasets", str) == ["digits", "mnist"]
    for text, kind, message in (
            ("", int, "--seeds needs at least one value, got ''"),
            (" ", int, "--seeds needs at least one value"),
            ("0,x", int, "--seeds takes comma-separated whole numbers, got '0,x'"),
            ("0,1.5", int, "--seeds takes comma-separated whole numbers"),
            ("0,,1", int, "--seeds takes comma-separated whole numbers"),
            ("0,1,0,1", int, "--seeds gives 0, 1 more than once (got '0,1,0,1'); give each"),
            ("3,3.0", float, "--seeds gives 3 more than once"),      # one folder, w3
            ("a,,b", str, "--seeds takes comma-separated names")):
        with pytest.raises(SystemExit) as e:
            _common.parse_list(p, text, "--seeds", kind)
        assert e.value.code == 2 and message in capsys.readouterr().err, text


def test_check_args_refuses_counts_below_one_and_a_dataset_twice(capsys):
    p = argparse.ArgumentParser(prog="x")
    _common.check_args(p, datasets="digits", positive={"--a": 1, "--b": None})
    for kw, message in (({"positive": {"--batch-size": 0}}, "--batch-size must be at least 1, got 0"),
                        ({"positive": {"--clf-epochs": -2}}, "--clf-epochs must be at least 1"),
                        ({"datasets": "digits,digits"}, "--datasets gives digits more than once")):
        with pytest.raises(SystemExit) as e:
            _common.check_args(p, **kw)
        assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--gan-epochs", "0"], "--gan-epochs must be at least 1, got 0"),
    (["--gan-epochs-mnist", "0"], "--gan-epochs-mnist must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--batch-size", "-4"], "--batch-size must be at least 1, got -4"),
    (["--clf-epochs", "0"], "--clf-epochs must be at least 1, got 0"),
    (["--seeds", ""], "--seeds needs at least one value"),
    (["--seeds", "0,1,0"], "--seeds gives 0 more than once"),
    (["--seeds", "0,x"], "--seeds takes comma-separated whole numbers"),
    (["--fractions", "0.5,0.50"], "--fractions gives 0.5 more than once"),
    (["--datasets", "digits,digits"], "--datasets gives digits more than once"),
    (["--gan-options", '{"data_seed": 2}'], "--gan-options cannot set data_seed (every sampler "
                                            "and classifier here uses 10 labels per class of "
                                            "the split of data seed 0)"),
    (["--gan-options", '{"labels_per_class": 5, "dataset": "mnist"}'],
     "--gan-options cannot set dataset (--datasets"),
    (["--gan-options", '{"epochs": 3}'], "cannot set epochs (--gan-epochs and --gan-epochs-mnist"),
    (["--gan-options", '{"bogus": 1}'], "unexpected keyword argument 'bogus'"),
    (["--gan-options", '{"lipschitz": "nope"}'], "unknown Lipschitz regulariser 'nope'"),
    (["--gan-options", "mode_seeking=1"], "--gan-options takes a JSON object of TrainConfig"),
])
def test_augment_refuses_before_any_work(monkeypatch, capsys, tmp_path, argv, message):
    import augment
    monkeypatch.setattr(augment, "load_or_skip", _never)
    _refused(monkeypatch, capsys, augment, [*argv, "--out", str(tmp_path / "o")], message)
    assert not (tmp_path / "o").exists()


def test_augment_takes_good_options_and_zero_epochs_is_not_the_default(monkeypatch, tmp_path):
    import augment
    monkeypatch.setattr(augment, "load_or_skip", _never)
    monkeypatch.setattr(sys, "argv", ["augment.py", "--gan-options", '{"mode_seeking": 1}',
                                      "--gan-epochs", "1", "--seeds", "3", "--device", "cpu",
                                      "--out", str(tmp_path)])
    with pytest.raises(_Reached):                # past every check, to the data
        augment.main()
    args = argparse.Namespace(gan_epochs=0, gan_epochs_mnist=0, gan_options={},
                              data_root="root")
    for name in ("digits", "mnist"):             # 0 is 0 epochs (refused), not "the default's"
        assert augment.sampler_config(name, 10, 0, args, "cpu").epochs == 0


@pytest.mark.parametrize("argv,message", [
    (["--rhos", "10,0.5"], "--rhos takes imbalance ratios (largest / smallest class), each a "
                           "finite number >= 1, got '10,0.5'"),
    (["--rhos", "10,inf"], "each a finite number >= 1"),
    (["--rhos", "nan"], "each a finite number >= 1"),
    (["--rhos", "10,10.0"], "--rhos gives 10 more than once"),
    (["--gan-epochs", "0"], "--gan-epochs must be at least 1"),
    (["--gan-epochs-mnist", "-1"], "--gan-epochs-mnist must be at least 1"),
    (["--clf-epochs", "0"], "--clf-epochs must be at least 1"),
    (["--clf-epochs-mnist", "0"], "--clf-epochs-mnist must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--seeds", "1,1"], "--seeds gives 1 more than once"),
    (["--seeds", ""], "--seeds needs at least one value"),
    (["--real-shares", "0.5,0.5"], "--real-shares gives 0.5 more than once"),
    (["--gan-options", '{"bogus": 1}'], "unexpected keyword argument 'bogus'"),
    (["--gan-options", '{"seed": 3}'], "--gan-options cannot set seed"),
    (["--gan-options", '[1]'], "--gan-options takes a JSON object"),
])
def test_imbalance_refuses_before_any_work(monkeypatch, capsys, tmp_path, argv, message):
    import imbalance
    monkeypatch.setattr(imbalance, "load_or_skip", _never)
    monkeypatch.setattr(imbalance, "one_setting", _never)
    _refused(monkeypatch, capsys, imbalance, [*argv, "--out", str(tmp_path / "o")], message)


@pytest.mark.parametrize("script", ["imbalance", "augment"])
def test_every_dataset_skipped_is_one_error_line(monkeypatch, capsys, tmp_path, script):
    """A benchmark whose every dataset lacks its files ends with one error line (it ended in
    a traceback from writing no rows), and writes nothing."""
    module = __import__(script)
    # imbalance.py checks for imbalanced-learn (the SMOTE baseline) first; CI lacks it
    monkeypatch.setitem(sys.modules, "imblearn", types.ModuleType("imblearn"))
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--datasets", "mnist", "--data-root",
                                      str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                                      "--device", "cpu"])
    with pytest.raises(SystemExit, match=r"^error: nothing was measured: every dataset was "
                                         r"skipped, its files missing \(mnist; see above\)$"):
        module.main()
    assert "skipping mnist: MNIST not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("script,argv,message", [
    ("conditioning", ["--seeds", "0,0"], "--seeds gives 0 more than once"),
    ("conditioning", ["--seeds", ""], "--seeds needs at least one value"),
    ("conditioning", ["--weights", "3,3.0"], "--weights gives 3 more than once"),
    ("conditioning", ["--weights", "", "--shares", "0.5,0.5"], "--shares gives 0.5 more than"),
    ("digits", ["--seeds", "0,1,1"], "--seeds gives 1 more than once"),
    ("objectives", ["--seeds", "2,2"], "--seeds gives 2 more than once"),
    ("objectives", ["--objectives", "sscls,gan,sscls"], "--objectives gives sscls more than"),
    ("standing_stats", ["--seeds", "0,0"], "--seeds gives 0 more than once"),
    ("standing_stats", ["--samples", "0,2048,2048"], "--samples gives 2048 more than once"),
    ("gate", ["--seeds", "1,1"], "--seeds gives 1 more than once"),
    ("gate", ["--gates", "0,0.5,0.50"], "--gates gives 0.5 more than once"),
])
def test_list_flags_refuse_a_value_twice_before_training(monkeypatch, capsys, tmp_path, script,
                                                         argv, message):
    module = __import__(script)
    monkeypatch.setattr(module, "run_train", _never)
    _refused(monkeypatch, capsys, module, [*argv, "--out", str(tmp_path / "o")], message)


def test_objectives_what_follows_the_regulariser():
    import objectives
    from ganaug.config import LIPSCHITZ
    from ganaug.objectives import OBJECTIVES

    assert set(objectives.REGULARISERS) == set(LIPSCHITZ)
    for name, obj in OBJECTIVES.items():           # an objective's own rows read as before
        assert objectives.what(name) == obj.description
        assert objectives.what(f"{name}:{obj.default_lipschitz}") == obj.description
    assert objectives.what("wgan:spectral-norm") == \
        "WGAN, spectral normalisation in place of weight clipping"
    assert objectives.what("cwgan:none") == "conditional WGAN, without weight clipping"
    assert objectives.what("gan:spectral-norm") == \
        "original GAN, non-saturating, with spectral normalisation"
    assert objectives.what("sscls:spectral-norm") == ("semi-supervised CLS-GAN, spectral "
                                                      "normalisation in place of zero-centred "
                                                      "gradient penalty")


def test_objectives_update_records_the_machine_the_new_rows_ran_on(monkeypatch, tmp_path,
                                                                    capsys):
    import objectives
    monkeypatch.setattr(objectives, "run_train", lambda args, out, threads=None: {
        "test_accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.5, "train_seconds": 1.0,
        "epochs": 1, "seed": int(args[args.index("--seed") + 1]), "lipschitz": "none"})
    base = ["--seeds", "0", "--epochs", "1", "--jobs", "1", "--out", str(tmp_path)]
    first = {"cpu": "first host", "date": "2026-01-01"}
    monkeypatch.setattr(objectives, "machine", lambda: first)
    monkeypatch.setattr(sys, "argv", ["objectives.py", "--objectives", "supervised,gan", *base])
    objectives.main()
    second = {"cpu": "second host", "date": "2026-01-02"}
    monkeypatch.setattr(objectives, "machine", lambda: second)
    monkeypatch.setattr(sys, "argv", ["objectives.py", "--objectives", "gan", "--update", *base])
    objectives.main()
    meta = json.loads((tmp_path / "objectives.json").read_text())["meta"]
    assert meta["machine"] == first                       # the rows not re-measured
    assert meta["updated"] == {"gan": {"date": "2026-01-02", "machine": second}}


def test_speed_documents_its_warm_ups_and_reference_flops(monkeypatch, capsys):
    """Sampling and the classifier step are timed after fixed warm-ups, which --help states
    (not --warmup's); the FLOP columns say they are the reference step's."""
    import torch

    import speed
    seen = {}

    def interleaved(fns, device, warmup, repeats, budget_s=30.0):
        for fn in fns.values():
            fn()
        seen.setdefault("calls", []).append((warmup, repeats))
        return {k: (1.0, 1.0) for k in fns}

    monkeypatch.setattr(speed, "interleaved", interleaved)
    args = argparse.Namespace(nets=["digits"], repeats=10, warmup=7)
    speed.bench_sampling(args, torch.device("cpu"))
    speed.bench_classifier(args, torch.device("cpu"))
    assert seen["calls"] == [(speed.SAMPLE_WARMUP, speed.sample_repeats(10)),
                             (speed.CLASSIFIER_WARMUP, 10)]
    monkeypatch.setattr(sys, "argv", ["speed.py", "--help"])
    with pytest.raises(SystemExit):
        speed.main()
    help_text = " ".join(capsys.readouterr().out.split())
    assert (f"(sampling: always {speed.SAMPLE_WARMUP}, the classifier step: always "
            f"{speed.CLASSIFIER_WARMUP})") in help_text
    assert "sampling: half as many, at least 3" in help_text
    assert "every variant does the same math" not in speed.__doc__
    row = {"section": "train", "net": "digits", "shape": "1x8x8", "batch": 64, "variant": "fast",
           "settings": "auto", "ms": 1.0, "images_per_s": 1.0, "speedup": 1.0,
           "gflop_per_step": 1.0, "tflops": 1.0, "peak_share": 0.5}
    speed.print_tables([row], "cpu", 2.0, "fp32 matmul")
    header = capsys.readouterr().out.splitlines()[2]
    assert ("| reference GFLOP/step | TFLOP/s (reference FLOPs) | % of matmul rate (reference "
            "FLOPs) |") in header


def test_epoch_time_refuses_warmup_with_epochs(monkeypatch, capsys, tmp_path):
    import epoch_time
    monkeypatch.setattr(epoch_time.signal, "signal", lambda *a: None)
    monkeypatch.setattr(epoch_time, "time_epochs", _never)
    monkeypatch.setattr(epoch_time, "write_full_size", _never)
    _refused(monkeypatch, capsys, epoch_time,
             ["--recipes", "svhn-1000", "--epochs", "1", "--warmup", "3", "--device", "cpu",
              "--out", str(tmp_path / "o")], "--warmup sets the untimed steps before --steps")


def test_epoch_time_counts_the_images_a_step_reads(monkeypatch, capsys, tmp_path):
    """images/s is the step's labeled and unlabeled images (unlabeled_ratio), over s/step;
    the table says what s/step is in --epochs mode."""
    import epoch_time
    monkeypatch.setattr(epoch_time.signal, "signal", lambda *a: None)
    (tmp_path / "data" / "svhn-1000").mkdir(parents=True)
    (tmp_path / "data" / "svhn-1000" / ".complete").write_text("")
    monkeypatch.setattr(epoch_time, "time_steps", lambda cfg, warmup, steps: {
        "step_s": 0.5, "eval_s": 1.0, "bn_s": None, "steps_per_epoch": 10, "n_train": 100,
        "n_test": 10, "settings": "s", "images_per_step": cfg.batch_size * 4})
    monkeypatch.setattr(sys, "argv", ["epoch_time.py", "--recipes", "svhn-1000", "--steps", "10",
                                      "--device", "cpu", "--keep-data", str(tmp_path / "data"),
                                      "--out", str(tmp_path / "o")])
    epoch_time.main()
    row, = json.loads((tmp_path / "o" / "epoch_time.json").read_text())["rows"]
    assert row["images_per_s"] == row["batch"] * 4 / 0.5
    out = capsys.readouterr().out
    assert "s/step (--epochs: the epoch's s / steps, BatchNorm pass in)" in out
    assert f"| {row['batch']}+{3 * row['batch']} |" in out
    assert epoch_time.images_per_step(types.SimpleNamespace(batch_size=8, unlabeled_ratio=2),
                                      False) == 8                    # no unlabeled images


@pytest.mark.parametrize("script", ["augment", "conditioning", "digits", "diversity",
                                    "epoch_time", "gate", "imbalance", "objectives",
                                    "speed", "standing_stats"])
def test_every_scripts_help_says_a_run_replaces_the_committed_results(script, monkeypatch,
                                                                      capsys):
    """--out defaults to benchmarks/results, where the documents' numbers are: --help says
    so, and how to keep them (a newcomer running a README command would overwrite them)."""
    import importlib
    module = importlib.import_module(script)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--help"])
    with pytest.raises(SystemExit):
        module.main()
    text = " ".join(capsys.readouterr().out.split())
    assert "--out OUT folder for the results' JSON and CSV (default: benchmarks/results" in text
    assert "a run replaces its own files there; name another folder to keep them" in text


def test_patience_writes_files_only_when_told_where(monkeypatch, capsys):
    """patience.py replays a user's own runs: without --out it prints its table alone (it
    overwrote the committed replay in benchmarks/results/patience)."""
    import patience
    monkeypatch.setattr(sys, "argv", ["patience.py", "--help"])
    with pytest.raises(SystemExit):
        patience.main()
    text = " ".join(capsys.readouterr().out.split())
    assert "--out OUT folder for the table's JSON and CSV (default: none, the table alone; " \
           "the committed replay is in benchmarks/results/patience)" in text
