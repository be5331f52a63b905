"""The fast path's switches (TrainConfig amp, compile, channels_last, fused_adam): each one
turns on and off on the CPU and trains; "auto" resolves per device; a failing
torch.compile falls back to eager; CPU thread settings. GPU-only checks skip without CUDA."""
import functools
import math

import pytest
import torch

from ganaug import TrainConfig, build_model
from ganaug.data import ImageSet
from ganaug.distributed import configure_threads, cpu_threads
from ganaug.step import Speed

from _tiny import CONV, FAST, _run, colour as _colour, first_draw



def _state(st) -> dict:
    return {k: v.contiguous() for k, v in st.model.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_on_a_cpu_without_bf16_instructions_is_warned_about(tmp_path):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    bf16 = Speed.resolve(TrainConfig(amp="bf16").resolved(), "mlp", cpu)
    old = {"fpu", "sse2", "avx2", "avx512f"}
    assert "--amp off" in bf16.warning(cpu, old)
    assert bf16.warning(cpu, old | {"amx_bf16"}) is None
    assert bf16.warning(cpu, old | {"avx512_bf16"}) is None
    assert bf16.warning(cuda, old) is None
    assert Speed.resolve(TrainConfig().resolved(), "mlp", cpu).warning(cpu, old) is None
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\n")
    from ganaug.step import _cpu_flags
    assert _cpu_flags(str(info)) == {"fpu", "avx2", "amx_bf16"}
    assert _cpu_flags(str(tmp_path / "absent")) is None


def test_switches_are_validated_and_bools_read_naturally():
    c = TrainConfig(compile=False, fused_adam=True).resolved()
    assert (c.compile, c.fused_adam) == ("off", "on")
    autotune = TrainConfig(compile="max-autotune").resolved()
    assert autotune.compile == "max-autotune"
    assert Speed.resolve(autotune, "mlp", torch.device("cpu")).compile == "max-autotune"
    for field, bad in (("amp", "fp8"), ("compile", "fast"), ("channels_last", "yes"),
                       ("fused_adam", "auto-ish")):
        with pytest.raises(ValueError, match=f"{field} must be one of"):
            TrainConfig(**{field: bad}).resolved()


def test_auto_means_fp32_eager_on_cpu_and_the_fast_path_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    cfg = TrainConfig().resolved()
    cpu = Speed.resolve(cfg, "conv", torch.device("cpu"))
    assert cpu == Speed(None, None, False, False)
    assert cpu.describe() == "fp32 eager"
    cuda_conv = Speed.resolve(cfg, "conv", torch.device("cuda"))
    assert cuda_conv == Speed(torch.bfloat16, "default", True, True)
    assert Speed.resolve(cfg, "mlp", torch.device("cuda")).channels_last is False
    off = TrainConfig(amp="off", compile="off", channels_last="off", fused_adam="off").resolved()
    assert Speed.resolve(off, "conv", torch.device("cuda")) == Speed(None, None, False, False)


@pytest.mark.parametrize("capability,amp", [((7, 0), None), ((7, 5), None),
                                            ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_bf16_only_on_gpus_with_native_bf16(monkeypatch, capability, amp):
    """A V100 (7.0) or T4 (7.5) emulates bf16, slower than fp32: auto leaves it off there;
    asked for (--amp bf16) it is still on."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda")
    assert Speed.resolve(TrainConfig().resolved(), "conv", cuda).amp is amp
    assert Speed.resolve(TrainConfig(amp="bf16").resolved(), "conv", cuda).amp is torch.bfloat16


_REFERENCE: dict = {}


@pytest.mark.parametrize("switch", [dict(amp="bf16"), dict(channels_last="on", fused_adam="on"),
                                    dict(amp="bf16", channels_last="on", fused_adam="on")])
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_every_switch_trains_on_cpu_with_finite_losses(tiny, switch, arch):
    data, base = (tiny, FAST) if arch == "mlp" else (_colour(), CONV)
    st = _run(data, **base, **switch)
    for rec in st.history:
        assert all(math.isfinite(rec[k]) for k in ("d_loss", "g_loss", "penalty")), rec
    if switch.get("channels_last") == "on" and arch == "conv":
        w = st.model.loss_net.features[1].weight
        assert w.is_contiguous(memory_format=torch.channels_last)
    if switch.get("amp") is None:                  # fp32: the same math, up to rounding
        if arch not in _REFERENCE:
            _REFERENCE[arch] = _run(data, **base)
        _same_losses(_REFERENCE[arch], st)


def _same_losses(a, b, rel=1e-3):
    """Equal losses up to rounding. (Weights are no test: Adam turns rounding noise in
    gradients that should be 0, e.g. of a bias before BatchNorm, into full-size steps.)"""
    assert len(a.history) == len(b.history)
    for ra, rb in zip(a.history, b.history):
        for k in ("d_loss", "sup_loss", "critic", "critic_ul", "g_loss"):
            assert rb[k] == pytest.approx(ra[k], rel=rel, abs=1e-6), (k, ra, rb)


def test_bf16_autocast_stays_close_to_fp32(tiny):
    a, b = _run(tiny, **FAST), _run(tiny, **FAST, amp="bf16")
    la, lb = a.history[-1]["d_loss"], b.history[-1]["d_loss"]
    assert lb == pytest.approx(la, rel=0.05)


def _compile_that_fails_when_called(*args, **kwargs):
    def fn(*a, **k):
        raise RuntimeError("simulated inductor failure\nsecond line")
    return fn


def _compile_that_fails(*args, **kwargs):
    raise RuntimeError("simulated: torch.compile is not supported here")


@pytest.mark.parametrize("fake", [_compile_that_fails_when_called, _compile_that_fails])
def test_a_failing_compile_falls_back_to_eager_with_one_line(tiny, monkeypatch, fake):
    eager = _state(_run(tiny, **FAST))
    monkeypatch.setattr(torch, "compile", fake)
    lines: list[str] = []
    st = _run(tiny, **FAST, compile="on", log=lines.append)
    failed = [s for s in lines if "torch.compile failed" in s]
    assert len(failed) == 1 and "continuing eager" in failed[0] and "\n" not in failed[0]
    assert _equal(eager, _state(st))               # the retried steps are the eager steps


def test_running_out_of_memory_in_a_compiled_net_is_not_called_a_compile_failure(
        tiny, monkeypatch):
    def compiled_that_runs_out(*args, **kwargs):
        def fn(*a, **k):
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return fn

    monkeypatch.setattr(torch, "compile", compiled_that_runs_out)
    lines: list[str] = []
    with pytest.raises(torch.OutOfMemoryError):
        _run(tiny, **FAST, compile="on", log=lines.append)
    assert not [s for s in lines if "torch.compile failed" in s]


def test_compiled_networks_trace_and_train(tiny, monkeypatch):
    """torch.compile's graph capture (dynamo) on the real step, with the eager backend so the
    test needs no C++ toolchain and stays fast: no fallback, the eager result."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", functools.partial(real, backend="eager"))
    torch._dynamo.reset()
    lines: list[str] = []
    st = _run(tiny, **{**FAST, "epochs": 1}, compile="on", log=lines.append)
    assert not [s for s in lines if "failed" in s], lines
    _same_losses(_run(tiny, **{**FAST, "epochs": 1}), st, rel=1e-5)
    torch._dynamo.reset()


def test_each_run_compiles_afresh_not_under_the_last_runs_recompile_limit(tiny, monkeypatch):
    """Every model instance of a weight-normalised net is a new class to dynamo, so runs in
    one process (``--seeds``, the benchmarks) recompiled against one recompile limit and,
    past it, trained eager while the log said compiled. Each run now starts afresh."""
    compiled: list[int] = []

    def backend(gm, example_inputs):               # counts the graphs each run compiles
        compiled[-1] += 1
        return gm.forward

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 2)
    try:
        for seed in range(3):
            compiled.append(0)
            _run(tiny, **{**FAST, "epochs": 1}, seed=seed, compile="on")
    finally:
        torch._dynamo.reset()
    assert all(n > 0 for n in compiled), compiled


def test_compiled_nets_draw_their_noise_as_eager_ones_do(tiny, monkeypatch):
    """Inductor lowers randn_like (the noise layers) to a generator of its own, which
    changed a compiled run's noise, not just its rounding (1 epoch of FAST on the CPU's
    inductor: d_loss 4.1736 against eager 4.1134; with fallback_random 4.1134, the same).
    Compiling takes the eager generator (this checks the switch; inductor needs a C++
    toolchain and half a minute, too slow for the suite)."""
    from torch._inductor import config as inductor_config
    monkeypatch.setattr(inductor_config, "fallback_random", False)
    monkeypatch.setattr(torch, "compile", lambda m, **kw: lambda *a, **k: m(*a, **k))
    _run(tiny, **{**FAST, "epochs": 1}, compile="off")
    assert inductor_config.fallback_random is False
    _run(tiny, **{**FAST, "epochs": 1}, compile="on")
    assert inductor_config.fallback_random is True


def test_speed_settings_may_change_on_resume(tiny, tmp_path):
    full = _run(tiny, **{**FAST, "epochs": 3})
    _run(tiny, **FAST, out=tmp_path)
    resumed = _run(tiny, **{**FAST, "epochs": 3}, out=tmp_path, resume=True, fused_adam="on",
                   channels_last="on")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    _same_losses(full, resumed)


def test_thread_count_respects_omp_num_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")     # torchrun: cores shared by 64 processes
    assert cpu_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        torch.set_num_threads(2)
        assert configure_threads() == 2             # the user's setting wins: untouched
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert configure_threads() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- GPU only

@pytest.mark.gpu
def test_cuda_steps_never_wait_for_the_gpu(tiny):
    """No host synchronisation inside the step: the sync count of an epoch does not grow
    with its number of steps (the epoch's end syncs once for its losses)."""
    import warnings

    def syncs(n_images):
        data = ImageSet(tiny.images.repeat(n_images // 48, 1, 1, 1),
                        tiny.targets.repeat(n_images // 48), tiny.classes)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                _run(data, **{**FAST, "epochs": 1, "labels_per_class": 8}, device="cuda",
                     compile="off")
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return sum("synchroniz" in str(x.message) for x in w)

    assert syncs(96) == syncs(480)


@pytest.mark.gpu
def test_cuda_fast_path_defaults_train_the_conv_pair():
    st = _run(_colour(), **CONV, device="cuda", compile="off")   # compiling: speed.py
    assert math.isfinite(st.history[-1]["d_loss"])
    assert st.model.loss_net.features[1].weight.is_contiguous(memory_format=torch.channels_last)


def test_the_penalty_differentiates_the_eager_loss_network(tiny, monkeypatch):
    """With torch.compile on, the gradient penalty's double backward never runs through a
    compiled network: the compiled ones see no input that requires a gradient."""
    from ganaug.step import TrainStep
    seen = []

    def fake_compile(net, **kw):
        def run(x, *a, **k):
            seen.append(x.requires_grad)
            return net(x, *a, **k)
        return run
    monkeypatch.setattr(torch, "compile", fake_compile)
    cfg = TrainConfig(**FAST, compile="on", lipschitz="zero-gp").resolved()
    model = build_model(cfg, tiny)
    step = TrainStep(model, cfg, torch.device("cpu"))
    assert step.nets.compiled
    step(*first_draw(tiny, cfg, generator_step=False), 1.0, 0.9)
    assert seen == [False, False]                # G's fakes, then the loss network's pass
    assert step.nets.compiled                     # no fallback was needed


@pytest.mark.parametrize("g_loss", ["feature-matching", "loss"])
def test_the_generator_update_computes_only_the_generators_gradients(tiny, g_loss):
    """The generator's backward skips the loss network's weight gradients (it would throw
    them away): the loss network's .grad stays as its own update left it, and the
    generator's gradients are the numbers a full backward gives."""
    import copy
    from ganaug.step import TrainStep
    cfg = TrainConfig(batch_size=8, labels_per_class=4, g_loss=g_loss, mode_seeking=1.0,
                      net_options={"d_hidden": [32, 32], "g_hidden": [32]}).resolved()
    model = build_model(cfg, tiny)
    step = TrainStep(model, cfg, torch.device("cpu"))
    b, nz = first_draw(tiny, cfg)
    step._loss_net_step(b, nz, 1.0, True)
    D, G = model.loss_net, model.generator
    d_grads = [p.grad.clone() for p in D.parameters()]
    ref = copy.deepcopy(model)                   # the same weights, a full backward
    torch.manual_seed(5)                         # the loss network's noise layers
    step._generator_step(b, nz)
    assert all(torch.equal(p.grad, g) for p, g in zip(D.parameters(), d_grads))
    ref_step = TrainStep(ref, cfg, torch.device("cpu"))
    ref_step._update = lambda opt, loss: loss.backward()
    torch.manual_seed(5)
    ref_step._generator_step(b, nz)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ref.loss_net.parameters())
    for p, q in zip(G.parameters(), ref.generator.parameters()):
        assert torch.equal(p.grad, q.grad)


def test_resuming_with_fused_adam_puts_the_step_counts_on_the_parameters_device():
    """A checkpoint of unfused Adam (the CPU's) resumed fused on a GPU: load_state_dict
    leaves the step counts on the CPU (by the saved groups' switch), where the fused CUDA
    kernel refuses them. The meta device stands in for the GPU."""
    from ganaug.train import place_adam_state
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([p])
    p.grad = torch.ones(3)
    opt.step()
    opt.step()
    saved = opt.state_dict()
    on_gpu = torch.nn.Parameter(torch.zeros(3, device="meta"))
    resumed = torch.optim.Adam([on_gpu])
    resumed.load_state_dict(saved)
    assert resumed.state[on_gpu]["step"].device.type == "cpu"       # what torch leaves
    resumed.param_groups[0]["fused"] = True                         # this run's switch
    place_adam_state(resumed)
    step = resumed.state[on_gpu]["step"]
    assert step.device.type == "meta" and step.dtype == torch.float32
    again = torch.optim.Adam([p])                                   # unfused: on the CPU,
    again.load_state_dict(saved)                                    # its value unchanged
    place_adam_state(again)
    assert again.state[p]["step"].device.type == "cpu" and float(again.state[p]["step"]) == 2.0
    saved["state"][0]["step"] = torch.tensor(2.0, dtype=torch.float64)   # saved in another
    for fused in (True, None):                                      # dtype: float32, which the
        other = torch.optim.Adam([on_gpu] if fused else [p])        # fused kernel requires
        other.load_state_dict(saved)
        other.param_groups[0]["fused"] = fused
        place_adam_state(other)
        step = next(iter(other.state.values()))["step"]
        assert step.dtype == torch.float32 and (fused or float(step) == 2.0), fused


def test_resuming_with_another_memory_layout_lays_the_moments_out_as_the_parameters():
    """A conv checkpoint saved contiguous and resumed channels_last (or the other way):
    load_state_dict keeps the moments' saved layout, which the fused CUDA kernel refuses
    ("params, grads, exp_avgs, and exp_avg_sqs must have same ... layout"). The values stay."""
    from ganaug.train import place_adam_state
    w = torch.nn.Parameter(torch.randn(4, 3, 3, 3))
    opt = torch.optim.Adam([w])
    w.grad = torch.randn(4, 3, 3, 3)
    opt.step()
    saved = opt.state_dict()
    for fmt in (torch.channels_last, torch.contiguous_format):
        p = torch.nn.Parameter(w.detach().clone().contiguous(memory_format=fmt))
        resumed = torch.optim.Adam([p])
        resumed.load_state_dict(saved)
        place_adam_state(resumed)
        for key in ("exp_avg", "exp_avg_sq"):
            v = resumed.state[p][key]
            assert v.stride() == p.stride(), (fmt, key)
            assert torch.equal(v, opt.state[w][key])

