"""curves.png and TensorBoard logging (with a stand-in writer, so TensorBoard need not be
installed); no TensorBoard means no error."""
import json
import sys
import types

import pytest

from ganaug import CLSGAN
from ganaug import monitor as M
from ganaug.train import GRID_COLUMNS, _grid_inputs

HISTORY = [{"epoch": e, "d_loss": 3.0 / e, "sup_loss": 1.0 / e, "critic": 0.5, "critic_ul": 0.0,
            "penalty": 0.01, "g_loss": 400.0 / e, "lr": 1e-3, "test_accuracy": 0.5 + e / 10}
           for e in (1, 2, 3)]


def test_plot_curves_writes_a_png(tmp_path):
    path = M.plot_curves(HISTORY, tmp_path / "c.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]        # no temporary left
    M.plot_curves(HISTORY[:1], tmp_path / "one.png")                  # a single epoch too


class _Writer:
    def __init__(self):
        self.scalars, self.images, self.closed, self.events = {}, [], False, []

    def add_scalar(self, tag, value, step):
        self.scalars[(tag, step)] = value
        self.events.append(("scalar", step))

    def add_image(self, tag, image, step):
        self.images.append((tag, tuple(image.shape), step))
        self.events.append(("image", step))

    def flush(self):
        self.events.append(("flush",))

    def close(self):
        self.closed = True


def test_monitor_logs_scalars_and_the_sample_grid(tmp_path, monkeypatch):
    writer = _Writer()
    monkeypatch.setattr(M, "open_tensorboard", lambda d: writer)
    model = CLSGAN((1, 8, 8), 4, "mlp", d_hidden=[8], g_hidden=[8])
    mon = M.RunMonitor(tmp_path, tensorboard=True, grid=_grid_inputs(model, 0, "cpu"))
    (tmp_path / "metrics.jsonl").write_text("".join(__import__("json").dumps(r) + "\n"
                                                    for r in HISTORY[:1]))
    model.generator_ema.train()
    mon(HISTORY[0], model)
    assert writer.scalars[("accuracy/test_accuracy", 1)] == pytest.approx(0.6)
    assert writer.scalars[("loss/g_loss", 1)] == 400.0 and ("train/lr", 1) in writer.scalars
    assert ("loss/critic", 1) in writer.scalars and ("loss/penalty", 1) in writer.scalars
    assert model.generator_ema.training                # the grid leaves its mode alone
    assert writer.images[0][0] == "samples" and writer.images[0][2] == 1
    assert (tmp_path / M.CURVES).exists()
    mon.close(HISTORY)
    assert writer.closed


def test_no_tensorboard_installed_is_no_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # import fails
    assert M.open_tensorboard(tmp_path / "tb") is None
    logs = []
    mon = M.RunMonitor(tmp_path, tensorboard=True, plot_every=1e9, log=logs.append)
    model = CLSGAN((1, 8, 8), 4, "mlp", d_hidden=[8], g_hidden=[8])
    mon(HISTORY[0], model)
    mon(HISTORY[1], model)
    assert mon.writer is None and not (tmp_path / M.TENSORBOARD_DIR).exists()
    assert [s for s in logs if "tensorboard" in s] == [               # said once, with the fix
        "tensorboard is not installed: no tensorboard/ folder (pip install tensorboard; "
        "--no-tensorboard, or tensorboard=False, skips it quietly)"]
    quiet = []
    M.RunMonitor(tmp_path, tensorboard=False, plot_every=1e9, log=quiet.append)(HISTORY[0], model)
    assert quiet == []


def test_a_diverged_run_still_gets_its_curves(tmp_path):
    nan = float("nan")
    history = [{"epoch": e, "d_loss": nan, "critic": nan, "g_loss": nan, "test_accuracy": 0.1}
               for e in (1, 2)]
    logs = []
    mon = M.RunMonitor(tmp_path, tensorboard=False, log=logs.append)
    mon.close(history)
    assert (tmp_path / M.CURVES).read_bytes()[:4] == b"\x89PNG" and logs == []


def test_the_plot_during_a_run_shows_every_epoch_so_far(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(M, "plot_curves", lambda history, *a: drawn.append(len(history)))
    mon = M.RunMonitor(tmp_path, tensorboard=False, plot_every=0.0)
    for e in (1, 2):
        (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n"
                                                        for r in HISTORY[:e]))
        mon(HISTORY[e - 1], None)
    assert drawn == [1, 2]
    mon.close(HISTORY[:2])                              # already drawn: not again
    mon.close(HISTORY[:2], "stopped by the time limit")  # a new note is drawn
    assert drawn == [1, 2, 2]


@pytest.mark.parametrize("error,note,tries", [
    (RuntimeError("no space left"), "(RuntimeError: no space left)", 3),     # tried again
    (ImportError("No module named 'matplotlib'"),                            # not retried
     "(No module named 'matplotlib'); pip install 'matplotlib>=3.7'", 1)])
def test_a_failing_plot_is_reported_once_and_never_raises(tmp_path, monkeypatch, error, note,
                                                          tries):
    calls = []

    def broken(*a, **k):
        calls.append(1)
        raise error

    monkeypatch.setattr(M, "plot_curves", broken)
    logs = []
    mon = M.RunMonitor(tmp_path, tensorboard=False, log=logs.append)
    mon.plot(HISTORY[:1])
    mon.plot(HISTORY[:2])
    mon.close(HISTORY)
    assert logs == [f"warning: could not write curves.png {note}"]
    assert len(calls) == tries


def test_the_accuracy_panel_names_the_best_epoch(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    titles = []
    real = Axes.set_title
    monkeypatch.setattr(Axes, "set_title",
                        lambda ax, t, *a, **k: titles.append(t) or real(ax, t, *a, **k))
    history = [dict(r, test_accuracy=a) for r, a in zip(HISTORY, (0.6, 0.9, 0.7))]
    M.plot_curves(history, tmp_path / "c.png")
    assert "last 0.7000, best 0.9000 (epoch 2)" in titles


def test_the_plot_shows_each_epochs_diversity_on_its_own_axis(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    drawn = []
    real = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda ax, *a, **k: drawn.append((ax.get_ylabel(), a))
                        or real(ax, *a, **k))
    history = [dict(r, diversity=d) for r, d in zip(HISTORY, (1.1, None, 0.4))]
    M.plot_curves(history, tmp_path / "c.png")
    dashed = [a for label, a in drawn if label.startswith("sample diversity")]
    assert dashed == [((1, 3), (1.1, 0.4))]                 # the epochs that have one
    drawn.clear()
    M.plot_curves(HISTORY, tmp_path / "d.png")
    assert not [a for label, a in drawn if label.startswith("sample diversity")]


def test_odd_histories_still_plot(tmp_path, monkeypatch):
    """An edited or old metrics.jsonl: a record without its epoch, None / NaN / inf values;
    the title's best ignores what is not a number."""
    from matplotlib.axes import Axes

    titles = []
    real = Axes.set_title
    monkeypatch.setattr(Axes, "set_title",
                        lambda ax, t, *a, **k: titles.append(t) or real(ax, t, *a, **k))
    nan, inf = float("nan"), float("inf")
    history = [dict(HISTORY[0], test_accuracy=nan, diversity=inf),
               {k: v for k, v in HISTORY[1].items() if k != "epoch"},
               dict(HISTORY[2], test_accuracy=None, diversity=0.8, val_accuracy=nan)]
    assert M.plot_curves(history, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert titles == ["last 0.7000, best 0.7000 (epoch 2)"]


def test_a_failing_tensorboard_is_reported_and_turned_off(tmp_path, monkeypatch):
    class Full(_Writer):
        def add_scalar(self, tag, value, step):
            raise OSError(28, "No space left on device")

    writer = Full()
    monkeypatch.setattr(M, "open_tensorboard", lambda d: writer)
    logs = []
    mon = M.RunMonitor(tmp_path, tensorboard=True, plot_every=1e9, log=logs.append)
    model = CLSGAN((1, 8, 8), 4, "mlp", d_hidden=[8], g_hidden=[8])
    mon(HISTORY[0], model)
    mon(HISTORY[1], model)                     # off: no second try, no second message
    assert writer.closed and mon.writer is None and len(logs) == 1
    assert logs[0].startswith("warning: TensorBoard logging failed (OSError: [Errno 28] No "
                              "space left on device); it is off for the rest of this run")


# ---------------------------------------------------------- from a mutation run of monitor.py
SHORT = [{"epoch": e, "d_loss": 3.0 / e, "test_accuracy": 0.5 + e / 10} for e in (1, 2, 3)]


def _tiny_model():
    return CLSGAN((1, 8, 8), 4, "mlp", d_hidden=[8], g_hidden=[8])


def test_the_plot_is_written_atomically(tmp_path, monkeypatch):
    """plot_curves hands the whole image to the atomic writer: a viewer reloading
    curves.png mid-write never reads half a PNG."""
    writes, real = [], M.atomic_write_bytes
    monkeypatch.setattr(M, "atomic_write_bytes",
                        lambda path, data: writes.append((path, data)) or real(path, data))
    path = M.plot_curves(SHORT[:2], tmp_path / "c.png")
    assert [p for p, _ in writes] == [tmp_path / "c.png"] and path == tmp_path / "c.png"
    assert writes[0][1][:8] == b"\x89PNG\r\n\x1a\n" and path.read_bytes() == writes[0][1]


def test_the_sample_grid_leaves_an_eval_generator_in_eval_mode(tmp_path, monkeypatch):
    """The generator average is used after fit(): the grid must not leave it training."""
    writer = _Writer()
    monkeypatch.setattr(M, "open_tensorboard", lambda d: writer)
    model = _tiny_model()
    assert not model.generator_ema.training                     # as CLSGAN builds it
    mon = M.RunMonitor(tmp_path, tensorboard=True, plot_every=1e9,
                       grid=_grid_inputs(model, 0, "cpu"))
    mon({"epoch": 1, "d_loss": 1.0, "test_accuracy": 0.5}, model)
    assert [(tag, step) for tag, _, step in writer.images] == [("samples", 1)]
    assert not model.generator_ema.training


def test_the_tensorboard_grid_has_a_row_per_class(tmp_path, monkeypatch):
    """GRID_COLUMNS images a row, one row per class, also with other than 10 classes."""
    writer = _Writer()
    monkeypatch.setattr(M, "open_tensorboard", lambda d: writer)
    model = _tiny_model()
    mon = M.RunMonitor(tmp_path, tensorboard=True, plot_every=1e9,
                       grid=_grid_inputs(model, 0, "cpu"))
    mon({"epoch": 1, "d_loss": 1.0}, model)
    side = 8 + 1                                             # an image and its padding
    assert writer.images == [("samples", (3, 4 * side + 1, GRID_COLUMNS * side + 1), 1)]


def test_every_epoch_is_flushed_to_tensorboard(tmp_path, monkeypatch):
    """A live TensorBoard shows the epoch now, not when the writer's buffer is written."""
    writer = _Writer()
    monkeypatch.setattr(M, "open_tensorboard", lambda d: writer)
    mon = M.RunMonitor(tmp_path, tensorboard=True, plot_every=1e9)
    model = _tiny_model()
    for e in (1, 2):
        mon({"epoch": e, "d_loss": 1.0 / e}, model)
        assert writer.events[-1] == ("flush",)
    assert writer.events.count(("flush",)) == 2


def test_losses_that_are_always_zero_are_not_drawn(tmp_path, monkeypatch):
    """A term the objective does not use (always 0 or None) gets no line."""
    from matplotlib.axes import Axes

    history = [{"epoch": e, "d_loss": 3.0 / e, "sup_loss": 1.0 / e, "critic": 0.5,
                "critic_ul": 0.0, "penalty": 0.0, "consistency": None, "g_loss": 4.0 / e,
                "g_cond": 0.0, "test_accuracy": 0.5 + e / 10} for e in (1, 2, 3)]
    labels, real = [], Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda ax, *a, **k: labels.append(k.get("label"))
                        or real(ax, *a, **k))
    M.plot_curves(history, tmp_path / "c.png")
    assert [x for x in labels if x != "test"] == ["d_loss", "sup_loss", "critic", "g_loss"]


def test_the_loss_panel_goes_symlog_past_50(tmp_path, monkeypatch):
    """A loss over 50 (a feature-matching loss in the hundreds) puts the panel on a symlog
    scale so the others stay readable; smaller losses keep a linear one."""
    from matplotlib.axes import Axes

    def history(top):
        return [{"epoch": e, "d_loss": 1.0 / e, "g_loss": top / e, "test_accuracy": 0.5}
                for e in (1, 2, 3)]
    scales, real = [], Axes.set_yscale
    monkeypatch.setattr(Axes, "set_yscale", lambda ax, s, *a, **k: scales.append(s)
                        or real(ax, s, *a, **k))
    M.plot_curves(history(120.0), tmp_path / "big.png")
    assert scales == ["symlog"]
    scales.clear()
    M.plot_curves(history(40.0), tmp_path / "small.png")
    assert "symlog" not in scales


def test_the_best_validated_epoch_skips_a_nan_validation(tmp_path, monkeypatch):
    """NaN in an edited or old metrics.jsonl is not the best epoch: the best finite one is."""
    from matplotlib.axes import Axes

    titles, lines = [], []
    real_title, real_vline = Axes.set_title, Axes.axvline
    monkeypatch.setattr(Axes, "set_title",
                        lambda ax, t, *a, **k: titles.append(t) or real_title(ax, t, *a, **k))
    monkeypatch.setattr(Axes, "axvline",
                        lambda ax, x=0, *a, **k: lines.append(x) or real_vline(ax, x, *a, **k))
    history = [{"epoch": e, "d_loss": 1.0, "test_accuracy": t, "val_accuracy": v}
               for e, t, v in ((1, 0.5, float("nan")), (2, 0.6, 0.8), (3, 0.7, 0.9))]
    M.plot_curves(history, tmp_path / "c.png")
    assert titles[-1] == "last 0.7000; best by validation: epoch 3, test 0.7000"
    assert lines == [3]


def test_blank_lines_in_metrics_jsonl_are_skipped(tmp_path, monkeypatch):
    """An edited metrics.jsonl neither fails the plot during a run nor stops training."""
    drawn = []
    monkeypatch.setattr(M, "plot_curves", lambda history, *a: drawn.append(history))
    (tmp_path / "metrics.jsonl").write_text(json.dumps(SHORT[0]) + "\n\n  \n"
                                            + json.dumps(SHORT[1]) + "\n\n")
    mon = M.RunMonitor(tmp_path, tensorboard=False, plot_every=0.0)
    assert mon.history() == SHORT[:2]
    mon(SHORT[1], None)
    assert drawn == [SHORT[:2]]


def test_a_plain_import_error_means_tensorboard_is_not_installed(tmp_path, monkeypatch):
    """torch.utils.tensorboard without the tensorboard package raises a plain ImportError
    (not ModuleNotFoundError): that too is "not installed", said once, not a failure."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard",   # without SummaryWriter
                        types.ModuleType("torch.utils.tensorboard"))
    assert M.open_tensorboard(tmp_path / "tb") is None
    logs = []
    mon = M.RunMonitor(tmp_path, tensorboard=True, plot_every=1e9, log=logs.append)
    mon({"epoch": 1, "d_loss": 1.0}, _tiny_model())
    assert len(logs) == 1 and logs[0].startswith("tensorboard is not installed")
