"""What a training run tells its user while it runs: the progress bar of an epoch (tqdm on a
terminal or in a notebook, whole lines every 30 s in a log file), the line per epoch, and the
note when a first epoch will outlast ``--time-limit``. The loop (``train.py``) calls these and
knows nothing of terminals."""
from __future__ import annotations

import sys
import time


def epoch_line(rec: dict, epochs: int) -> str:
    acc = f" test_acc={rec['test_accuracy']:.4f}" if "test_accuracy" in rec else ""
    acc += f" val_acc={rec['val_accuracy']:.4f}" if "val_accuracy" in rec else ""
    cond = f" (cond {rec['g_cond']:.4f})" if rec.get("g_cond") else ""   # a part of g
    div = f" div={rec['diversity']:.2f}" if "diversity" in rec else ""
    return (f"epoch {rec['epoch']}/{epochs} d={rec['d_loss']:.4f} sup={rec['sup_loss']:.4f} "
            f"g={rec['g_loss']:.4f}{cond}{acc}{div} ({rec['seconds']:.1f}s)")


class Pace:
    """Whether a call's first epoch alone will outlast ``--time-limit``, which is checked
    between epochs only: the pace of steps 2 to ``STEPS`` (step 1 may compile, and on
    a GPU the steps queue up, so the pace can only read low), told once."""
    STEPS = 4

    def __init__(self, limit_min: float, steps: int, started: float, cpu_conv: bool = False,
                 clock=time.perf_counter):
        self.limit_min, self.steps, self.started = limit_min, steps, started
        self.cpu_conv, self.clock = cpu_conv, clock
        self.t1: float | None = None
        self.projected: float | None = None

    def after(self, done: int) -> bool:
        """Record step ``done`` (from 1); True once the pace is known (or cannot be)."""
        if self.steps <= self.STEPS:
            return True
        if done == 1:
            self.t1 = self.clock()
        elif done == self.STEPS:
            self.projected = (self.clock() - self.t1) / (done - 1) * self.steps
            return True
        return False

    def note(self) -> str | None:
        """The note when the epoch, on top of the time used before it (loading, setup),
        ends past the limit; else None."""
        if self.projected is None or \
                self.t1 - self.started + self.projected <= 60 * self.limit_min:
            return None
        return (f"note: at this pace this epoch alone takes about {duration(self.projected)}, "
                f"past --time-limit {self.limit_min:g} min, which is checked between epochs: "
                f"the run stops after this epoch at the earliest. Ctrl-C stops it now (the "
                f"epoch it is in is lost; the last complete one is kept)"
                + ("; on a CPU the conv nets take hours an epoch, so use a GPU for them"
                   if self.cpu_conv else ""))


class NoBar:
    """No progress (``progress=False``, ``--quiet``)."""

    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def duration(seconds: float) -> str:
    """``42 s`` under 90 seconds, else ``10 min``: a time left, as the progress lines say it."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class LogBar:
    """Progress for output redirected to a file (nohup, CI logs): a whole line every
    ``every`` seconds, none for a shorter epoch (its own log line says it all), and no
    carriage returns, which would put the epoch's line on the bar's."""

    def __init__(self, total: int, desc: str, every: float = 30.0, clock=time.perf_counter):
        self.total, self.desc, self.every, self.clock = total, desc, every, clock
        self.done, self.start = 0, clock()
        self.last = self.start

    def update(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.every and self.done < self.total:
            self.last, spent = now, now - self.start
            left = spent * (self.total - self.done) / self.done
            print(f"{self.desc}: step {self.done}/{self.total} ({duration(spent)}, about "
                  f"{duration(left)} left)", file=sys.stderr, flush=True)

    def close(self) -> None: ...


def progress_bar(total: int, desc: str, enabled: bool):
    """An epoch's bar of ``total`` steps: tqdm on a terminal or in a notebook, ``LogBar``
    when stderr is redirected, ``NoBar`` when not ``enabled``."""
    if not enabled:
        return NoBar()
    if not getattr(sys.stderr, "isatty", lambda: False)() and "ipykernel" not in sys.modules:
        return LogBar(total, desc)                  # a notebook gets tqdm's widget
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.1)
