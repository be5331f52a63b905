"""curves.png and TensorBoard logging (with a stand-in writer, so TensorBoard need not be
installed); no TensorBoard means no error."""
import json
import sys

import pytest

from ganaug import CLSGAN
from ganaug import monitor as M
from ganaug.train import _grid_inputs

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
        self.scalars, self.images, self.closed = {}, [], False

    def add_scalar(self, tag, value, step):
        self.scalars[(tag, step)] = value

    def add_image(self, tag, image, step):
        self.images.append((tag, tuple(image.shape), step))

    def flush(self):
        pass

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


def test_a_failing_plot_is_reported_once_and_never_raises(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no space left")

    monkeypatch.setattr(M, "plot_curves", broken)
    logs = []
    mon = M.RunMonitor(tmp_path, tensorboard=False, log=logs.append)
    mon.plot(HISTORY[:1])
    mon.plot(HISTORY[:2])
    mon.close(HISTORY)
    assert logs == ["warning: could not write curves.png (RuntimeError: no space left)"]


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
