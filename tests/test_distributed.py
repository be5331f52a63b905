"""Data-parallel training: 2 CPU processes (gloo) against 1 process with the same global batch,
a resume under another world size, and `torchrun -m ganaug train` (both ranks stopped by
--time-limit after the same epoch); the collectives, the process-group setup and the thread
count on their own."""
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ganaug import TrainConfig, build_model, train
from ganaug import distributed as D
from ganaug.data import ImageSet, split_labeled

# no batch statistics and no noise layers, so 2 processes must match 1 up to rounding; the
# defaults (zero-centred gradient penalty, feature matching) plus the mode-seeking term,
# the shifts, the consistency term's second view, the lazy penalty (every 4th step, so
# that the penalised steps fall across epochs and the resume) and an unlabeled part twice
# the labeled one exercise every term that needs care across processes
EXACT = dict(batch_size=8, labels_per_class=4, mode_seeking=0.5, translate=1, consistency=1.0,
             penalty_every=4, unlabeled_ratio=2,
             net_options={"d_hidden": [32, 32], "g_hidden": [32], "g_norm": "none",
                          "input_noise": 0.0, "hidden_noise": 0.0})
ROOT = Path(__file__).resolve().parents[1]


def _tiny() -> ImageSet:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(12)
    x = torch.rand(48, 1, 8, 8, generator=g) * 0.5 + (y.view(-1, 1, 1, 1) * 0.3 - 0.9)
    return ImageSet(x.clamp(-1, 1), y, ["a", "b", "c", "d"])


def _run(epochs: int, out=None, resume=False, log=None, init=None, **kw):
    data = _tiny()
    cfg = TrainConfig(**{**EXACT, "epochs": epochs, **kw})
    lab, unl = split_labeled(data, cfg.labels_per_class, cfg.data_seed)
    model = build_model(cfg.resolved(), data)
    if init is not None:                       # e.g. other initial weights on one rank
        with torch.no_grad():
            init(model)
    return train(model, lab, unl, cfg, test=data, out=out, resume=resume, progress=False,
                 log=log or (lambda s: None))


def _forbidden(*args, **kwargs):
    raise AssertionError("a rank other than 0 wrote a file")


def _worker(rank: int, world: int, store: str, out: str, results: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        if rank:                                   # rank 1 must never write
            import importlib
            # the modules themselves (`import ganaug.train as T` is the train function)
            patched = 0
            for module in ("ganaug.train", "ganaug._io", "ganaug.monitor"):
                m = importlib.import_module(module)
                for name in ("atomic_write_json", "atomic_torch_save", "atomic_write_text",
                             "atomic_write_bytes", "save_grid"):
                    if hasattr(m, name):
                        setattr(m, name, _forbidden)
                        patched += 1
            assert patched >= 5
        lines: list[str] = []
        # rank 1 starts from other weights: train() must start every rank from rank 0's
        st = _run(2, out=out, log=lines.append,
                  init=(lambda m: [p.add_(1.0) for p in m.parameters()]) if rank else None)
        rng = torch.get_rng_state()                # the last epoch's seed of the global RNG
        # the default generator's BatchNorm: every rank must end with the same statistics
        bn = _run(1, net_options={**EXACT["net_options"], "g_norm": "batch"}).model.state_dict()
        try:
            _run(1, batch_size=7)
            uneven = None
        except ValueError as e:
            uneven = str(e)
        torch.save({"state": st.model.state_dict(), "history": st.history, "lines": lines,
                    "uneven": uneven, "rng": rng, "bn": bn}, Path(results) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _close(a: dict, b: dict, atol=1e-5) -> float:
    """Largest absolute difference over the float tensors of two state dicts (asserts close)."""
    worst = 0.0
    for k in a:
        if a[k].is_floating_point():
            worst = max(worst, (a[k] - b[k]).abs().max().item())
            assert torch.allclose(a[k], b[k], atol=atol, rtol=1e-4), (k, worst)
        else:
            assert torch.equal(a[k], b[k]), k
    return worst


def test_two_gloo_processes_match_one_process_and_resume_under_one(tmp_path):
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(out), str(results)), nprocs=2)
    r0, r1 = (torch.load(results / f"rank{r}.pt", weights_only=True) for r in (0, 1))

    single = _run(2)
    # noise layers' RNG: rank 0 seeded as one process, rank 1 with a stream of its own
    assert torch.equal(r0["rng"], torch.get_rng_state())
    assert not torch.equal(r1["rng"], r0["rng"])
    _close(single.model.state_dict(), r0["state"])
    for key in ("state", "bn"):                    # every rank holds the same model
        for k, v in r0[key].items():
            assert torch.equal(v, r1[key][k]), (key, k)
    for a, b in zip(single.history, r0["history"]):
        for key in ("d_loss", "sup_loss", "critic", "critic_ul", "penalty", "consistency",
                    "g_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
        assert a["test_accuracy"] == b["test_accuracy"]
    assert r0["lines"] and not r1["lines"]         # only rank 0 logs
    assert "does not split evenly over 2" in r0["uneven"] and r1["uneven"] == r0["uneven"]
    assert (out / "checkpoint.pt").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    # the checkpoint written under world size 2 resumes in one process
    resumed = _run(3, out=out, resume=True)
    _close(_run(3).model.state_dict(), resumed.model.state_dict())
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]


def test_shards_split_each_part_of_the_global_batch_evenly():
    from ganaug.step import _Shard
    t = torch.arange(12)                           # rows 0..5 labeled, 6..11 unlabeled
    parts = [_Shard(r, 3).rows(t, 6) for r in range(3)]
    assert [p.tolist() for p in parts] == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    assert _Shard().rows(t, 6) is t and _Shard().part(t) is t


def test_torchrun_module_cli_on_two_cpu_processes(tmp_path):
    out = tmp_path / "run"
    scratch = tmp_path / "tmp"                      # torchrun's torchelastic_* folder: not /tmp
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
    env.pop("OMP_NUM_THREADS", None)                # torchrun sets 1 thread per process
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", "-m", "ganaug", "train", "--epochs", "2",
                        "--time-limit", "1e-6", "--device", "cpu", "--quiet", "--out", str(out),
                        "--standing-stats", "20"],      # under 5 per class: a warning
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("test accuracy") == 1, r.stdout     # printed by rank 0 alone
    assert "x 2 processes" in r.stderr
    assert "after epoch 1 of 2 (time limit)" in r.stdout       # both ranks stopped together
    assert r.stderr.count("warning: standing statistics from") == 1, r.stderr[-3000:]  # rank 0
    summary = json.loads((out / "summary.json").read_text())
    assert math.isfinite(summary["test_accuracy"]) and summary["epochs"] == 1
    assert summary["processes"] == 2
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1


def _collectives_worker(rank: int, world: int, store: str, results: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        r = float(rank + 1)                        # rank-dependent values: 1 on rank 0, 2 on 1
        a, b, c = (torch.nn.Parameter(torch.zeros(*s)) for s in ((2, 3), (4,), (1,)))
        a.grad, b.grad = torch.full((2, 3), r), torch.arange(4.0) * r     # c: no gradient
        D.average_gradients([a, b, c], world)
        x = torch.full((3, 2), r, requires_grad=True)
        m = D.global_row_mean(x, world)
        m.sum().backward()
        torch.manual_seed(rank)                    # other weights and statistics on each rank
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                  torch.nn.Flatten(), torch.nn.BatchNorm1d(4 * 36))
        net = net.to(memory_format=torch.channels_last)    # a non-contiguous conv weight
        for bn in (net[1], net[3]):
            bn.running_mean.fill_(r)
            bn.running_var.fill_(r * r)
            bn.num_batches_tracked.fill_(rank)
        D.average_batchnorm_stats(net, world)
        stats = {k: v.clone() for k, v in net.state_dict().items()}
        for bn in (net[1], net[3]):                # buffers too, not only the parameters
            bn.running_mean.add_(rank)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        D.broadcast_module_(net, world)
        torch.save({"a": a.grad, "b": b.grad, "c": c.grad, "m": m.detach(), "x": x.grad,
                    "stats": stats, "before": before, "after": net.state_dict(),
                    "contiguous": net[0].weight.is_contiguous(),
                    "object": D.broadcast_object({"rank": rank}, world),
                    "average": D.average_(torch.tensor([r, 10 * r]), world),
                    "who": (D.rank_and_world(), D.is_main())}, Path(results) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_collectives_average_and_broadcast_over_two_gloo_processes(tmp_path):
    """Each collective on rank-dependent values: means over the ranks, rank 0's module and
    object everywhere, and global_row_mean's gradient."""
    mp.spawn(_collectives_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for rank, res in enumerate((r0, r1)):
        assert torch.equal(res["a"], torch.full((2, 3), 1.5))
        assert torch.equal(res["b"], torch.arange(4.0) * 1.5) and res["c"] is None
        assert torch.equal(res["m"], torch.full((1, 2), 1.5))
        # the global mean's gradient (1/6 a row) times the world size: averaging divides it back
        assert torch.allclose(res["x"], torch.full((3, 2), 1 / 3))
        for k, v in res["stats"].items():          # BatchNorm running statistics averaged
            if k.endswith("running_mean"):
                assert torch.equal(v, torch.full_like(v, 1.5)), k
            elif k.endswith("running_var"):
                assert torch.equal(v, torch.full_like(v, 2.5)), k
        for k, v in res["after"].items():          # every parameter and buffer from rank 0
            assert torch.equal(v, r0["before"][k]), (rank, k)
        assert not res["contiguous"]               # still channels_last
        assert res["object"] == {"rank": 0}
        assert torch.equal(res["average"], torch.tensor([1.5, 15.0]))
        assert res["who"] == ((rank, 2), rank == 0)
    assert not torch.equal(r1["before"]["0.weight"], r0["before"]["0.weight"])


def _download_worker(rank: int, world: int, store: str, results: str, fail: bool) -> None:
    import time

    from ganaug import TrainConfig
    from ganaug import experiment as E
    from ganaug.data import DataNotFoundError, load_dataset

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    calls = []

    def fake(name, root, download, image_size):
        calls.append((time.monotonic(), download))
        if download:
            time.sleep(1.0)                        # a slow download: the others must wait
            if fail:
                raise DataNotFoundError("no internet")
        return load_dataset("digits")

    E.load_dataset = fake
    try:
        try:
            E.load_data(TrainConfig(dataset="mnist", download=True))
            error = None
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
        torch.save({"calls": calls, "error": error, "end": time.monotonic()},
                   Path(results) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("fail", [False, True])
def test_under_torchrun_rank_0_downloads_alone_and_its_error_is_everyones(tmp_path, fail):
    """torchvision writes downloads in place: with --download the other ranks wait for rank
    0 and then read the files it fetched (never downloading themselves); a failed download
    fails every rank with rank 0's message, and none hangs."""
    mp.spawn(_download_worker, args=(2, str(tmp_path / "store"), str(tmp_path), fail), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert [d for _, d in r0["calls"]] == [True]
    if fail:
        assert r0["error"] == "DataNotFoundError: no internet" and r1["calls"] == []
        assert r1["error"] == ("DataNotFoundError: rank 0 could not download the data "
                               "(DataNotFoundError): no internet")
    else:
        assert r0["error"] is None and r1["error"] is None
        assert [d for _, d in r1["calls"]] == [False]
        assert r1["calls"][0][0] >= r0["calls"][0][0] + 1.0      # after rank 0's download


@pytest.mark.parametrize("env,device,gpus,calls", [
    ({}, "auto", 2, []),                                             # no torchrun
    ({"WORLD_SIZE": "1"}, "auto", 0, []),                            # torchrun, one process
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, "cpu", 2, [("init", "gloo")]),
    ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}, "auto", 2,
     [("set_device", 1), ("init", "nccl")]),
    ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}, "cuda", 2,
     [("set_device", 1), ("init", "nccl")]),
])
def test_init_from_env_picks_the_backend_and_the_local_gpu(monkeypatch, env, device, gpus,
                                                           calls):
    """init_from_env: a no-op without torchrun or with one process; NCCL on cuda:LOCAL_RANK
    (not RANK) for a CUDA or auto run on a GPU machine, gloo for a CPU run."""
    seen = []
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: seen.append(("set_device", i)))
    monkeypatch.setattr(dist, "init_process_group", lambda backend: seen.append(("init", backend)))
    monkeypatch.setattr(D.atexit, "register", lambda f: None)
    monkeypatch.setattr(D, "_STARTED_HERE", False)
    assert D.init_from_env(device) is bool(calls)
    assert seen == calls


def test_shutdown_destroys_only_the_group_it_started(monkeypatch, tmp_path):
    """A group the caller started is used as it is and survives shutdown(); the one
    init_from_env started is destroyed by it."""
    real_init = dist.init_process_group
    stores = iter(tmp_path / f"store{i}" for i in range(2))

    def start(backend):
        real_init(backend, store=dist.FileStore(str(next(stores)), 1), rank=0, world_size=1)

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(D.atexit, "register", lambda f: None)
    monkeypatch.setattr(D, "_STARTED_HERE", False)
    try:
        start("gloo")                              # the caller's own group
        assert D.init_from_env("cpu") is True
        D.shutdown()
        assert dist.is_initialized()
        dist.destroy_process_group()
        monkeypatch.setattr(dist, "init_process_group", start)
        assert D.init_from_env("cpu") is True and dist.is_initialized()
        D.shutdown()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize("cpu_max,local_world,expected", [
    (None, None, 8), ("max 100000", "1", 8), ("150000 100000", None, 2),
    ("150000 100000", "2", 1), ("max 100000", "4", 2), (None, "3", 2),
])
def test_cpu_threads_counts_affinity_cgroup_quota_and_local_processes(monkeypatch, cpu_max,
                                                                      local_world, expected):
    """cpu_threads: the affinity mask (8 here), capped by the cgroup quota rounded up,
    divided among torchrun's processes on the machine (LOCAL_WORLD_SIZE)."""
    def fake_open(path, *args, **kwargs):
        assert path == "/sys/fs/cgroup/cpu.max"
        if cpu_max is None:
            raise FileNotFoundError(path)
        return io.StringIO(cpu_max + "\n")

    monkeypatch.setattr(D.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(D, "open", fake_open, raising=False)
    if local_world is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world)
    assert D.cpu_threads() == expected


@pytest.mark.parametrize("omp,share,expected", [("2", 1, 2), (None, 1, 1), (None, 4, 2)])
def test_configure_threads_only_lowers_and_leaves_omp_num_threads_alone(monkeypatch, omp, share,
                                                                        expected):
    """configure_threads from torch's 2 threads: the user's OMP_NUM_THREADS wins; without
    it the count drops to cpu_threads() but never rises to it."""
    before = torch.get_num_threads()
    monkeypatch.setattr(D, "cpu_threads", lambda: share)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    try:
        torch.set_num_threads(2)
        assert D.configure_threads() == expected == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_a_numbered_gpu_under_torchrun_is_refused_before_any_work(tiny):
    """--device cuda:N would put every process on GPU N (each takes its own, LOCAL_RANK)."""
    from ganaug import TrainConfig, build_model
    from ganaug.train import check_inputs
    cfg = TrainConfig(device="cuda:1").resolved()
    model = build_model(cfg, tiny)
    with pytest.raises(ValueError, match=r"device 'cuda:1' would put all 2 processes on one "
                                         r"GPU: .* pass --device cuda \(or auto\)"):
        check_inputs(model, tiny, cfg, world=2)
    check_inputs(model, tiny, cfg, world=1)                 # one process: its choice


@pytest.mark.parametrize("resume", [False, True])
def test_a_batch_that_does_not_split_is_one_message_from_rank_0(tmp_path, monkeypatch, capsys,
                                                                resume):
    """Checked before the process group, on every rank: rank 0 alone prints it. A resume
    keeps its run's batch size, so its fix is another number of processes."""
    from ganaug.cli import main
    out = tmp_path / "run"
    if resume:
        assert main(["train", "--epochs", "1", "--batch-size", "63", "--out", str(out),
                     "--quiet", "--no-tensorboard"]) == 0
        capsys.readouterr()
    args = ["train", "--epochs", "2", "--out", str(out), "--quiet", "--no-tensorboard"]
    args += ["--resume"] if resume else ["--batch-size", "63"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        assert main(args) == 2
        err = capsys.readouterr().err
        if rank == "1":
            assert err == ""
        elif resume:
            assert "batch_size 63 of the run being resumed does not split evenly over 2 " \
                   "processes, and a resume keeps its batch size: resume with a number of " \
                   "processes that divides 63 (1, 3, 7, 9, 21, 63)" in err
        else:
            assert "batch_size 63 does not split evenly over 2 processes; use a multiple " \
                   "of 2" in err


def test_a_local_rank_as_large_as_the_gpu_count_is_refused(monkeypatch):
    """init_from_env: LOCAL_RANK equal to the GPU count (one process too many) is the clear
    ValueError, not torch's own set_device failure."""
    for k, v in {"WORLD_SIZE": "3", "RANK": "2", "LOCAL_RANK": "2"}.items():
        monkeypatch.setenv(k, v)
    seen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: seen.append(("set_device", i)))
    monkeypatch.setattr(dist, "init_process_group", lambda backend: seen.append(("init", backend)))
    monkeypatch.setattr(D.atexit, "register", lambda f: None)
    monkeypatch.setattr(D, "_STARTED_HERE", False)
    with pytest.raises(ValueError, match=r"LOCAL_RANK 2 but only 2 GPUs; use --nproc_per_node"):
        D.init_from_env("cuda")
    assert seen == []


def test_the_group_init_from_env_starts_is_shut_down_at_exit(monkeypatch):
    """init_from_env registers shutdown() to run at exit (the group it started is destroyed)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    registered = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: None)
    monkeypatch.setattr(D.atexit, "register", registered.append)
    monkeypatch.setattr(D, "_STARTED_HERE", False)
    assert D.init_from_env("cpu") is True
    assert registered == [D.shutdown]


@pytest.mark.parametrize("content", ["max\n", "garbage 100000\n", ""])
def test_a_malformed_cpu_max_is_ignored(monkeypatch, content):
    """cpu_threads: an unreadable cgroup cpu.max (a single field, non-numbers) is ignored, as a
    missing one is, rather than failing every CLI command."""
    monkeypatch.setattr(D.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(D, "open", lambda path, *a, **k: io.StringIO(content), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert D.cpu_threads() == 8


def test_no_gradients_is_a_no_op_on_any_world(monkeypatch):
    """average_gradients with no gradient at all (nothing was backpropagated) is a no-op, on any
    world size; it must not reach the collective."""
    monkeypatch.setattr(D.dist, "all_reduce", lambda t: (_ for _ in ()).throw(AssertionError))
    p = torch.nn.Parameter(torch.zeros(3))
    D.average_gradients([p], 2)
    D.average_gradients([], 4)
    assert p.grad is None


def test_cuda_without_a_gpu_under_torchrun_is_named(monkeypatch):
    """Under torchrun, --device cuda on a machine without a GPU says so (not a LOCAL_RANK error)."""
    for k, v in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: pytest.fail("started"))
    monkeypatch.setattr(D.atexit, "register", lambda f: None)
    monkeypatch.setattr(D, "_STARTED_HERE", False)
    with pytest.raises(ValueError, match="device 'cuda' was asked for but no CUDA GPU"):
        D.init_from_env("cuda")


@pytest.mark.parametrize("name", ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"])
def test_torchruns_variables_empty_are_unset_and_a_non_number_is_named(monkeypatch, name):
    """An empty RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE counts as unset (it stopped every
    `ganaug train` without OMP_NUM_THREADS: "invalid literal for int() with base 10: ''");
    a value that is not a whole number is an error naming the variable."""
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv(name, "")
    assert D.launched_rank_and_world() == (0, 1) and D.cpu_threads() >= 1
    monkeypatch.setenv(name, "two")
    readers = {"RANK": D.launched_rank_and_world, "WORLD_SIZE": D.launched_rank_and_world,
               "LOCAL_WORLD_SIZE": D.cpu_threads,
               "LOCAL_RANK": lambda: D._env_int("LOCAL_RANK", 0)}    # read for CUDA alone
    with pytest.raises(ValueError, match=f"the environment variable {name}='two' is not a whole "
                                         f"number: torchrun sets it; outside torchrun unset it"):
        readers[name]()
