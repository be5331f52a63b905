"""The command line's parser: every flag of `ganaug train`, `sample` and `eval`, their help,
the value types that check them, and the hints for the usual slips (a misspelt flag, another
command's flag, `--seeds 0 1`, `--time-limit 30m`). ``cli.py`` runs the commands."""
from __future__ import annotations

import argparse
from typing import Any

from .config import LIPSCHITZ, SEED_RANGE, TrainConfig, flag_name as _flag_name
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
        flag = _flag_name(name)
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
