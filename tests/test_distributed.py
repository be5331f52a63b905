"""Data-parallel training: 2 CPU processes (gloo) against 1 process with the same global batch,
a resume under another world size, and `torchrun -m ganaug train` (both ranks stopped by
--time-limit after the same epoch)."""
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
from ganaug.data import ImageSet, split_labeled

# no batch statistics and no noise layers, so 2 processes must match 1 up to rounding; the
# defaults (zero-centred gradient penalty, feature matching) plus the mode-seeking term,
# the shifts, the consistency term's second view and the lazy penalty (every 4th step, so
# that the penalised steps fall across epochs and the resume) exercise every term that
# needs care across processes
EXACT = dict(batch_size=8, labels_per_class=4, mode_seeking=0.5, translate=1, consistency=1.0,
             penalty_every=4,
             net_options={"d_hidden": [32, 32], "g_hidden": [32], "g_norm": "none",
                          "input_noise": 0.0, "hidden_noise": 0.0})
ROOT = Path(__file__).resolve().parents[1]


def _tiny() -> ImageSet:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(12)
    x = torch.rand(48, 1, 8, 8, generator=g) * 0.5 + (y.view(-1, 1, 1, 1) * 0.3 - 0.9)
    return ImageSet(x.clamp(-1, 1), y, ["a", "b", "c", "d"])


def _run(epochs: int, out=None, resume=False, log=None, **kw):
    data = _tiny()
    cfg = TrainConfig(**{**EXACT, "epochs": epochs, **kw})
    lab, unl = split_labeled(data, cfg.labels_per_class, cfg.data_seed)
    model = build_model(cfg.resolved(), data)
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
        st = _run(2, out=out, log=lines.append)
        try:
            _run(1, batch_size=7)
            uneven = None
        except ValueError as e:
            uneven = str(e)
        torch.save({"state": st.model.state_dict(), "history": st.history, "lines": lines,
                    "uneven": uneven}, Path(results) / f"rank{rank}.pt")
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
    _close(single.model.state_dict(), r0["state"])
    for k, v in r0["state"].items():               # every rank holds the same model
        assert torch.equal(v, r1["state"][k]), k
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
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)                # torchrun sets 1 thread per process
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", "-m", "ganaug", "train", "--epochs", "2",
                        "--time-limit", "1e-6", "--device", "cpu", "--quiet", "--out", str(out)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("test accuracy") == 1, r.stdout     # printed by rank 0 alone
    assert "x 2 processes" in r.stderr
    assert "after epoch 1 of 2 (time limit)" in r.stdout       # both ranks stopped together
    summary = json.loads((out / "summary.json").read_text())
    assert math.isfinite(summary["test_accuracy"]) and summary["epochs"] == 1
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1
