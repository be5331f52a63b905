"""The command line's own logic, with experiment's functions stood in for: number flags
reach the config as numbers, "none"/"auto" mean the computed default, --seeds and --seed
refusals, eval --best, which errors become one line, and what an interrupt says (rank 0
alone). From a mutation run of cli.py; each test failed on its mutant."""
import pytest

from ganaug.cli import main
from ganaug.cli import fit_to_width
from ganaug.cli_args import _parser


class _Reached(Exception):
    pass


def _config(monkeypatch, argv, name="fit"):
    """The TrainConfig (or argument dict) that ``main(argv)`` hands to experiment.<name>."""
    import inspect
    from ganaug import experiment as E
    sig = inspect.signature(getattr(E, name))

    def stand_in(*args, **kwargs):
        b = sig.bind(*args, **kwargs)
        b.apply_defaults()
        raise _Reached(b.arguments)

    stand_in.__signature__ = sig                # a second call binds the same way
    monkeypatch.setattr(E, name, stand_in)
    with pytest.raises(_Reached) as e:
        main(argv)
    return e.value.args[0]


@pytest.mark.parametrize("flag,field,value,objective", [
    ("--lam", "lam", 0.5, "sscls"), ("--time-limit", "time_limit", 1.5, "sscls"),
    ("--clip", "clip", 0.02, "wgan"), ("--gamma", "gamma", 0.25, "sscls"),
    ("--margin-scale", "margin_scale", 1.5, "sscls"), ("--nu", "nu", 0.3, "gls"),
])
def test_fractional_values_of_number_flags_reach_the_config(flag, field, value, objective,
                                                            tmp_path, monkeypatch):
    """Flags documented with fractional values (lambda, minutes of wall time, a clipping
    bound ...) take them and pass them on unchanged (with an objective that uses them: the
    others are refused before the run)."""
    monkeypatch.chdir(tmp_path)
    got = _config(monkeypatch, ["train", "--out", "o", "--objective", objective, flag,
                                str(value)])
    assert getattr(got["config"], field) == value


def test_none_is_auto_for_a_flag_whose_default_is_computed(tmp_path, monkeypatch):
    """`--gp-weight none` (as `auto`, as a recipe's null) puts back the computed default."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text("gp_weight: 3.0\n")
    for word in ("none", "auto"):
        got = _config(monkeypatch, ["train", "--recipe", "r.yaml", "--out", "o",
                                    "--gp-weight", word])
        assert got["config"].gp_weight is None


def test_a_seed_given_twice_in_seeds_is_refused(tmp_path, capsys):
    """`--seeds 0,0` is an error (one line, exit 2), not one run with the repeat dropped."""
    out = tmp_path / "o"
    assert main(["train", "--seeds", "0,0", "--epochs", "1", "--out", str(out), "--quiet",
                 "--no-tensorboard"]) == 2
    assert "repeated seeds" in capsys.readouterr().err
    assert not (out / "seed-0").exists()


def test_seed_and_seeds_together_are_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """`--seed` would be silently ignored next to `--seeds` (each run gets its own): an
    error line, exit 2, no training."""
    from ganaug import experiment as E

    def fit_seeds(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(E, "fit_seeds", fit_seeds)
    assert main(["train", "--seed", "1", "--seeds", "0,1", "--out", str(tmp_path / "o")]) == 2
    assert "--seed and --seeds do not mix" in capsys.readouterr().err


def test_eval_best_evaluates_the_best_epoch(tmp_path, monkeypatch):
    """`eval --best` asks for best.pt (the epoch of highest validation accuracy); without it
    the last epoch."""
    assert _config(monkeypatch, ["eval", "--run", "r", "--best"], "evaluate_run")["best"] is True
    assert _config(monkeypatch, ["eval", "--run", "r", "--quick", "--best"],
                   "evaluate_run")["best"] is True
    assert _config(monkeypatch, ["eval", "--run", "r"], "evaluate_run")["best"] is False


@pytest.mark.parametrize("error", [
    PermissionError(13, "Permission denied", "/runs/x"),      # OSError: a folder not writable
    FloatingPointError("training diverged at epoch 3: the losses are NaN"),   # train.py
])
def test_os_and_divergence_errors_are_one_line_and_exit_2(error, tmp_path, monkeypatch,
                                                          capsys):
    """An unwritable folder or a run that diverged is one error line (exit 2), no traceback."""
    from ganaug import experiment as E

    def fit(*args, **kwargs):
        raise error

    monkeypatch.setattr(E, "fit", fit)
    assert main(["train", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == f"ganaug: error: {error}\n"


def test_only_rank_0_reports_an_interrupt(tmp_path, monkeypatch, capsys):
    """Ctrl-C reaches every torchrun process: rank 0 alone says what was left, every rank
    exits 130."""
    from ganaug import experiment as E

    def fit(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "fit", fit)
    monkeypatch.setenv("RANK", "1")
    assert main(["train", "--out", str(tmp_path / "o"), "--quiet"]) == 130
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "--out", str(tmp_path / "o"), "--quiet"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_an_interrupted_seeds_run_names_each_seeds_last_checkpoint(tmp_path, monkeypatch,
                                                                   capsys):
    """Ctrl-C in `train --seeds`: the message names the epoch of every seed folder's
    checkpoint, so the user knows what --resume continues."""
    import torch
    from ganaug import experiment as E

    def fit_seeds(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "fit_seeds", fit_seeds)
    out = tmp_path / "o"
    for seed, epoch in ((0, 3), (1, 2)):
        (out / f"seed-{seed}").mkdir(parents=True)
        torch.save({"format": "ganaug", "epoch": epoch}, out / f"seed-{seed}" / "checkpoint.pt")
    assert main(["train", "--seeds", "0,1", "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "checkpoint of the last complete epoch is kept (seed-0: epoch 3, seed-1: epoch 2;" in err


def test_an_interrupted_sample_or_eval_says_interrupted_only(tmp_path, monkeypatch, capsys):
    """Ctrl-C in `sample` or `eval`: exit 130, "ganaug: interrupted", no talk of training
    checkpoints."""
    from ganaug import experiment as E

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "sample_run", stop)
    monkeypatch.setattr(E, "evaluate_run", stop)
    for argv in (["sample", "--run", "r", "--out", str(tmp_path / "s.png")],
                 ["eval", "--run", "r", "--quick"]):
        assert main(argv) == 130
        assert capsys.readouterr().err == "ganaug: interrupted\n"


def _usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


LIST_HINT = "a flag takes one value, and a list is comma-separated: --seeds 0,1,2"


def test_labels_per_class_all_with_surrounding_spaces_is_all():
    assert _parser().parse_args(["train", "--labels-per-class", " all "]).labels_per_class is None


def test_a_stray_number_before_an_unknown_flag_still_gets_the_list_hint(capsys):
    err = _usage_error(["train", "--seeds", "0", "1", "--bogus"], capsys)
    assert err.startswith("ganaug: error: unrecognized arguments: 1 --bogus")
    assert LIST_HINT in err


def test_a_stray_decimal_number_gets_the_list_hint(capsys):
    err = _usage_error(["train", "--time-limit", "30", "0.5"], capsys)
    assert err.endswith(f"unrecognized arguments: 0.5 ({LIST_HINT})")


def test_a_number_after_an_unknown_flag_with_its_value_attached_gets_the_list_hint(capsys):
    err = _usage_error(["train", "--bogus=1", "2"], capsys)
    assert "unrecognized arguments: --bogus=1 2" in err and LIST_HINT in err


def test_a_flag_with_two_letters_transposed_gets_the_nearest_one(capsys):
    err = _usage_error(["train", "--epcohs", "5"], capsys)
    assert err.endswith("unrecognized arguments: --epcohs 5 (--epcohs: did you mean --epochs?)")


def test_a_line_of_exactly_the_width_is_not_wrapped():
    line = "  domain FID       12.216  -- the protocol"
    assert fit_to_width(line, len(line)) == [line]
    assert len(fit_to_width(line, len(line) - 1)) > 1


def test_wrapping_keeps_hyphenated_words_whole():
    words = [f"well-known-word-{i}" for i in range(12)]
    line = "  result " + " ".join(words) + "  -- " + " ".join(words)
    out = fit_to_width(line, 40)
    assert all(len(w) <= 40 for w in out)
    assert " ".join(out).split().count("well-known-word-3") == 2
    assert all(p.endswith(tuple("0123456789")) or p in ("result", "--")
               for p in " ".join(out).split())
