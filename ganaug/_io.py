"""Atomic file writes and safe checkpoint loading: no half-written file is ever left behind."""
from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch


class RunFolderBusy(OSError):
    """Another process is writing the run folder (``run_lock``)."""


_LOCKED: set[str] = set()           # the run folders this process holds (run_lock)


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike):
    """Hold an exclusive lock on an existing run ``folder`` while a run writes it, so that a
    second process on the same folder (two ``ganaug train --resume`` at once) stops with
    RunFolderBusy instead of both writing it. An advisory ``flock`` on the folder itself
    (no lock file), let go when the block ends and when the process ends however it ends
    (while a child forked inside the block lives on, the child holds it); nothing where
    the OS or file system has no ``flock`` (Windows, ENOLCK), and on NFS only processes of
    one machine exclude each other. Re-entrant within a process (not per thread)."""
    try:
        import fcntl
    except ImportError:                             # pragma: no cover - Windows
        yield
        return
    key = os.path.realpath(folder)
    if key in _LOCKED:
        yield
        return
    try:
        fd = os.open(key, os.O_RDONLY)
    except OSError:                                 # a folder this user cannot open: no lock
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusy(f"run folder {folder} is being written by another process (a "
                                f"ganaug train of it is running): wait until it ends, or pass "
                                f"another --out") from None
        except OSError:                             # no flock here (ENOLCK, some network
            yield                                   # file systems): run as before, unlocked
            return
        _LOCKED.add(key)
        try:
            yield
        finally:
            _LOCKED.discard(key)
            fcntl.flock(fd, fcntl.LOCK_UN)          # also for a forked child's copy of fd
    finally:
        os.close(fd)


def plain(v: Any) -> Any:
    """``v`` with numpy scalars as the Python values they hold (np.float64(0.1) -> 0.1),
    through lists, tuples and dicts; anything else as it is. A numpy scalar in a checkpoint
    would make it unloadable with ``torch.load(weights_only=True)``."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return type(v)(plain(x) for x in v)
    if isinstance(v, dict):
        return {plain(k): plain(x) for k, x in v.items()}
    return v


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be trusted or read."""


def _file_mode(path: Path) -> int:
    """The permissions a plain ``open(path, "w")`` would give: the old file's, if any, else
    0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def _atomic(path: str | os.PathLike, write: Callable[[Any], None], mode: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            if hasattr(os, "fchmod"):     # mkstemp's 0600 would make run folders private;
                try:                      # a file system that refuses chmod keeps 0600
                    os.fchmod(f.fileno(), _file_mode(path))
                except OSError:
                    pass
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)        # atomic on POSIX: readers see the old file or the new
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            # a full disk's "[Errno 28] No space left on device" names no file: name it
            raise OSError(e.errno, f"{e.strerror}: could not write {path} (a file there "
                                   f"before is kept as it was)") from None
        raise
    return path


def remove_stale_temps(folder: str | os.PathLike, name: str) -> list[Path]:
    """Delete the temporary files that writes of ``folder/name`` left behind when their
    process was killed mid-write (``kill -9``, a lost node): a checkpoint-sized file each.
    Only for a file one process writes (a run's checkpoint): another's live write would
    lose its temporary file. Returns what was deleted."""
    gone = []
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        try:
            tmp.unlink()
            gone.append(tmp)
        except FileNotFoundError:
            pass
    return gone


def atomic_write_bytes(path, data: bytes) -> Path:
    return _atomic(path, lambda f: f.write(data), "wb")


def atomic_write_text(path, text: str) -> Path:
    return _atomic(path, lambda f: f.write(text), "w")


def atomic_write_json(path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def on_cpu(obj: Any) -> Any:
    """``obj`` with every tensor inside its dicts, lists and tuples moved to the CPU."""
    if torch.is_tensor(obj):
        return obj.cpu()
    if isinstance(obj, dict):
        out = type(obj)((k, on_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):           # a state dict's module versions
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(on_cpu(v) for v in obj)
    return obj


def atomic_torch_save(path, obj: Any) -> Path:
    """Write ``obj`` with ``torch.save``, atomically, its tensors on the CPU: a checkpoint
    of a GPU run loads with a plain ``torch.load(path, weights_only=True)`` on a machine
    without one (ganaug's loaders place the tensors where they are needed)."""
    buf = io.BytesIO()
    torch.save(on_cpu(obj), buf)
    return atomic_write_bytes(path, buf.getvalue())


def _first_line(e: BaseException) -> str:
    """``Type: first line of the message`` (``Type`` alone when there is no message)."""
    line = (str(e).splitlines() or [""])[0][:120]
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


CHECKPOINT = "checkpoint.pt"                      # a run folder's checkpoint file
CHECKPOINT_VERSION = 1          # of the checkpoints and model files ganaug writes and reads


def run_checkpoint(path: str | os.PathLike, file_ok: bool = True) -> Path:
    """The checkpoint of a run folder (its ``checkpoint.pt``) or, when ``file_ok``, a
    checkpoint file itself; a path that is neither is an error that says what to pass."""
    path = Path(path)
    want = ("a run folder of `ganaug train` (the path it prints at its end; by default "
            "runs/<time>-<dataset>-<objective>)" + (" or a checkpoint file" if file_ok else ""))
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: pass {want}")
    if path.is_dir():
        if not (path / CHECKPOINT).is_file():
            from .runs import seed_folders     # runs imports this module
            seeds = [f"seed-{s}" for s in seed_folders(path)]
            if seeds:                         # experiment.fit_seeds' folder
                raise CheckpointError(
                    f"{path} holds a multi-seed run (--seeds), one run folder per seed: pass "
                    f"one of them, e.g. {path / seeds[0]} ({', '.join(seeds)})")
            if (path / "config.json").is_file():     # train writes it before epoch 1
                raise CheckpointError(f"{path} holds a run that ended before its first epoch "
                                      f"did (no {CHECKPOINT} yet): there is no model to read; "
                                      f"train it first (the command that began it, without "
                                      f"--resume, starts it afresh)")
            raise CheckpointError(f"{path} is not a run folder (no {CHECKPOINT} in it): "
                                  f"pass {want}")
        return path / CHECKPOINT
    if not file_ok:
        if (path.parent / CHECKPOINT).is_file():      # a run folder's checkpoint or best.pt
            best = " with --best (its best epoch)" if path.name == "best.pt" else ""
            raise CheckpointError(f"{path} is a file, and this reads a whole run (its config, "
                                  f"data and checkpoint): pass its folder, {path.parent}{best}")
        raise CheckpointError(f"{path} is a file: pass {want}")
    return path


# torch.save(..., _use_new_zipfile_serialization=False) starts with the pickled magic number
_LEGACY_HEAD = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


_IMAGE_HEADS = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF",
                b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


def _image_kind(path: Path) -> str | None:
    """"PNG", "JPEG", ... for a file that starts as such an image does, else None."""
    with open(path, "rb") as f:
        head = f.read(8)
    return next((kind for magic, kind in _IMAGE_HEADS.items() if head.startswith(magic)), None)


def _check_archive(path: Path) -> None:
    """Every checkpoint torch.save writes is a zip archive: a file that is not one was never
    a checkpoint (a config.json passed by mistake); a member that fails its CRC was damaged
    after writing, which torch.load itself would not notice."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except zipfile.BadZipFile:
        with open(path, "rb") as f:
            if f.read(len(_LEGACY_HEAD)) == _LEGACY_HEAD:   # torch.save's format before 1.6
                return                                        # (no CRC); torch.load reads it
        if path.stat().st_size and _looks_like_text(path):
            raise CheckpointError(f"{path} is not a checkpoint (a text file): pass a run folder "
                                  f"or the checkpoint.pt in it") from None
        if kind := _image_kind(path):
            raise CheckpointError(f"{path} is not a checkpoint (a {kind} image): pass a run "
                                  f"folder or the checkpoint.pt in it") from None
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated, or not a "
                              f"checkpoint (not a complete zip archive, as torch.save writes); "
                              f"if it was one, delete it or restore a good copy") from None
    except (OSError, RuntimeError, EOFError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupted ({_first_line(e)}); delete it "
                              f"or restore a good copy") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} is corrupted: its member {bad!r} fails its "
                              f"CRC check; delete it or restore a good copy")


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in head


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """``torch.load(weights_only=True)`` with one clear error per way a file can be bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    _check_archive(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {path} holds arbitrary Python objects, which ganaug refuses to unpickle "
            f"({_first_line(e)}); load it only if you trust it and re-save its "
            f"state_dicts as plain tensors") from None
    except Exception as e:                    # torch.load fails in many ways on a bad file
        if isinstance(e, RuntimeError) and "CUDA" in str(e) and not torch.cuda.is_available():
            raise CheckpointError(f"checkpoint {path} was saved on a GPU and this machine has "
                                  f"none: load it with map_location='cpu' (or device='cpu')"
                                  ) from None
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated "
                              f"({_first_line(e)}); delete it or restore a good copy") from None
    if not isinstance(obj, dict) or obj.get("format") != "ganaug":
        raise CheckpointError(f"{path} is not a ganaug checkpoint (no 'format': 'ganaug' key)")
    version = obj.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"checkpoint {path} has no valid 'version' ({version!r}): it was "
                              f"edited or written by another program; delete it or restore a "
                              f"good copy")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {path} was written by a newer ganaug (checkpoint "
                              f"version {version}; this ganaug reads version "
                              f"{CHECKPOINT_VERSION}): upgrade ganaug to load it")
    return obj
