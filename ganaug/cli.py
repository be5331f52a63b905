"""Command line: parses arguments and calls the Python API, nothing more.

    ganaug train [options]                      train; prints the final test accuracy
    ganaug train --recipe recipes/NAME.yaml     a recipe's settings (flags override them)
    ganaug train --seeds 0,1,2 --out DIR        one run per seed, then mean and std
    ganaug sample --run DIR --per-class N --out FILE.png|FILE.pt
    ganaug eval --run DIR [--quick] [--json]    test error, per-class accuracy, and sample
                                                quality: domain FID/KID, intra-class FID,
                                                precision/recall, TSTR
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from typing import Callable

from ._io import CheckpointError, safe_torch_load
from .checks import DIVERSITY_WARN
from .cli_args import _SWITCHES, _TRAIN_FLAGS, _flag_name, _parser
from .config import TrainConfig
from .data import DataNotFoundError


def _train(args: argparse.Namespace) -> int:
    from .experiment import fit, fit_seeds, seed_dir

    given = {k: v for k, v in vars(args).items() if k in _TRAIN_FLAGS or k in _SWITCHES}
    if args.seeds is not None and "seed" in given:
        raise ValueError("--seed and --seeds do not mix: --seeds S,S,... sets each run's seed")
    recipe_bytes, flags = None, set(given)
    if args.recipe is not None:
        from .recipes import read_recipe
        values, recipe_bytes = read_recipe(args.recipe)   # the run copies what was parsed
        given = {**values, **given}                        # defaults < recipe < flags
    net_flags = getattr(args, "net_option", None) or {}
    if args.out is not None:
        from .runs import check_run_kind
        check_run_kind(args.out, seeds=args.seeds is not None)   # a file, the other kind of run
    if args.resume:
        if args.out is None:
            raise ValueError("--resume needs --out pointing at the run to resume")
        from pathlib import Path
        from .runs import checkpoint_config
        from .train import CHECKPOINT
        folders = [Path(args.out)] if args.seeds is None else \
            [seed_dir(args.out, s) for s in args.seeds]
        path = next((f / CHECKPOINT for f in folders if (f / CHECKPOINT).exists()), None)
        if path is None:
            where = CHECKPOINT if args.seeds is None else f"seed-N/{CHECKPOINT} of --seeds"
            raise ValueError(f"nothing to resume in {args.out}: it has no {where}; drop "
                             f"--resume to start a new run there")
        saved = checkpoint_config(safe_torch_load(path), path)
        if net_flags:                              # over the saved (or recipe's) options
            given["net_options"] = {**given.get("net_options", saved.net_options), **net_flags}
        # compare resolved values: `--lipschitz auto` resumes a run saved as 'zero-gp'
        def build(g: dict) -> TrainConfig:
            return dataclasses.replace(saved, **g).resolved()
        def differs(k: str, new: object) -> bool:
            return not TrainConfig.may_change(k, getattr(saved, k), new) and \
                not (k == "seed" and args.seeds is not None)
        try:
            asked = build(given)
        except ValueError as e:
            # a setting the run cannot change (another objective) makes the saved ones
            # clash (its g_cond_weight): name the change, not the clash it causes
            if not any(differs(k, v) for k, v in given.items()):
                raise ValueError(_recipe_note(e, given, flags, args.recipe, build)) from None
            asked = None
        clash = [k for k in given
                 if differs(k, given[k] if asked is None else getattr(asked, k))]
        if clash:
            def source(k: str) -> str:              # a flag, or the recipe's key
                return (_flag_name(k) if k in flags or (k == "net_options" and net_flags)
                        else f"{k} (from --recipe {args.recipe})")

            def shown(k: str, v: object) -> str:    # as the flag takes it
                return "all" if k == "labels_per_class" and v is None else repr(v)

            detail = ", ".join(f"{source(k)} {shown(k, getattr(saved, k))} -> "
                               f"{shown(k, given[k])}" for k in clash)
            raise ValueError(f"cannot resume {args.out}: the configuration differs ({detail}); "
                             f"drop those flags (or the --recipe) or start a new run with "
                             f"another --out")
        cfg = dataclasses.replace(saved, **given)
    else:
        if net_flags:
            given["net_options"] = {**given.get("net_options", {}), **net_flags}
        try:
            cfg = TrainConfig(**given)
            cfg.resolved()                          # its checks, here: before any work
        except ValueError as e:                     # name what of it the recipe set
            raise ValueError(_recipe_note(e, given, flags, args.recipe,
                                          lambda g: TrainConfig(**g).resolved())) from None
    from .distributed import configure_threads, init_from_env, is_main, launched_rank_and_world
    if isinstance(cfg.batch_size, int):
        # before the process group: one message (rank 0's), not one per process and a
        # torchrun traceback
        from .train import check_world_batch
        rank, world = launched_rank_and_world()
        try:
            check_world_batch(cfg.batch_size, world, resume=args.resume)
        except ValueError:
            if rank:
                return 2
            raise
    configure_threads()
    if init_from_env(cfg.device) and not is_main():   # under torchrun rank 0 alone prints
        sys.stdout = open(os.devnull, "w")            # and warns (the same on every rank)
        warnings.simplefilter("ignore")
    opts = dict(out=args.out, resume=args.resume, progress=not args.quiet, recipe=args.recipe,
                tensorboard=args.tensorboard, recipe_bytes=recipe_bytes)
    if args.seeds is not None:
        s = fit_seeds(cfg, args.seeds, **opts)
        for r in s["runs"]:
            print(f"seed {r['seed']}: test accuracy {r['test_accuracy']:.4f}{_diversity(r)}"
                  f"{_stopped(r)} -> {r['run']}")
        pm = lambda v, fmt: "" if v is None else " ± " + fmt.format(v)  # noqa: E731
        seeds = ",".join(map(str, s["seeds"]))
        over = (f"mean ± sample std over {s['num_seeds']} seeds {seeds}" if s["num_seeds"] > 1
                else f"one seed, {seeds}")
        print(f"test accuracy {s['test_accuracy_mean']:.4f}{pm(s['test_accuracy_std'], '{:.4f}')}"
              f", test error {100 * s['test_error_mean']:.2f}%{pm(s['test_error_std'], '{:.2%}')} "
              f"({over}; {_epochs(s)}; {s['dataset']}, {s['num_labeled']} labels, "
              f"{s['objective']}, {s['train_seconds']:.1f}s) -> {s['run']}")
        if "best_test_accuracy_mean" in s:
            from .train import BEST
            print(f"at the best epoch by validation accuracy (epochs "
                  f"{'/'.join(map(str, s['best_epoch_per_seed']))}; {s['num_val']} held-out "
                  f"labeled images): test error {100 * s['best_test_error_mean']:.2f}%"
                  f"{pm(s['best_test_error_std'], '{:.2%}')} (seed-N/{BEST})")
        return 0
    summary = fit(cfg, **opts)
    print(f"test accuracy {summary['test_accuracy']:.4f}{_balanced(summary)} "
          f"({summary['dataset']}, "
          f"{summary['num_labeled']} labels, {summary['objective']}, "
          f"{summary['train_seconds']:.1f}s){_diversity(summary)}{_stopped(summary)} -> "
          f"{summary['run']}")
    if "best_epoch" in summary:
        print(_best(summary))
    return 0


def _recipe_note(e: ValueError, given: dict, flags: set, recipe: str | None,
                 build: Callable[[dict], object]) -> str:
    """``e``'s message, and which of the settings behind it came from ``--recipe`` (not from
    a flag), with the flag that overrides each: a clash of a flag with the recipe's values
    otherwise names settings the user never typed. A recipe setting is behind ``e`` when
    ``build`` (the settings' check) without it ends otherwise."""
    def without(k: str) -> str | None:
        try:
            build({j: v for j, v in given.items() if j != k})
        except ValueError as other:
            return str(other)
        return None
    from_recipe = [k for k in given if recipe is not None and k not in flags
                   and k in _TRAIN_FLAGS and without(k) != str(e)]
    if not from_recipe:
        return str(e)
    sets = ", ".join(f"{k}: {given[k]!r} ({_flag_name(k)} overrides it)" for k in from_recipe)
    return f"{e} (--recipe {recipe} sets {sets})"


def _best(s: dict) -> str:
    """The line on the best epoch by validation accuracy (a run with --val-per-class)."""
    from .train import BEST
    path = os.path.join(s['run'], BEST)
    where = f"-> {path}" if os.path.isfile(path) else f"(its model is lost: no {path})"
    return (f"best epoch by validation accuracy: {s['best_epoch']} (val accuracy "
            f"{s['best_val_accuracy']:.4f} on {s['num_val']} held-out labeled images, test "
            f"accuracy {s['best_test_accuracy']:.4f}) {where}")


def _diversity(summary: dict) -> str:
    """``, sample diversity 0.71`` (flagged under the mixers' line), or nothing for a run
    without the reading."""
    d = summary.get("diversity")
    if d is None:
        return ""
    return f", sample diversity {d:.2f}" + (" (low: may have collapsed)" if d < DIVERSITY_WARN
                                             else "")


def _epochs(s: dict) -> str:
    """``20 epochs``, or what a time limit or patience made of the plan, for a --seeds
    summary."""
    from .train import TIME_LIMIT             # summaries written before patience: the limit
    per, planned = s["epochs_per_seed"], s["epochs_planned"]
    if s["stopped_seeds"] or len(set(per)) > 1:
        by = sorted({b for b in s.get("stopped_by_seed", ()) if b}) or [TIME_LIMIT]
        return f"epochs {'/'.join(map(str, per))} of {planned} ({', '.join(by)})"
    return f"{planned} epoch{'' if planned == 1 else 's'}"


def _balanced(summary: dict, ratio: float = 1.5) -> str:
    """``, balanced accuracy 0.7012`` when the test set's classes are uneven (the largest
    holds over ``ratio`` times the images of the smallest present), where plain accuracy
    mostly reads the large classes; else ''."""
    counts = [c for c in summary.get("per_class_support") or () if c]
    if not counts or max(counts) <= ratio * min(counts):
        return ""
    return f", balanced accuracy {summary['balanced_accuracy']:.4f}"


def _stopped(summary: dict) -> str:
    """`` after epoch k of N (time limit)`` (or ``(patience)``) for a run that stopped
    before its epochs, else ''."""
    from .train import TIME_LIMIT
    if not summary.get("stopped"):
        return ""
    return (f" after epoch {summary['epochs']} of {summary['epochs_planned']} "
            f"({summary.get('stopped_by') or TIME_LIMIT})")


def _sample(args: argparse.Namespace) -> int:
    from .experiment import sample_run

    path = sample_run(args.run, args.per_class, args.out, args.seed, args.device,
                      log=lambda s: print(s, file=sys.stderr, flush=True),
                      standing_stats=args.standing_stats)
    print(f"wrote {path}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .experiment import evaluate_run

    opts = {k: v for k, v in (("max_samples", args.samples),
                              ("tstr_per_class", args.tstr_per_class),
                              ("cache_dir", args.cache_dir),
                              ("extractor_steps", args.classifier_steps),
                              ("inception_weights", args.inception_weights)) if v is not None}
    if args.quick:
        # as `--seed` with `--seeds`: a flag that would be silently ignored is an error
        ignored = [flag for flag, v in (("--samples", args.samples), ("--seed", args.seed),
                                        ("--tstr-per-class", args.tstr_per_class),
                                        ("--classifier-steps", args.classifier_steps),
                                        ("--cache-dir", args.cache_dir),
                                        ("--inception-weights", args.inception_weights))
                   if v is not None]
        if ignored:
            raise ValueError(f"--quick measures no sample quality, so {', '.join(ignored)} "
                             f"would be ignored: drop {'it' if len(ignored) == 1 else 'them'}, "
                             f"or drop --quick")
    else:
        opts.update(seed=0 if args.seed is None else args.seed,
                    log=lambda s: print(s, file=sys.stderr, flush=True))
    m = evaluate_run(args.run, args.data_root, quality=not args.quick, save=not args.quick,
                     device=args.device, best=args.best, **opts)
    if not args.quick:
        from .experiment import EVAL, EVAL_BEST
        print(f"wrote {os.path.join(args.run, EVAL_BEST if args.best else EVAL)}",
              file=sys.stderr)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    unfinished = (f" of {m['epochs_planned']} planned: an unfinished run (interrupted or "
                  f"stopped early; --resume continues it)"
                  if not args.best and m["epoch"] < m["epochs_planned"] else "")
    _say(f"run {args.run} ({m['checkpoint']}: epoch {m['epoch']}{unfinished}; the run's own "
         f"classifier argmin_y L(x, y), EMA weights, on the {m['dataset']} test split, "
         f"{m['num_test']} images)")
    print(f"test accuracy      {m['accuracy']:.4f}")
    print(f"balanced accuracy  {m['balanced_accuracy']:.4f}")
    print(f"macro-F1           {m['macro_f1']:.4f}")
    print("per-class accuracy")
    for name, acc, n in zip(m["classes"], m["per_class_accuracy"], m["per_class_support"]):
        print(f"  {name:>12}  {'n/a' if acc is None else f'{acc:.4f}'}  ({n} images)")
    _say(f"test error         {m['test_error']:.4f} ({100 * m['test_error']:.2f}%; the run's own "
         f"classifier argmin_y L(x, y), EMA weights, all {m['num_test']} test images)")
    if m.get("quality_skipped"):
        _say(f"sample quality: not measured, {m['quality_skipped']}")
    elif "quality" in m:
        from .evaluation import quality_lines
        for line in quality_lines(m["quality"]):
            _say(line)
    return 0


def _say(line: str) -> None:
    """Print one of eval's lines: whole when stdout is a file or pipe (one line per number,
    for grep), wrapped to a terminal's width there (they run to 400 characters)."""
    if getattr(sys.stdout, "isatty", lambda: False)():
        import shutil
        print("\n".join(fit_to_width(line, shutil.get_terminal_size().columns)))
    else:
        print(line)


def fit_to_width(line: str, width: int) -> list[str]:
    """``line`` as lines of at most ``width`` characters (a word longer than that excepted):
    the number first, then its protocol (after `` -- ``) and any continuation indented under
    it by four spaces more than the line's own indent."""
    import textwrap
    if len(line) <= width:
        return [line]
    lead = " " * (len(line) - len(line.lstrip()) + 4)
    head, sep, protocol = line.partition("  -- ")
    first = textwrap.wrap(head, width, subsequent_indent=lead, break_on_hyphens=False)
    rest = textwrap.wrap(protocol, width, initial_indent=lead, subsequent_indent=lead,
                         break_on_hyphens=False) if sep else []
    return first + rest


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``kill``, batch schedulers), handled as Ctrl-C is (in a single
    process: under torchrun it keeps its default, which ends a rank at once)."""


def _terminate(signum, frame):
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    parser = _parser()
    parser.argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    python_format = warnings.formatwarning
    warnings.formatwarning = _one_line_warning      # as the log's own warnings, not file:line
    from .distributed import launched_rank_and_world
    # not under torchrun: a rank blocked in C++ (a collective, the process group's start)
    # would not run a Python handler, and torchrun's SIGTERM must end it at once
    main_thread = threading.current_thread() is threading.main_thread() and \
        launched_rank_and_world()[1] == 1
    python_term = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        code = _run(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:     # the reader went away (`ganaug eval --json | head`): no error,
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nor one at exit
        return 141                                                       # 128 + SIGPIPE
    finally:
        warnings.formatwarning = python_format
        if main_thread:
            signal.signal(signal.SIGTERM, python_term)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"                 # as the training log's warnings


def _run(args: argparse.Namespace) -> int:
    try:
        return {"train": _train, "sample": _sample, "eval": _eval}[args.command](args)
    except BrokenPipeError:                     # main's to handle: no error message
        raise
    except (ValueError, DataNotFoundError, CheckpointError, OSError, FloatingPointError) as e:
        print(f"ganaug: error: {e}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        if not _out_of_memory(e):
            raise
        detail = (str(e).splitlines() or [""])[0].split("DefaultCPUAllocator: ")[-1]
        print(f"ganaug: error: out of memory ({detail}): ask for less at once (fewer "
              f"images: --per-class, --standing-stats, --samples, --tstr-per-class; a smaller "
              f"--batch-size or --unlabeled-ratio) or use a machine with more memory",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:              # Ctrl-C reaches every torchrun process
        from .distributed import launched_rank_and_world
        if not launched_rank_and_world()[0]:
            print(_interrupted(args), file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130           # 128 + SIGTERM / SIGINT


def _out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an allocation that failed (host or GPU memory), not another error."""
    text = str(e)
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or \
        "DefaultCPUAllocator: can't allocate memory" in text or "bad_alloc" in text


def _interrupted(args: argparse.Namespace) -> str:
    """What an interrupted command left: for `train`, whether there is a checkpoint to
    resume from."""
    if args.command != "train":
        return "ganaug: interrupted"
    from pathlib import Path
    from .train import CHECKPOINT
    out = getattr(args, "out", None)
    if out is None:
        return ("ganaug: interrupted; if an epoch had ended, its checkpoint is in the run folder "
                "printed above (continue: the same command with --resume --out FOLDER)")
    folders = [Path(out)] + sorted(Path(out).glob("seed-*"))
    kept = [("" if f == Path(out) else f"{f.name}: ") + f"epoch {_checkpoint_epoch(f / CHECKPOINT)}"
            for f in folders if (f / CHECKPOINT).is_file()]
    if kept:
        return (f"ganaug: interrupted; the checkpoint of the last complete epoch is kept "
                f"({', '.join(kept)}; continue: the same command with --resume)")
    return ("ganaug: interrupted before the first epoch's checkpoint was written; there is no "
            "checkpoint to resume from")


def _checkpoint_epoch(path) -> str:
    """The epoch a checkpoint was written after, or '?' when it cannot be read."""
    try:
        return str(int(safe_torch_load(path)["epoch"]))
    except Exception:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
