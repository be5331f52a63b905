"""Data-parallel training over processes (torchrun), and the per-process CPU thread count.

    torchrun --nproc_per_node=N -m ganaug train [options]

runs ``ganaug train`` in N processes. :func:`init_from_env` (called by the CLI) reads
torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and starts the
process group: NCCL with device cuda:LOCAL_RANK when the run uses CUDA, gloo on the CPU.
:func:`ganaug.train` is data-parallel whenever a process group is initialised, whoever
initialised it. How the work is split (train.py, ``_Shard``): every rank draws the same
global batch from the same seeded generators and keeps an equal share of its rows; the
gradients are averaged after every backward. Only rank 0 logs and writes files.

The collectives below are the only ones the training loop uses. Models and loss
functions never see a rank.
"""
from __future__ import annotations

import atexit
import math
import os

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["init_from_env", "shutdown", "rank_and_world", "is_main", "cpu_threads",
           "configure_threads"]

_STARTED_HERE = False


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _env_int(name: str, default: int) -> int:
    """A whole number torchrun sets in the environment; ``default`` when unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"the environment variable {name}={text!r} is not a whole number: "
                         f"torchrun sets it; outside torchrun unset it") from None


def launched_rank_and_world() -> tuple[int, int]:
    """(rank, world size) as torchrun set them in the environment, before (or without) a
    process group; (0, 1) without torchrun."""
    return _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one process that logs and writes."""
    return rank_and_world()[0] == 0


def init_from_env(device: str = "auto") -> bool:
    """Start the default process group from torchrun's environment; True when distributed.

    A no-op (False) without torchrun (WORLD_SIZE unset or 1) or when a group is already up
    (then that group is used as it is). ``device`` is the run's TrainConfig.device: a CUDA
    run gets NCCL and ``torch.cuda.set_device(LOCAL_RANK)``, a CPU run gets gloo.
    """
    global _STARTED_HERE
    world = launched_rank_and_world()[1]
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return dist.is_available() and dist.is_initialized()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA GPU is available")
        local = _env_int("LOCAL_RANK", 0)
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs; "
                             f"use --nproc_per_node <= the GPU count")
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")   # env://: torchrun's variables
    _STARTED_HERE = True
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    """Destroy the process group if :func:`init_from_env` started it."""
    global _STARTED_HERE
    if _STARTED_HERE and dist.is_initialized():
        dist.destroy_process_group()
    _STARTED_HERE = False


# --------------------------------------------------------------------------- CPU threads

def cpu_threads() -> int:
    """CPU cores this process may use: the affinity mask, capped by a cgroup CPU quota
    (containers), divided among the processes torchrun started on this machine."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:                      # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    local_world = _env_int("LOCAL_WORLD_SIZE", 1)
    return max(1, cores // max(1, local_world))


def configure_threads() -> int:
    """Use :func:`cpu_threads` intra-op threads unless the user set OMP_NUM_THREADS.

    Only ever lowers torch's default, which counts the machine's cores, not the
    container's share of them (oversubscription makes CPU training several times
    slower). Returns the thread count in effect.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        n = cpu_threads()
        if torch.get_num_threads() > n:
            torch.set_num_threads(n)
    return torch.get_num_threads()


# --------------------------------------------------------------------------- collectives

def average_gradients(params, world: int) -> None:
    """Replace every parameter's .grad by its mean over the ranks: one flat all-reduce.

    Every rank has gradients for the same parameters (the same graph on every rank)."""
    grads = [p.grad for p in params if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def global_row_mean(t: Tensor, world: int) -> Tensor:
    """Mean over the global batch's rows of ``t`` (this rank's rows), shape (1, ...).

    Differentiable: every rank gets the same value, and after gradient averaging each
    rank's rows receive exactly their share of the gradient. Needs equal row counts on
    every rank. With ``world == 1`` returns ``t`` unchanged (a mean over its rows is then
    the same thing, and the single-process path stays bit-for-bit as it was).
    """
    if world == 1:
        return t
    return _AllReduceSum.apply(t.mean(dim=0, keepdim=True)) / world


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the gradient is all-reduced too, so each rank's
    input gets the sum over ranks of the gradients of their (identical) outputs.
    (torch.distributed.nn.functional.all_reduce does this but is deprecated.)"""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:
        t = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def average_(t: Tensor, world: int) -> Tensor:
    """In-place mean over the ranks (no gradient); returns ``t``."""
    if world > 1:
        dist.all_reduce(t)
        t.div_(world)
    return t


def average_batchnorm_stats(module: nn.Module, world: int) -> None:
    """Average BatchNorm running means and variances over the ranks.

    Each rank's statistics follow its own rows; the update is linear in the batch
    statistics, so averaging at any time equals averaging at every step. (The variance
    average misses the spread between the ranks' means: close to, not exactly, the
    single-process value.)"""
    if world == 1:
        return
    stats = [t for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for t in (m.running_mean, m.running_var) if t is not None]
    if stats:
        flat = average_(torch.cat([s.reshape(-1) for s in stats]), world)
        offset = 0
        for s in stats:
            s.copy_(flat[offset:offset + s.numel()].view_as(s))
            offset += s.numel()


def broadcast_module_(module: nn.Module, world: int) -> None:
    """Every parameter and buffer of ``module`` from rank 0 (as DDP does at start)."""
    if world == 1:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            buf = t.data if t.is_contiguous() else t.data.contiguous()   # e.g. channels_last
            dist.broadcast(buf, 0)
            if buf is not t.data:
                t.data.copy_(buf)


def broadcast_object(obj, world: int):
    """Rank 0's ``obj`` (any picklable value) on every rank."""
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, 0)
    return box[0]
