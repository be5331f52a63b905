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
from typing import Any, Callable

from ._io import CheckpointError, safe_torch_load
from .checks import DIVERSITY_WARN
from .config import LIPSCHITZ, SEED_RANGE, TrainConfig
from .data import DataNotFoundError
from .objectives import list_objectives

# flag -> TrainConfig field, for the options `train` accepts (all default to "not given")
_TRAIN_FLAGS = {
    "dataset": str, "data_root": str, "image_size": int, "labels_per_class": None,
    "data_seed": int, "val_per_class": int, "patience": int, "arch": str, "objective": str,
    "lipschitz": str, "lam": float,
    "gamma": float, "gamma_rampup": int, "margin_scale": float, "nu": float, "g_loss": str,
    "g_cond_weight": float, "g_cond_share": float, "fm_layers": str, "fm_real": str,
    "translate": int,
    "d_steps": int, "mode_seeking": float, "consistency": float,
    "consistency_teacher": str,
    "weight_decay": float, "gp_weight": float, "penalty_every": int, "clip": float,
    "div_k": float, "div_p": float, "epochs": int, "batch_size": int, "unlabeled_ratio": int,
    "lr": float, "lr_decay": float, "lr_decay_every": int,
    "ema_decay": float, "standing_stats": int, "seed": int, "time_limit": float, "device": str,
    "amp": str, "compile": str, "channels_last": str, "fused_adam": str,
}
_SWITCHES = ("download", "balanced_labels", "recalibrate_bn")   # --X / --no-X -> TrainConfig
_HELP = {
    "dataset": "digits (default, ships with scikit-learn), mnist, svhn, cifar10 or folder:PATH "
               "(one sub-folder of images per class, or train/ and test/ folders that each "
               "have one)",
    "data_root": "torchvision dataset root holding mnist, svhn or cifar10 (default ./data; "
                 "not used for digits, nor for folder:PATH, which names its own folder)",
    "labels_per_class": "labels kept per class (class-balanced), or 'all' (default 10)",
    "image_size": "pad MNIST (e.g. to 32 for the conv nets) or resize folder images to NxN, "
                  "aspect ratio not kept (default, or auto: the images' own size; the conv "
                  "nets need a side divisible by 8)",
    "data_seed": "seed of the labeled subset, apart from --seed (default 0)",
    "val_per_class": "hold this many more labeled images of every class out of training, "
                     "evaluate them after every epoch (val_accuracy) and keep the model of "
                     "the best epoch in OUT/best.pt (default 0: none; they are labels too: "
                     "count them when comparing with a benchmark's label budget)",
    "patience": "stop once this many epochs in a row bring no higher validation accuracy "
                "(needs --val-per-class; default 0: train every epoch); --resume with a "
                "higher one continues a run it stopped",
    "arch": "network pair: mlp, conv, or auto (default: mlp for images of at most 784 "
            "values, e.g. 28x28x1, else conv)",
    "lam": "lambda: weight of the labeled term (hinge or critic) in the loss network's "
           "objective (default 1.0)",
    "gamma": "weight of the unlabeled term, objective sscls only (default 1.0; the paper uses "
             "0.25 to 2)",
    "gamma_rampup": "epochs over which gamma ramps up linearly from 0, objective sscls only "
                    "(default 0: none)",
    "margin_scale": "the L1 margin Delta(x, G(z)) is this times the mean |x - x'| over the "
                    "pixels and channels of each pair; LS objectives (sscls, cls, ls, gls) "
                    "(default 2.5)",
    "nu": "GLS-GAN slope, at most 1 (objective gls only; default 0.5; -1 gives C(t) = |t|)",
    "d_steps": "loss-network steps per generator step (default 1)",
    "weight_decay": "L2 weight decay on the loss network, for --lipschitz weight-decay "
                    "(default 1e-4)",
    "gp_weight": "weight of the gradient penalty, for --lipschitz gp or zero-gp (default: 10 "
                 "for gp, 0.1 for zero-gp, also as auto; div is weighted by --div-k)",
    "clip": "weight-clipping bound for --lipschitz clip (default 0.01)",
    "div_k": "WGAN-div k, for --lipschitz div (default 2.0)",
    "div_p": "WGAN-div p, for --lipschitz div (default 6.0)",
    "epochs": "epochs to train; one epoch is ceil(training images / batch size) steps "
              "(default 100)",
    "batch_size": "labeled images per step; the unlabeled batch is --unlabeled-ratio times "
                  "as large (default 64); under torchrun the global batch, divisible by the "
                  "number of processes",
    "unlabeled_ratio": "unlabeled images per labeled image in each step's batch, each with a "
                       "fake partner, semi-supervised objectives only (default 1: as many)",
    "lr": "Adam learning rate of both networks (default 1e-3)",
    "ema_decay": "decay of the weight averages that classify and sample (default 0.999)",
    "standing_stats": "after each epoch, re-estimate the averaged generator's BatchNorm "
                      "statistics on this many of its own samples (BigGAN's standing "
                      "statistics; e.g. 2048; default 0: off)",
    "seed": "training seed: noise, batch order, initial weights (default 0)",
    "objective": f"one of {', '.join(list_objectives())} (default sscls)",
    "lipschitz": f"auto (the objective's own) or one of {', '.join(LIPSCHITZ)}",
    "device": "auto (CUDA when present, else CPU), cpu, cuda or cuda:N",
    "mode_seeking": "weight of the mode-seeking (MSGAN) diversity term in the generator's loss (default 0: off)",
    "g_loss": "generator objective: auto (feature matching for sscls, else the objective's own), loss or feature-matching",
    "g_cond_weight": "weight of mean L(G(z, y), y) added to the feature-matching generator loss, "
                     "so that samples follow their labels (default 3 for sscls and for cls with "
                     "--g-loss feature-matching, also as auto; 0: feature matching alone)",
    "g_cond_share": "instead of --g-cond-weight: the share of the feature-matching generator's "
                    "loss that the conditional term L(G(z, y), y) is given at every step, in "
                    "[0, 1) (default 0: off, the fixed weight applies)",
    "fm_layers": "loss-network layers whose mean activations the feature-matching generator "
                 "matches: last (the last hidden layer, Salimans et al.; default) or all (every "
                 "hidden layer, each scaled to the last one's width; on digits the better sampler "
                 "to mix in, the default the better classifier)",
    "fm_real": "real images whose mean activations the feature-matching generator matches: all "
               "(the batch's labeled and unlabeled images; default) or unlabeled (its unlabeled "
               "images only, as Salimans et al.)",
    "lr_decay": "factor applied to the learning rate every --lr-decay-every epochs (default 0.8)",
    "lr_decay_every": "epochs between learning-rate decays (default 25)",
    "translate": "data augmentation: shift every real training image (labeled and unlabeled) "
                 "by a random whole number of pixels in [-N, N] along each axis, edge pixels "
                 "repeated (default 0: off)",
    "consistency": "weight of a consistency term on the unlabeled images: a teacher's class "
                   "probabilities on a second view of each (its own shift) are the target of "
                   "the loss network's (default 0: off)",
    "consistency_teacher": "the consistency term's teacher: ema (the loss network's weight "
                           "average, without noise: a mean teacher; default) or net (the loss "
                           "network itself, with its own noise draws)",
    "penalty_every": "lazy regularisation: compute the gradient penalty (gp, zero-gp, div) on "
                     "every N-th loss-network step only, weighted N times (default 1: every "
                     "step)",
    "time_limit": "minutes of wall time for the run, data loading included (default 0: no "
                  "limit): after each epoch, stop if another as long as the longest so far would "
                  "end past it (the first epoch always runs; start-up and the final "
                  "evaluation come on top); with --seeds, for each seed's run, not the whole "
                  "command; --resume continues a stopped run",
    "amp": "auto (bf16 autocast on CUDA, off on CPU), bf16 or off; bf16 on a CPU pays only "
           "with bf16 instructions (amx_bf16 or avx512_bf16), else it is emulated and slow",
    "compile": "torch.compile the networks: auto (on CUDA only), on, off, or a mode "
               "(reduce-overhead, max-autotune); falls back to eager if compiling fails",
    "channels_last": "NHWC memory order: auto (conv nets on CUDA), on or off",
    "fused_adam": "fused Adam kernels: auto (on CUDA only), on or off",
}


def _labels_per_class(s: str):
    if s.strip().lower() == "all":
        return None
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {s!r}") from None


def _minutes(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes as a number (e.g. 30, or 0.5 for "
                                         f"30 seconds), got {s!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse, with hints for the usual slips in its "unrecognized arguments" error: a
    misspelt flag gets the nearest one of any command, and a bare number the note that a
    flag takes one value (``--seeds 0 1`` for ``--seeds 0,1``)."""

    argv: list[str] = []                       # what main parses: which command it names

    def error(self, message: str):
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            message += _unrecognized_hint(self, message[len(prefix):].split(), self.argv)
        super().error(message)


def _unrecognized_hint(parser: argparse.ArgumentParser, extras: list[str],
                       argv: list[str]) -> str:
    """Hints for argparse's unrecognized ``extras``: the nearest flag of the command that
    ``argv`` names (another command's flag is said to be one), and that a list is
    comma-separated when a bare number follows no unknown flag."""
    import difflib
    subs = next((a.choices for a in parser._actions
                 if isinstance(a, argparse._SubParsersAction)), {})
    command = next((a for a in argv if a in subs), None)
    own = set(subs[command]._option_string_actions) if command else set()
    hints = []
    for tok in extras:
        name = tok.split("=", 1)[0]
        if not name.startswith("--"):
            continue
        if close := difflib.get_close_matches(name, own, n=1):
            hints.append(f"{name}: did you mean {close[0]}?")
        elif others := [c for c, sub in subs.items()
                        if c != command and name in sub._option_string_actions]:
            hints.append(f"{name} is a flag of ganaug {' and ganaug '.join(others)}"
                         + (f", not of ganaug {command}" if command else ""))

    def flag(tok: str) -> bool:
        return tok.startswith("-") and not _is_number(tok) and "=" not in tok
    # a number after an unknown flag is that flag's value; one after none, a list's rest
    if any(_is_number(tok) and not (i and flag(extras[i - 1]))
           for i, tok in enumerate(extras)):
        hints.append("a flag takes one value, and a list is comma-separated: --seeds 0,1,2")
    return f" ({'; '.join(hints)})" if hints else ""


def _is_number(tok: str) -> bool:
    return tok.lstrip("-").replace(".", "", 1).isdigit()


def _or_auto(typ):
    """A flag of a field whose default is None (computed): ``auto`` means that default."""
    def convert(s: str):
        if s in ("auto", "none"):
            return None
        try:
            return typ(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {s!r}") from None
    convert.__name__ = typ.__name__
    return convert


def _seed(s: str) -> int:
    """A seed flag of ``sample`` and ``eval``: one that torch takes, checked before any work."""
    try:
        seed = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{seed} is outside {SEED_RANGE[0]} to {SEED_RANGE[1]} "
                                         f"(the seeds torch takes)")
    return seed


def _seed_list(s: str) -> list[int]:
    try:
        seeds = [int(part) for part in s.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("expected at least one seed")
    return seeds


def _net_option(s: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--net-option``; VALUE is read as YAML (``0``, ``0.6``, ``1e-3``,
    ``weight``, ``[500, 500]``), as in a recipe's ``net_options``."""
    key, sep, raw = s.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier() or not raw.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. input_noise=0), got {s!r}")
    import yaml

    from .recipes import yaml_loader
    try:
        value = yaml.load(raw, Loader=yaml_loader())
    except yaml.YAMLError:
        value = raw.strip()
    return key, value


class _NetOptions(argparse.Action):
    """Collect ``--net-option KEY=VALUE`` into a dict, refusing a key given twice."""

    def __call__(self, parser, namespace, values, option_string=None):
        opts = dict(getattr(namespace, self.dest, None) or {})
        key, value = values
        if key in opts:
            parser.error(f"{option_string} {key} is given twice ({opts[key]!r} and {value!r}); "
                         f"pass it once")
        opts[key] = value
        setattr(namespace, self.dest, opts)


class _Once(argparse.Action):
    """Store the flag's value, refusing the flag given twice (argparse would silently keep
    the last one)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} is given twice ({getattr(namespace, self.dest)} and "
                         f"{values}); pass one (flags override its values)")
        setattr(namespace, self.dest, values)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ganaug", description="Class-conditional and semi-supervised CLS-GANs "
                "for data augmentation.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a (semi-supervised) CLS-GAN",
                       argument_default=argparse.SUPPRESS)
    defaults = TrainConfig()
    for name, typ in _TRAIN_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        if name == "labels_per_class":
            typ = _labels_per_class
        elif name == "time_limit":
            typ = _minutes
        elif getattr(defaults, name) is None:     # "auto" puts back the default a recipe set
            typ = _or_auto(typ)
        t.add_argument(flag, dest=name, type=typ, metavar=name.upper(),
                       help=_HELP.get(name, f"default {getattr(defaults, name)!r}"))
    t.add_argument("--download", dest="download", action=argparse.BooleanOptionalAction,
                   help="let torchvision download missing data (needs internet); "
                        "--no-download undoes a recipe's download: true")
    t.add_argument("--balanced-labels", dest="balanced_labels",
                   action=argparse.BooleanOptionalAction,
                   help="draw labeled batches class-balanced (for imbalanced data); "
                        "--no-balanced-labels undoes a recipe's true")
    t.add_argument("--recalibrate-bn", dest="recalibrate_bn",
                   action=argparse.BooleanOptionalAction,
                   help="after each epoch, re-estimate the averaged loss network's BatchNorm "
                        "statistics on the real training images (default on; the conv "
                        "loss network, the MLP one has no BatchNorm)")
    t.add_argument("--net-option", dest="net_option", type=_net_option, action=_NetOptions,
                   metavar="KEY=VALUE",
                   help="one of the networks' builder options (net_options), over a recipe's; "
                        "repeat it for more, e.g. --net-option input_noise=0.15 --net-option "
                        "hidden_noise=0.3 (the MLP loss network's Gaussian noise layers, off "
                        "by default for --objective sscls, these levels for the others)")
    t.add_argument("--out", default=None, help="run folder (default runs/<time>-<dataset>-<objective>)")
    t.add_argument("--resume", action="store_true", default=False,
                   help="continue the run in --out from its last checkpoint")
    t.add_argument("--quiet", action="store_true", default=False,
                   help="no progress bar (the line per epoch and warnings still print)")
    t.add_argument("--recipe", default=None, metavar="FILE", action=_Once,
                   help="YAML file of TrainConfig values (see recipes/); flags override it")
    t.add_argument("--seeds", default=None, type=_seed_list, metavar="S,S,...",
                   help="one run per training seed into OUT/seed-N, then the mean and std of "
                        "the test error in OUT/summary.json (with --resume: finish the rest)")
    t.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=True,
                   help="do not log to OUT/tensorboard even when TensorBoard is installed")

    s = sub.add_parser("sample", help="write class-conditional samples of a trained run")
    s.add_argument("--run", required=True, help="run folder (or checkpoint file)")
    s.add_argument("--per-class", type=int, default=10,
                   help="images of every class (default 10)")
    s.add_argument("--out", required=True,
                   help="FILE.png (grid, a row per class) or FILE.pt ({images in [-1, 1], "
                        "labels, classes}); replaced if it exists")
    s.add_argument("--seed", type=_seed, default=0,
                   help="seed of the generator's noise: the same seed and --per-class, the "
                        "same images (another --per-class draws other noise; default 0)")
    s.add_argument("--device", default="auto",
                   help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    s.add_argument("--standing-stats", type=int, default=0, metavar="N",
                   help="first re-estimate the generator's BatchNorm statistics on N samples "
                        "of its own (as train --standing-stats; the run is not changed; "
                        "default 0: as trained)")

    e = sub.add_parser("eval", help="evaluate a run: its classifier on the test split and its "
                                    "samples' quality (FID, KID, precision/recall, TSTR, ...)")
    e.add_argument("--run", required=True, help="run folder")
    e.add_argument("--data-root", default=None,
                   help="the run's data, if it moved: a torchvision root, or for a run on an "
                        "image folder (--dataset folder:PATH) the folder's new place; data "
                        "other than the run trained on is refused")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--best", action="store_true",
                   help="evaluate best.pt, the epoch of highest validation accuracy of a run "
                        "trained with --val-per-class, instead of the last epoch; writes "
                        "eval-best.json")
    e.add_argument("--quick", action="store_true",
                   help="the classifier's metrics only, no sample-quality metrics (their "
                        "flags, --samples to --inception-weights, are refused); writes no "
                        "eval.json (that keeps the last full evaluation)")
    e.add_argument("--samples", type=int, default=None, metavar="N",
                   help="real test images (and as many generated) for FID, KID, precision and "
                        "recall (default 10000, or the whole test split when smaller)")
    e.add_argument("--tstr-per-class", type=int, default=None, metavar="N",
                   help="generated images per class to train the TSTR classifier on (default: "
                        "as many in all as the real training split)")
    e.add_argument("--classifier-steps", type=int, default=None, metavar="N",
                   help="training steps of the domain classifier and of the TSTR classifier "
                        "(default 1000 for the MLP, 3000 for the CNN); numbers compare only "
                        "at equal steps")
    e.add_argument("--seed", type=_seed, default=None,    # None: not given (0), for --quick
                   help="sampling seed (default 0)")
    e.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="cache of the domain classifier (default $GANAUG_CACHE or ~/.cache/ganaug)")
    e.add_argument("--inception-weights", default=None, metavar="FILE",
                   help="local torchvision inception_v3 weights file for the standard FID "
                        "(default $GANAUG_INCEPTION_WEIGHTS; never downloaded)")
    e.add_argument("--device", default="auto",
                   help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    return p


def _flag_name(key: str) -> str:
    """How a TrainConfig field is given on the command line, for messages."""
    return "--net-option" if key == "net_options" else "--" + key.replace("_", "-")


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
        try:
            asked = build(given)
        except ValueError as e:                     # name what of it the recipe set
            raise ValueError(_recipe_note(e, given, flags, args.recipe, build)) from None
        clash = [k for k in given
                 if not TrainConfig.may_change(k, getattr(saved, k), getattr(asked, k))
                 and not (k == "seed" and args.seeds is not None)]
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
    return (f"best epoch by validation accuracy: {s['best_epoch']} (val accuracy "
            f"{s['best_val_accuracy']:.4f} on {s['num_val']} held-out labeled images, test "
            f"accuracy {s['best_test_accuracy']:.4f}) -> {os.path.join(s['run'], BEST)}")


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
