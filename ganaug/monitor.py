"""Watching a run: the loss/accuracy plot ``curves.png`` and optional TensorBoard logging.

:class:`RunMonitor` is the ``on_epoch`` callback that :func:`ganaug.experiment.fit` hands to
:func:`ganaug.train.train`; the loop itself knows nothing of plots or TensorBoard.
matplotlib (Agg, no pyplot, so no global backend is changed) and TensorBoard are imported
only when used; TensorBoard is used only when it is installed.
"""
from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Callable

import torch

from ._io import atomic_write_bytes
from .checks import DIVERSITY_WARN
from .train import best_record

CURVES = "curves.png"
TENSORBOARD_DIR = "tensorboard"
_LOSSES = ("d_loss", "sup_loss", "critic", "critic_ul", "penalty", "consistency", "g_loss",
           "g_cond")


def plot_curves(history: list[dict], path: str | Path, title: str = "", note: str = "") -> Path:
    """Write losses (left) and test accuracy (right; the validation accuracy beside it and
    its best epoch marked when validated, and each epoch's sample ``diversity`` on a second
    axis when logged) per epoch as a PNG, atomically; ``note``
    (e.g. why the run stopped early) is a second line under ``title``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_l, ax_a = fig.subplots(1, 2)
    # an edited or old metrics.jsonl may lack an epoch or hold None / NaN / inf values
    history = [{**r, "epoch": r.get("epoch", i + 1)} for i, r in enumerate(history)]
    epochs = [r["epoch"] for r in history]

    def finite_of(key: str) -> list[tuple]:
        return [(r["epoch"], float(r[key])) for r in history if _finite(r.get(key))]

    for key in _LOSSES:
        vals = [r.get(key) for r in history]
        if any(v is not None and v != 0 for v in vals):
            ax_l.plot(epochs, [float("nan") if v is None else v for v in vals], label=key,
                      marker="." if len(epochs) < 30 else None)
    finite = [abs(v) for ln in ax_l.lines for v in ln.get_ydata() if math.isfinite(v)]
    if finite and max(finite) > 50:            # e.g. a feature-matching loss in the hundreds
        ax_l.set_yscale("symlog", linthresh=1.0)
    if ax_l.lines and not finite:
        ax_l.text(0.5, 0.5, "no finite loss (the run diverged)", ha="center", va="center",
                  transform=ax_l.transAxes)
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("mean loss over the epoch")
    ax_l.grid(alpha=0.3)
    if ax_l.lines:
        ax_l.legend(fontsize=8)
    acc, val = finite_of("test_accuracy"), finite_of("val_accuracy")
    if acc:
        ax_a.plot(*zip(*acc), color="C2", marker="." if len(acc) < 30 else None, label="test")
        best = max(acc, key=lambda t: t[1])
        ax_a.set_title(f"last {acc[-1][1]:.4f}, best {best[1]:.4f} (epoch {best[0]})", fontsize=9)
    if val:
        ax_a.plot(*zip(*val), color="C4", marker="." if len(val) < 30 else None,
                  label="validation")
        chosen = best_record([r for r in history if _finite(r.get("val_accuracy"))])
        ax_a.axvline(chosen["epoch"], color="C4", alpha=0.4, linewidth=1, linestyle=":")
        test_at = chosen.get("test_accuracy")
        ax_a.set_title(f"last {acc[-1][1]:.4f}; best by validation: epoch {chosen['epoch']}"
                       + (f", test {test_at:.4f}" if _finite(test_at) else "")
                       if acc else f"best by validation: epoch {chosen['epoch']}", fontsize=9)
        ax_a.legend(fontsize=8, loc="lower right")
    ax_a.set_xlabel("epoch")
    ax_a.set_ylabel("accuracy (EMA classifier)" if val else "test accuracy (EMA classifier)")
    ax_a.grid(alpha=0.3)
    div = finite_of("diversity")
    if div:                                    # its own scale: about 1 as varied as the real
        ax_d = ax_a.twinx()
        ax_d.set_ylabel("sample diversity (dashed; warns under the thin line)", color="C1",
                        fontsize=8)
        ax_d.plot(*zip(*div), color="C1", linestyle="--", marker="." if len(div) < 30 else None)
        ax_d.axhline(DIVERSITY_WARN, color="C1", alpha=0.3, linewidth=1)
        ax_d.set_ylim(0, max(1.2, max(v for _, v in div) * 1.05))
    for ax in (ax_l, ax_a):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title or note:
        fig.suptitle("\n".join(t for t in (title, note) if t), fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(Path(path), buf.getvalue())


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def open_tensorboard(log_dir: str | Path):
    """A ``SummaryWriter`` on ``log_dir``, or None when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:     # torch raises ImportError when the tensorboard package is absent
        return None
    return SummaryWriter(log_dir=str(log_dir))


class RunMonitor:
    """``monitor(record, model)`` after each epoch: TensorBoard scalars and sample grid (when
    installed and ``tensorboard``), and ``curves.png`` at most every ``plot_every`` seconds;
    :meth:`close` writes the final plot.

    A failure to plot is logged once and never stops training; a failure of TensorBoard
    (a full disk) is logged and turns TensorBoard off for the rest of the run.
    """

    def __init__(self, out: str | Path, title: str = "", tensorboard: bool = True,
                 plot_every: float = 30.0, grid: tuple | None = None,
                 log: Callable[[str], None] | None = None):
        self.out, self.title, self.plot_every = Path(out), title, plot_every
        self.grid, self.log = grid, log or (lambda s: None)
        self.tensorboard, self.writer = tensorboard, None   # opened at the first epoch
        self._last_plot = 0.0
        self._plot_ok, self._plot_warned = True, False
        self._plotted: tuple | None = None        # (epochs, last record) of the last plot

    def __call__(self, record: dict, model) -> None:
        try:
            if self.tensorboard and self.writer is None:
                self.writer = open_tensorboard(self.out / TENSORBOARD_DIR)
                self.tensorboard = self.writer is not None
                if self.writer is None:
                    self.log("tensorboard is not installed: no tensorboard/ folder (pip install "
                             "tensorboard; --no-tensorboard, or tensorboard=False, skips it "
                             "quietly)")
            if self.writer is not None:
                self._tensorboard(record, model)
        except Exception as e:    # a log is never worth a run: say so, stop logging
            self.log(f"warning: TensorBoard logging failed ({type(e).__name__}: {e}); it is off "
                     f"for the rest of this run (curves.png and metrics.jsonl go on)")
            self.tensorboard, writer, self.writer = False, self.writer, None
            try:
                if writer is not None:
                    writer.close()
            except Exception:
                pass
        if time.monotonic() - self._last_plot >= self.plot_every:
            self.plot(self.history())

    def history(self) -> list[dict]:
        """Every epoch so far (resumed runs included), from ``metrics.jsonl``."""
        path = self.out / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def plot(self, history: list[dict], note: str = "") -> None:
        """Write ``curves.png`` for ``history`` (skipped when already drawn)."""
        self._last_plot = time.monotonic()
        state = (len(history), json.dumps(history[-1], sort_keys=True), note) if history else None
        if not self._plot_ok or not history or state == self._plotted:
            return
        try:
            plot_curves(history, self.out / CURVES, self.title, note)
            self._plotted = state
        except ImportError as e:  # matplotlib missing: a plot is never worth a run
            self._plot_ok = False
            self.log(f"warning: could not write {CURVES} ({e}); pip install 'matplotlib>=3.7'")
        except Exception as e:    # anything else: say so once, try again next time
            if not self._plot_warned:
                self._plot_warned = True
                self.log(f"warning: could not write {CURVES} ({type(e).__name__}: {e})")

    @torch.no_grad()
    def _tensorboard(self, record: dict, model) -> None:
        epoch = int(record["epoch"])
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                group = "accuracy" if "accuracy" in key else ("loss" if key in _LOSSES else "train")
                self.writer.add_scalar(f"{group}/{key}", value, epoch)
        if self.grid is not None:
            from torchvision.utils import make_grid

            net = model.generator_ema
            was = net.training
            net.eval()
            images = net(*(t.to(model.device) for t in self.grid)).float().cpu()
            net.train(was)
            ncol = len(self.grid[1]) // model.num_classes
            self.writer.add_image("samples", make_grid(images, nrow=ncol, normalize=True,
                                                       value_range=(-1, 1), padding=1), epoch)
        self.writer.flush()

    def close(self, history: list[dict], note: str = "") -> None:
        """The final plot (``note``: e.g. that the time limit stopped the run); closes
        TensorBoard."""
        self.plot(history, note)
        if self.writer is not None:
            self.writer.close()
            self.writer = None


__all__ = ["plot_curves", "open_tensorboard", "RunMonitor", "CURVES", "TENSORBOARD_DIR"]
