"""time_limit / --time-limit: after each epoch the run stops if another as long would end
past the limit; the stopped run's checkpoint resumes as if it had never stopped; the
summary says how many epochs ran and why; bad values are refused before any work."""
import importlib
import json
import time
import types

import pytest
import torch

from _tiny import FAST, _run, _same_state
from ganaug import TrainConfig, build_model, train
from ganaug import monitor as M
from ganaug import progress as P
from ganaug.cli import main
from ganaug.data import split_with_validation

T = importlib.import_module("ganaug.train")      # the module (ganaug.train is the function)


def test_the_rule_stops_only_when_another_epoch_would_end_past_the_limit(monkeypatch):
    monkeypatch.setattr(T.time, "perf_counter", lambda: 100.0)   # 100 s since a start at 0
    why = T._over_time(2.0, 0.0, 30.0, 3, 10)                  # 100 + 30 s > 120 s
    assert why.startswith("time limit: stopped after epoch 3 of 10")
    assert "1.7 of 2 minutes used" in why and "about 0.5 more" in why
    assert "--resume --time-limit 0" in why and "a plain --resume keeps this one" in why
    assert T._over_time(2.2, 0.0, 30.0, 3, 10) is None         # 130 s <= 132 s
    assert T._over_time(2.0, 0.0, 20.0, 3, 10) is None         # ends exactly at the limit
    monkeypatch.setattr(T.time, "perf_counter", lambda: 4.0)     # a limit under a minute:
    assert "0.067 of 0.08 minutes used; the next epoch would take about 0.017" in \
        T._over_time(0.08, 0.0, 1.0, 1, 3)                     # not "0.1 of 0.08"


def test_a_stopped_run_resumes_as_if_it_had_never_stopped(tiny, tmp_path):
    whole = _run(tiny, out=tmp_path / "whole", epochs=3)
    part = _run(tiny, out=tmp_path / "part", epochs=3, time_limit=1e-9)   # the first epoch runs
    assert [r["epoch"] for r in part.history] == [1]
    assert part.stopped.startswith("time limit: stopped after epoch 1 of 3")
    resumed = _run(tiny, out=tmp_path / "part", epochs=3, time_limit=0, resume=True)
    assert resumed.stopped is None and [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert _same_state(whole, resumed)
    roomy = _run(tiny, epochs=2, time_limit=1000)
    assert roomy.stopped is None and len(roomy.history) == 2


def test_the_command_line_reports_a_stopped_run_and_resumes_it(tmp_path, capsys, monkeypatch):
    notes = []                                  # the last curves.png says why the run stopped
    plot = M.plot_curves
    monkeypatch.setattr(M, "plot_curves", lambda *a, **k: notes.append(a[3]) or plot(*a, **k))
    out = tmp_path / "r"
    assert main(["train", "--epochs", "3", "--time-limit", "1e-6", "--out", str(out),
                 "--quiet"]) == 0
    assert "after epoch 1 of 3 (time limit)" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert (s["epochs"], s["epochs_planned"]) == (1, 3)
    assert s["stopped"].startswith("time limit") and s["wall_seconds"] >= s["train_seconds"]
    assert json.loads((out / "config.json").read_text())["time_limit"] == 1e-6
    assert notes[-1] == "stopped by the time limit after epoch 1 of 3"
    assert main(["train", "--out", str(out), "--resume", "--time-limit", "0", "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert (s["epochs"], s["epochs_planned"], s["stopped"]) == (3, 3, None)
    assert notes[-1] == ""


def test_seeds_stopped_by_the_limit_are_resumed_not_skipped(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["train", "--seeds", "0,1", "--epochs", "2", "--time-limit", "1e-6",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("after epoch 1 of 2 (time limit)") == 2
    assert "epochs 1/1 of 2 (time limit)" in printed        # the mean is over 1 epoch, not 2
    s = json.loads((out / "summary.json").read_text())
    assert (s["epochs"], s["epochs_per_seed"], s["epochs_planned"], s["stopped_seeds"]) == \
        (1, [1, 1], 2, [0, 1])
    assert main(["train", "--seeds", "0,1", "--out", str(out), "--resume", "--time-limit", "0",
                 "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert [r["epochs"] for r in s["runs"]] == [2, 2]
    assert (s["epochs"], s["stopped_seeds"]) == (2, [])


def test_seeds_stopped_early_are_not_taken_as_finished_for_fewer_epochs(tmp_path, capsys):
    """Stopped after epoch 1 of 3, then resumed with --epochs 1: each seed is resumed (it
    trains nothing) and its summary rewritten for the plan of 1 epoch, as a single run's
    is; before, the old summaries were kept, "stopped by the time limit" after 1 of 3."""
    out = tmp_path / "s"
    assert main(["train", "--seeds", "0,1", "--epochs", "3", "--time-limit", "1e-6",
                 "--out", str(out), "--quiet"]) == 0
    assert main(["train", "--seeds", "0,1", "--epochs", "1", "--out", str(out), "--resume",
                 "--quiet"]) == 0
    assert "already finished" not in capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert (s["epochs"], s["epochs_planned"], s["stopped_seeds"]) == (1, 1, [])
    assert [(r["epochs_planned"], r["stopped"]) for r in s["runs"]] == [(1, None), (1, None)]


@pytest.mark.parametrize("bad", [-1, float("inf"), float("nan"), True, "30"])
def test_bad_limits_are_refused(bad):
    with pytest.raises(ValueError, match="time_limit is minutes of wall time"):
        TrainConfig(time_limit=bad).resolved()


def test_configs_saved_before_the_limit_existed_load_without_one():
    d = TrainConfig().to_dict()
    del d["time_limit"]
    assert TrainConfig.from_dict(d).time_limit == 0


def test_a_run_that_finishes_its_epochs_is_not_stopped(tiny):
    st = _run(tiny, epochs=1, time_limit=1e-9)
    assert st.stopped is None and len(st.history) == 1


def test_the_clock_starts_at_started_not_at_the_call(tiny):
    st = _run(tiny, epochs=3, time_limit=1.0, started=time.perf_counter() - 3600)
    assert [r["epoch"] for r in st.history] == [1]
    assert "stopped after epoch 1 of 3, 60.0 of 1 minutes used" in st.stopped


def test_the_longest_epoch_counts_its_callback_and_files(tiny, monkeypatch):
    clock = [0.0]                                      # training itself takes no time;
    monkeypatch.setattr(T, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    def slow_plot(rec, model):                         # each epoch's callback 100 s
        clock[0] += 100.0

    st = _run(tiny, epochs=3, time_limit=3.0, started=0.0, on_epoch=slow_plot)
    assert [r["epoch"] for r in st.history] == [1]    # 100 s used + 100 s more > 180 s
    assert "1.7 of 3 minutes used" in st.stopped
    clock[0] = 0.0
    st = _run(tiny, epochs=3, time_limit=5.0, started=0.0, on_epoch=slow_plot)
    assert st.stopped is None and len(st.history) == 3  # 200 s + 100 s ends at the limit


@pytest.mark.parametrize("compiled,trained", [(False, 2), (True, 3)])
def test_a_compiled_runs_first_epoch_leaves_the_estimate_once_another_has_run(
        tiny, monkeypatch, compiled, trained):
    """Epoch 1 takes 200 s (compiling), the others 100 s; 7 minutes. Eager: after epoch 2,
    300 s + 200 s > 420 s, stop. Compiled: 300 s + 100 s fits, and after epoch 3 400 + 100
    does not. After epoch 1 alone its 200 s is all there is to go by (400 s fits)."""
    clock = [0.0]
    monkeypatch.setattr(T, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(torch, "compile", lambda m, **kw: lambda *a, **k: m(*a, **k))

    def epoch_time(rec, model):
        clock[0] += 200.0 if rec["epoch"] == 1 else 100.0

    st = _run(tiny, epochs=4, time_limit=7.0, started=0.0, on_epoch=epoch_time,
              compile="on" if compiled else "off")
    assert [r["epoch"] for r in st.history] == list(range(1, trained + 1))
    assert f"stopped after epoch {trained} of 4" in st.stopped


T = importlib.import_module("ganaug.train")


def test_patience_wins_over_the_time_limit_in_the_same_epoch(tiny, monkeypatch):
    """When patience and the time limit would both stop after the same epoch, patience
    is the reason (a resume would stop on it again, so the time limit's "--resume
    --time-limit 0" advice would be wrong)."""
    clock = [0.0]
    monkeypatch.setattr(T, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    cfg = TrainConfig(**{**FAST, "epochs": 4, "val_per_class": 2, "patience": 1,
                         "time_limit": 3.5})               # 210 s: 2 epochs of 100 s fit, not 3
    lab, unl, val = split_with_validation(tiny, cfg.labels_per_class, 2, cfg.data_seed)
    scores = iter([0.5, 0.4])                              # no rise in epoch 2: patience 1
    real = T.evaluate_accuracy
    monkeypatch.setattr(T, "evaluate_accuracy",
                        lambda m, d: next(scores) if d is val else real(m, d))

    def tick(rec, model):
        clock[0] += 100.0

    st = train(build_model(cfg.resolved(), tiny), lab, unl, cfg, val=val, progress=False,
               log=lambda s: None, on_epoch=tick, started=0.0)
    assert [r["epoch"] for r in st.history] == [1, 2]
    assert st.stopped_by == "patience"


T = importlib.import_module("ganaug.train")


def test_a_compiled_runs_second_epoch_is_in_the_estimate(tiny, monkeypatch):
    """With torch.compile the estimate leaves out the call's first epoch only; from the
    second epoch on, that epoch's own time counts (not zero)."""
    clock = [0.0]
    monkeypatch.setattr(T, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(torch, "compile", lambda m, **kw: lambda *a, **k: m(*a, **k))
    took = {1: 200.0, 2: 150.0}

    def epoch_time(rec, model):
        clock[0] += took.get(rec["epoch"], 100.0)

    # 7.5 min = 450 s: after epoch 1, 200 + 200 fits; after epoch 2, 350 + 150 does not
    st = _run(tiny, epochs=4, time_limit=7.5, started=0.0, on_epoch=epoch_time, compile="on")
    assert [r["epoch"] for r in st.history] == [1, 2]
    assert "stopped after epoch 2 of 4" in st.stopped


T = importlib.import_module("ganaug.train")


def test_a_time_limit_stop_is_logged(tiny):
    """Why a run stops early is logged, in the loop (time limit, patience) and on
    a resume of a run patience stopped (which trains nothing)."""
    lines = []
    st = _run(tiny, epochs=3, time_limit=1e-9, log=lines.append)
    assert st.stopped_by == "time limit" and st.stopped in lines


def test_a_patience_stop_is_logged_and_logged_again_on_resuming(tiny, tmp_path, monkeypatch):
    cfg = TrainConfig(**{**FAST, "epochs": 4, "val_per_class": 2, "patience": 1})
    lab, unl, val = split_with_validation(tiny, cfg.labels_per_class, 2, cfg.data_seed)
    scores = iter([0.5, 0.25])
    real = T.evaluate_accuracy
    monkeypatch.setattr(T, "evaluate_accuracy",
                        lambda m, d: next(scores) if d is val else real(m, d))

    def run(resume, lines):
        return train(build_model(cfg.resolved(), tiny), lab, unl, cfg, out=tmp_path, val=val,
                     resume=resume, progress=False, log=lines.append)

    first, again = [], []
    st = run(False, first)
    assert st.stopped_by == "patience" and len(st.history) == 2 and st.stopped in first
    st2 = run(True, again)                             # trains nothing more
    assert st2.stopped_by == "patience" and st2.stopped in again


def test_a_first_epoch_that_outlasts_the_limit_is_told_at_its_fourth_step():
    """The limit is checked between epochs: a first epoch whose pace (steps 2 to 4; step 1
    may compile) projects past it gets one note, naming the pace and what to do."""
    now = iter([10.0, 13.0])                            # steps 2-4: 1 s each

    pace = P.Pace(1.0, 100, 10.0, cpu_conv=True, clock=lambda: next(now))
    assert [pace.after(k) for k in (1, 2, 3, 4)] == [False, False, False, True]
    note = pace.note()
    assert note.startswith("note: at this pace this epoch alone takes about 2 min, past "
                           "--time-limit 1 min, which is checked between epochs")
    assert note.endswith("; on a CPU the conv nets take hours an epoch, so use a GPU for them")
    fast = P.Pace(2.0, 100, 10.0, clock=iter([10.0, 13.0]).__next__)
    [fast.after(k) for k in (1, 2, 3, 4)]
    assert fast.note() is None                          # 100 s inside 2 min
    late = P.Pace(2.0, 100, -10.0, clock=iter([10.0, 13.0]).__next__)
    [late.after(k) for k in (1, 2, 3, 4)]               # 20 s of setup + 100 s: 2 min,
    assert late.note() is None                          # not past the limit; 21 s would be
    later = P.Pace(2.0, 100, -11.0, clock=iter([10.0, 13.0]).__next__)
    [later.after(k) for k in (1, 2, 3, 4)]
    assert later.note().endswith("kept)")               # not a conv run on a CPU: no advice
    short = P.Pace(1e-9, 4, 0.0)
    assert short.after(1) and short.note() is None      # 4 steps: no pace to read


def test_the_note_reaches_the_log_once(tiny):
    lines = []
    _run(tiny, epochs=2, time_limit=1e-9, log=lines.append)
    notes = [s for s in lines if s.startswith("note: at this pace")]
    assert len(notes) == 1 and "use a GPU" not in notes[0]      # the MLP pair
    lines.clear()
    _run(tiny, epochs=1, time_limit=1000, log=lines.append)
    assert not [s for s in lines if s.startswith("note: at this pace")]


class _Slow(T.Pace):
    """A pace that always projects past the limit, as soon as it is asked."""
    def after(self, done):
        return True

    def note(self):
        return "note: at this pace (stub)"


def test_the_pace_note_comes_in_a_calls_first_epoch_only_resumed_or_not(tiny, tmp_path,
                                                                          monkeypatch):
    data = tiny
    out = tmp_path / "run"
    first = _run(data, out=out, epochs=3, time_limit=1e-9)          # stops after epoch 1
    assert [r["epoch"] for r in first.history] == [1]
    monkeypatch.setattr(T, "Pace", _Slow)
    lines = []
    resumed = _run(data, out=out, resume=True, epochs=3, time_limit=1000, log=lines.append)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert [s for s in lines if s.startswith("note: at this pace")] == \
        ["note: at this pace (stub)"]                               # epoch 2 alone


def test_the_pace_is_told_the_steps_done_counting_from_one(tiny, monkeypatch):
    seen = []

    class Recording(T.Pace):
        def after(self, done):
            seen.append(done)
            return super().after(done)
    monkeypatch.setattr(T, "Pace", Recording)
    _run(tiny, epochs=1, time_limit=1000)
    assert seen and seen[0] == 1 and seen == list(range(1, len(seen) + 1))
