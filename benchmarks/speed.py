"""Speed, side by side in one run: ganaug's fast path against a plain reference kept here
(the same networks, fp32, eager, default Adam, data gathered on the host and copied each
step: no tricks).

    python benchmarks/speed.py [--nets digits,mnist,conv32] [--batch-sizes 64,256]
                               [--repeats 10] [--ablate [--variants V,...]] [--quick]
                               [--device auto]

1. A full semi-supervised CLS-GAN training step (batch B labeled + B unlabeled images: the
   loss network's update with its zero-centred gradient penalty, then the generator's
   update with feature matching, and both EMAs), in real images per second (2B per step),
   for the digits MLP (1x8x8), the MNIST MLP (1x28x28) and the 32x32 conv pair (3x32x32).
   "fast" is ``ganaug.step.TrainStep`` with ``TrainConfig``'s defaults on this device
   (auto: bf16 autocast, torch.compile, channels_last, fused Adam on CUDA; fp32 eager on
   the CPU) drawing its batches like ``train`` does (device-resident data, pinned
   asynchronous copies of indices and noise). ``--ablate`` adds one row per switch, and
   two for settings of the MNIST recipe on the fast path: its consistency term
   (``consistency=3``: a no-grad pass of the EMA loss network over the unlabeled half's
   second view) and its lazy penalty (``penalty_every=4``: the gradient penalty on one
   step in four, timed over whole periods of four steps). A "full G backward" row is the
   fast path as it was before the generator's update stopped computing the loss network's
   weight gradients (which it threw away); for the conv pair a
   "G step: fakes alone" row is the fast path as it was before the generator's step passed
   its fakes beside the batch's reals (BatchNorm).
   GFLOP/step, TFLOP/s and "% of matmul rate" are reference-equivalent in every row: the
   reference step's FLOPs (torch.utils.flop_counter) over the row's time, next to the
   device's measured matrix rate (bf16 on CUDA, fp32 on the CPU). They compare the rows'
   throughput of the same training step, not the arithmetic each variant does: the fast
   path does fewer FLOPs (its generator update skips the loss network's weight gradients),
   the consistency row an extra pass and the lazy-penalty row fewer penalties.
2. Sampling: ``CLSGAN.sample`` (EMA generator) against a plain ``G(z, y)`` loop.
3. A classifier step (benchmarks/_classifier.SmallMLP, batch 256) on real data alone,
   with a SyntheticMix loader (fraction 0.5), and with a BatchMixer (fraction 0.5).

Every measurement is the median of timed calls after untimed warm-up calls, with the
variants interleaved call by call so that load on the machine hits them alike: training
steps ``--repeats`` after ``--warmup``; sampling max(3, ``--repeats`` // 2) after
SAMPLE_WARMUP (1); the classifier step ``--repeats`` after CLASSIFIER_WARMUP (2), whatever
``--warmup`` says (the committed results were measured so). A slow round cuts the repeats,
never below 3 (``interleaved``). Prints markdown tables; writes speed.json / speed.csv
under --out.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import types
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from _classifier import SmallMLP
from _common import OUT_HELP, machine, print_table, write_outputs

from ganaug import CLSGAN, BatchMixer, SyntheticMix, TrainConfig
from ganaug import objectives as O
from ganaug.step import TrainStep, _Draws, _Shard

SECTIONS = ("train", "sample", "classifier")
NETS = {"digits": ("mlp", (1, 8, 8)), "mnist": ("mlp", (1, 28, 28)),
        "conv32": ("conv", (3, 32, 32))}
ABLATIONS = {"compile": {"compile": "on"}, "bf16": {"amp": "bf16"},
             "channels_last": {"channels_last": "on"}, "fused_adam": {"fused_adam": "on"}}
OFF = {"amp": "off", "compile": "off", "channels_last": "off", "fused_adam": "off"}
TERMS = {"+consistency 3": {"consistency": 3.0},  # a recipe's settings that change the work,
         "+penalty_every 4": {"penalty_every": 4}}  # on the fast path
FULL_BACKWARD = "full G backward"             # the fast path before the generator-only backward
FAKES_ALONE = "G step: fakes alone"           # conv: before the generator's step passed its
                                              # fakes beside the reals (BatchNorm)
SAMPLE_WARMUP = 1                             # untimed calls before sampling is timed
CLASSIFIER_WARMUP = 2                         # and before the classifier step is
C = 10                                        # classes
N_LAB, N_UNL = 1000, 4000                     # random images standing in for a data set


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def interleaved(fns: dict, device, warmup: int, repeats: int, budget_s: float = 30.0) -> dict:
    """(median seconds per call, seconds of the first call) of each function, called in
    turn; warm-up calls are untimed. Fewer repeats (at least 3) when a round is so slow
    that ``repeats`` of them would exceed ``budget_s`` (the conv pair on a CPU)."""
    times = {k: [] for k in fns}
    first = {}
    i = 0
    while i < warmup + repeats:
        for k, fn in fns.items():
            t = timed(fn, device)
            if i == 0:
                first[k] = t
            if i >= warmup:
                times[k].append(t)
        if i == warmup:                          # the first timed round sets the pace
            round_s = sum(v[0] for v in times.values())
            repeats = max(3, min(repeats, int(budget_s / max(round_s, 1e-9))))
        i += 1
    return {k: (statistics.median(v), first[k]) for k, v in times.items()}


def matmul_rate(device: torch.device) -> tuple[float, str]:
    """Measured dense matrix-multiply rate in TFLOP/s: bf16 on CUDA, fp32 on the CPU."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    med, _ = interleaved({"mm": lambda: a @ b}, device, 2, 10)["mm"]
    name = "bf16" if dtype == torch.bfloat16 else "fp32"
    return 2 * n ** 3 / med / 1e12, f"{name} {n}x{n} matmul"


# ----------------------------------------------------------------------------- data & nets

def make_data(shape, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_lab = torch.rand(N_LAB, *shape, generator=g) * 2 - 1
    y_lab = torch.arange(C).repeat(N_LAB // C)
    x_unl = torch.rand(N_UNL, *shape, generator=g) * 2 - 1
    return x_lab, y_lab, x_unl


def make_model(arch, shape, device) -> CLSGAN:
    torch.manual_seed(0)
    return CLSGAN(shape, C, arch).to(device)


def _full_update(self, opt, loss):
    """TrainStep._update as it was before the generator's update skipped the loss network's
    weight gradients: a full backward (one process)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def fast_step(arch, shape, bs, device, data, overrides: dict, full_backward: bool = False,
              fakes_alone: bool = False):
    """ganaug's own step and batch drawing with TrainConfig(**overrides) on ``device``: a
    function that runs ``penalty_every`` steps, its Speed, and that number of steps.
    ``full_backward``: every update backpropagates to every parameter (the step before
    the generator-only backward); ``fakes_alone``: the generator's step passes its fakes
    through the loss network without the batch's reals, as it did before for BatchNorm
    networks (the same FLOPs forward, half the rows backward); for the ablation."""
    cfg = TrainConfig(arch=arch, batch_size=bs, device=str(device), **overrides).resolved()
    model = make_model(arch, shape, device)
    step = TrainStep(model, cfg, device, log=lambda s: print(f"  [{arch} {bs}] {s}"))
    if full_backward:
        step._update = types.MethodType(_full_update, step)
    if fakes_alone:
        step.nets._bn = []                     # batch_stats False: the rows-independent path
    fmt = torch.channels_last if step.speed.channels_last else torch.contiguous_format
    x_lab, y_lab, x_unl = data
    x_lab_d = x_lab.to(device).contiguous(memory_format=fmt)
    x_unl_d = x_unl.to(device).contiguous(memory_format=fmt)
    gen = torch.Generator().manual_seed(1)
    draws = _Draws(cfg, x_lab_d, y_lab.to(device), y_lab, x_unl_d, gen, _Shard(),
                   model.noise_dim, True, device)

    def run():                       # one period of the lazy penalty: k steps, the first penalised
        for i in range(cfg.penalty_every):
            b, nz = draws.next(True)
            step(b, nz, 1.0, 0.999, i == 0)
    return run, step.speed, cfg.penalty_every


def reference_step(arch, shape, bs, device, data):
    """The plain step: data on the host, gathered and copied every step, fp32, eager."""
    model = make_model(arch, shape, device)
    G, D = model.generator, model.loss_net
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    x_lab, y_lab, x_unl = data
    nz = model.noise_dim

    def ema(avg, net, decay=0.999):
        with torch.no_grad():
            for pa, p in zip(avg.parameters(), net.parameters()):
                pa.mul_(decay).add_(p, alpha=1 - decay)
            for ba, b in zip(avg.buffers(), net.buffers()):
                ba.copy_(b)

    def ell(a, y):                                # L(x, y), L_ul(x) where y = -1
        return torch.where(y >= 0, O.conditional_loss(a, y.clamp(min=0)), O.unlabeled_loss(a))

    def run():
        il, iu = torch.randint(N_LAB, (bs,)), torch.randint(N_UNL, (bs,))
        yl = y_lab[il].to(device)
        cu = y_lab[torch.randint(N_LAB, (bs,))].to(device)
        x = torch.cat([x_lab[il], x_unl[iu]]).to(device)
        y_gen = torch.cat([yl, cu])
        y_crit = torch.cat([yl, torch.full_like(cu, -1)])
        # loss network: S + S_ul + zero-centred gradient penalty (weight 0.1)
        with torch.no_grad():
            x_f = G((torch.rand(2 * bs, nz) * 2 - 1).to(device), y_gen)
        a = D(torch.cat([x, x_f]))
        a_r, a_f = a[:2 * bs], a[2 * bs:]
        sup = O.conditional_loss(a_r[:bs], yl).mean()
        crit = O.ls_critic(ell(a_r[:bs], yl), ell(a_f[:bs], yl), O.margin(x[:bs], x_f[:bs], 2.5))
        crit_u = O.ls_critic(ell(a_r[bs:], y_crit[bs:]), ell(a_f[bs:], y_crit[bs:]),
                             O.margin(x[bs:], x_f[bs:], 2.5))
        eps = torch.rand(2 * bs).to(device)
        pen = 0.1 * O.gradient_penalty(lambda xx, yy: ell(D(xx), yy), x, x_f, y_crit, eps, 0.0)
        opt_d.zero_grad(set_to_none=True)
        (sup + crit + crit_u + pen).backward()
        opt_d.step()
        ema(model.loss_net_ema, D)
        # generator: feature matching
        x_g = G((torch.rand(2 * bs, nz) * 2 - 1).to(device), y_gen)
        if arch == "conv":                        # BatchNorm: fakes beside the reals
            _, h = D(torch.cat([x, x_g]), features=True)
            h_r, h_f = h[:2 * bs].detach(), h[2 * bs:]
        else:
            with torch.no_grad():
                _, h_r = D(x, features=True)
            _, h_f = D(x_g, features=True)
        g_loss = O.feature_matching(h_r, h_f)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        ema(model.generator_ema, G)
    return run


class _FlopCount(TorchDispatchMode):
    """FlopCounterMode's per-op formulas (torch.utils.flop_counter.flop_registry) without
    its module tracking, whose hooks do not support torch.autograd.grad (the penalty)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def count_flops(fn) -> int:
    """FLOPs of one call of ``fn`` (matrix multiplies and convolutions, forward and backward)."""
    with _FlopCount() as fc:
        fn()
    return fc.total


# ----------------------------------------------------------------------------- sections

def bench_train(args, device, peak) -> list[dict]:
    rows = []
    variants = {"fast": {}}
    if args.ablate:
        variants.update({k: {**OFF, **v} for k, v in ABLATIONS.items()})
        variants.update(TERMS)
        variants[FULL_BACKWARD] = {}
        variants[FAKES_ALONE] = {}
        if args.variants is not None:
            variants = {k: v for k, v in variants.items() if k == "fast" or k in args.variants}
    for name in args.nets:
        arch, shape = NETS[name]
        data = make_data(shape, device)
        for bs in batch_sizes(args, name, device):
            ref = reference_step(arch, shape, bs, device, data)
            flops = count_flops(ref)
            fns, speeds, per_call = {"reference": ref}, {}, {}
            for v, over in variants.items():
                if v == FAKES_ALONE and arch != "conv":
                    continue                           # no BatchNorm: the same path as "fast"
                fns[v], speeds[v], per_call[v] = fast_step(arch, shape, bs, device, data, over,
                                                           v == FULL_BACKWARD, v == FAKES_ALONE)
            res = interleaved(fns, device, args.warmup, args.repeats)
            t_ref = res["reference"][0]
            for v, (t, first) in res.items():
                t = t / per_call.get(v, 1)             # seconds per step
                rows.append({
                    "section": "train", "net": name, "shape": "x".join(map(str, shape)),
                    "batch": bs, "images_per_step": 2 * bs, "variant": v,
                    "settings": ("fp32 eager, host data path" if v == "reference" else
                                 ("auto: " if v in ("fast", FULL_BACKWARD, FAKES_ALONE)
                                  or v in TERMS
                                  else "")
                                 + speeds[v].describe()
                                 + (f", {v.lstrip('+')}" if v in TERMS else "")
                                 + (", full backward in the generator's update"
                                    if v == FULL_BACKWARD else "")
                                 + (", the generator's step without the reals"
                                    if v == FAKES_ALONE else "")),
                    "ms": t * 1e3, "first_call_s": first, "images_per_s": 2 * bs / t,
                    "speedup": t_ref / t, "gflop_per_step": flops / 1e9,
                    "tflops": flops / t / 1e12, "peak_tflops": peak,
                    "peak_share": flops / t / 1e12 / peak})
                r = rows[-1]
                print(f"  train {name:6s} B={bs:<5d} {v:13s} {r['ms']:9.2f} ms  "
                      f"{r['images_per_s']:10.0f} img/s  x{r['speedup']:.2f}", flush=True)
    return rows


def batch_sizes(args, name, device) -> list[int]:
    if args.batch_sizes:
        return args.batch_sizes
    if device.type == "cuda":
        return [64, 256, 1024, 4096]
    # on the CPU the conv pair needs ~10 s per step at batch 64: a smaller batch keeps the run short
    return [16] if name == "conv32" else [64, 256]


def sample_repeats(repeats: int) -> int:
    """Timed calls of each sampling variant: a call generates thousands of images."""
    return max(3, repeats // 2)


def bench_sampling(args, device) -> list[dict]:
    rows = []
    for name in args.nets:
        arch, shape = NETS[name]
        model = make_model(arch, shape, device).eval()
        n = (65536 if arch == "mlp" else 16384) if device.type == "cuda" else \
            (8192 if arch == "mlp" else 256)
        chunk = min(n, 4096)
        labels = torch.arange(n) % C
        G = model.generator_ema

        @torch.no_grad()
        def plain():
            for y in labels.split(chunk):
                G((torch.rand(len(y), model.noise_dim) * 2 - 1).to(device), y.to(device))

        fns = {"reference": plain,
               "fast": lambda: model.sample(labels, torch.Generator().manual_seed(0),
                                            batch_size=chunk)}
        if device.type == "cuda":                  # measured, not (yet) a default
            def bf16():
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    model.sample(labels, torch.Generator().manual_seed(0), batch_size=chunk)
            fns["bf16 autocast"] = bf16
        res = interleaved(fns, device, SAMPLE_WARMUP, sample_repeats(args.repeats))
        for v, (t, _) in res.items():
            rows.append({"section": "sample", "net": name, "shape": "x".join(map(str, shape)),
                         "batch": chunk, "variant": v, "images": n, "ms": t * 1e3,
                         "images_per_s": n / t, "speedup": res["reference"][0] / t})
            print(f"  sample {name:6s} {v:13s} {n / t:12.0f} img/s", flush=True)
    return rows


def bench_classifier(args, device) -> list[dict]:
    rows = []
    bs = 256
    for name in args.nets:
        arch, shape = NETS[name]
        gan = make_model(arch, shape, device)
        x_lab, y_lab, _ = make_data(shape, device)
        real = TensorDataset(x_lab, y_lab)
        mix = SyntheticMix(real, gan, fraction=0.5, seed=0)
        mixer = BatchMixer(gan, 0.5, seed=0)
        d = x_lab[0].numel()
        nets, opts = {}, {}
        for v in ("real only", "SyntheticMix 0.5", "BatchMixer 0.5"):
            torch.manual_seed(0)
            nets[v] = SmallMLP(d, C).to(device)
            opts[v] = torch.optim.Adam(nets[v].parameters(), lr=1e-3)
        loaders = {"real only": DataLoader(real, bs, shuffle=True, drop_last=True),
                   "SyntheticMix 0.5": DataLoader(mix, bs, shuffle=True, drop_last=True)}
        iters = {k: iter(v) for k, v in loaders.items()}
        seen = {}

        def batch(v):
            key = "real only" if v == "BatchMixer 0.5" else v
            try:
                x, y = next(iters[key])
            except StopIteration:
                iters[key] = iter(loaders[key])
                x, y = next(iters[key])
            x, y = x.to(device), y.to(device)
            return mixer(x, y) if v == "BatchMixer 0.5" else (x, y)

        def step(v):
            def run():
                x, y = batch(v)
                seen[v] = len(x)
                loss = torch.nn.functional.cross_entropy(nets[v](x), y)
                opts[v].zero_grad(set_to_none=True)
                loss.backward()
                opts[v].step()
            return run

        res = interleaved({v: step(v) for v in nets}, device, CLASSIFIER_WARMUP, args.repeats)
        for v, (t, _) in res.items():
            rows.append({"section": "classifier", "net": name, "shape": "x".join(map(str, shape)),
                         "batch": bs, "variant": v, "images_per_step": seen[v], "ms": t * 1e3,
                         "images_per_s": seen[v] / t, "overhead": t / res["real only"][0]})
            print(f"  classifier {name:6s} {v:17s} {t * 1e3:8.2f} ms/step", flush=True)
    return rows


def main() -> None:
    # the variants' compiled nets run interleaved, each model a class of its own to dynamo
    # (weight norm): under the default recompile limit (8) the later ones ran eager
    torch._dynamo.config.recompile_limit = max(64, torch._dynamo.config.recompile_limit)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default="digits,mnist,conv32")
    p.add_argument("--batch-sizes", default=None,
                   help="comma-separated (default: 64,256 on CPU, conv32 16; 64..4096 on CUDA)")
    p.add_argument("--repeats", type=int, default=10,
                   help="timed calls of each variant, at least 3 (fewer, down to 3, when "
                        "a round is slow; sampling: half as many, at least 3); the median is "
                        "reported")
    p.add_argument("--warmup", type=int, default=3,
                   help=f"untimed calls of each training step first (sampling: always "
                        f"{SAMPLE_WARMUP}, the classifier step: always {CLASSIFIER_WARMUP})")
    p.add_argument("--ablate", action="store_true",
                   help="also time each fast-path switch alone (the others off)")
    p.add_argument("--variants", default=None,
                   help="with --ablate, only these of its rows (comma-separated, e.g. "
                        f"'{FAKES_ALONE}'); the reference and fast rows always run")
    p.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up: a smoke run")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated, of: {', '.join(SECTIONS)}")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help=OUT_HELP)
    args = p.parse_args()
    args.nets = args.nets.split(",")
    sections = args.sections.split(",")
    bad = [n for n in args.nets if n not in NETS] + [s for s in sections if s not in SECTIONS]
    if bad:
        p.error(f"unknown {', '.join(map(repr, bad))}: --nets takes {', '.join(NETS)}; "
                f"--sections takes {', '.join(SECTIONS)}")
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes \
            else None
    except ValueError:
        p.error(f"--batch-sizes takes comma-separated whole numbers, got {args.batch_sizes!r}")
    if args.batch_sizes and min(args.batch_sizes) <= 0:
        p.error("--batch-sizes must be positive")
    if args.variants is not None:
        known = [*ABLATIONS, *TERMS, FULL_BACKWARD, FAKES_ALONE]
        args.variants = [v.strip() for v in args.variants.split(",")]
        unknown = [v for v in args.variants if v not in known]
        if not args.ablate or unknown:
            p.error(f"--variants picks rows of --ablate: {', '.join(map(repr, known))}"
                    + (f"; unknown {', '.join(map(repr, unknown))}" if unknown else
                       "; pass --ablate too"))
    if args.quick:
        args.repeats, args.warmup = 3, 1
    if args.repeats < 3 or args.warmup < 0:
        p.error(f"--repeats must be at least 3 and --warmup at least 0, got {args.repeats} and "
                f"{args.warmup}")
    from ganaug.distributed import configure_threads
    threads = configure_threads()
    from ganaug.train import pick_device
    try:
        device = pick_device(args.device)
    except ValueError as e:
        p.error(str(e))
    peak, peak_what = matmul_rate(device)
    print(f"device {device}, {threads} CPU threads, torch {torch.__version__}; "
          f"measured {peak_what}: {peak:.2f} TFLOP/s", flush=True)
    rows = []
    if "train" in sections:
        rows += bench_train(args, device, peak)
    if "sample" in sections:
        rows += bench_sampling(args, device)
    if "classifier" in sections:
        rows += bench_classifier(args, device)
    meta = {"machine": machine(), "device": str(device), "threads": threads,
            "torch": torch.__version__, "peak_tflops": peak, "peak": peak_what,
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
            "load_average_1min": os.getloadavg()[0], "args": vars(args),
            "warmup_calls": {"train": args.warmup, "sample": SAMPLE_WARMUP,
                             "classifier": CLASSIFIER_WARMUP},
            "flops": "gflop_per_step, tflops and peak_share: the reference step's FLOPs in "
                     "every row"}
    write_outputs(rows, Path(args.out), "speed", meta)
    print_tables(rows, device, peak, peak_what)


def print_tables(rows, device, peak, peak_what) -> None:
    section = lambda name: [r for r in rows if r["section"] == name]  # noqa: E731
    if tr := section("train"):
        print_table(f"\nTraining step, semi-supervised CLS-GAN ({device}; {peak_what}: "
                    f"{peak:.2f} TFLOP/s)",
                    ["net", "batch", "variant", "settings", "ms/step", "images/s",
                     "vs reference", "reference GFLOP/step", "TFLOP/s (reference FLOPs)",
                     "% of matmul rate (reference FLOPs)"],
                    [[f"{r['net']} ({r['shape']})", f"{r['batch']}+{r['batch']}", r["variant"],
                      r["settings"], f"{r['ms']:.2f}", f"{r['images_per_s']:.0f}",
                      f"x{r['speedup']:.2f}", f"{r['gflop_per_step']:.2f}",
                      f"{r['tflops']:.3f}", f"{100 * r['peak_share']:.1f}"] for r in tr])
    if sa := section("sample"):
        print_table("\nSampling (EMA generator, eval mode)",
                    ["net", "images", "variant", "images/s", "vs reference"],
                    [[f"{r['net']} ({r['shape']})", str(r["images"]), r["variant"],
                      f"{r['images_per_s']:.0f}", f"x{r['speedup']:.2f}"] for r in sa])
    if cl := section("classifier"):
        print_table("\nClassifier step (SmallMLP, batch 256 real images)",
                    ["net", "variant", "images/step", "ms/step", "images/s",
                     "time vs real only"],
                    [[f"{r['net']} ({r['shape']})", r["variant"], str(r["images_per_step"]),
                      f"{r['ms']:.2f}", f"{r['images_per_s']:.0f}", f"x{r['overhead']:.2f}"]
                     for r in cl])

if __name__ == "__main__":
    main()
