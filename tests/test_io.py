"""ganaug._io: atomic writes and their leftovers, checkpoints with CPU tensors and plain
Python values (so they load with weights_only=True), and what safe_torch_load calls a file
that is not a readable checkpoint."""
import errno
import os

import numpy as np
import pytest
import torch

import ganaug._io as io_
from ganaug._io import (CheckpointError, RunFolderBusy, _atomic, plain, remove_stale_temps,
                        run_lock, safe_torch_load)


def test_a_killed_writes_temporary_is_what_remove_stale_temps_deletes(tmp_path):
    """The temporary of an atomic write is hidden and is what remove_stale_temps finds, so a
    killed write's leftover is deleted when the run resumes."""
    seen = []

    def write(f):                        # mid-write: what a kill -9 here would leave behind
        seen.extend(p.name for p in tmp_path.iterdir() if p.name != "checkpoint.pt")
        f.write("new")

    _atomic(tmp_path / "checkpoint.pt", write, "w")
    assert len(seen) == 1 and seen[0].startswith(".checkpoint.pt.")
    (tmp_path / seen[0]).write_text("left by a killed write")
    assert [p.name for p in remove_stale_temps(tmp_path, "checkpoint.pt")] == seen
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_full_disk_names_the_file_and_keeps_the_one_before(tmp_path):
    """A full disk's OSError names no file: the atomic write names the one it could not write,
    removes its temporary file, and leaves the file that was there as it was."""
    import errno
    (tmp_path / "metrics.jsonl").write_text("epoch 1\n")

    def full(f):
        f.write("epoch 1\nepoch 2")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(OSError, match=r"\[Errno 28\] No space left on device: could not write "
                                      r".*metrics.jsonl \(a file there before is kept as it was"):
        _atomic(tmp_path / "metrics.jsonl", full, "w")
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]
    assert (tmp_path / "metrics.jsonl").read_text() == "epoch 1\n"
    with pytest.raises(PermissionError):                 # one that names its file: as it is
        _atomic(tmp_path / "x", lambda f: (_ for _ in ()).throw(PermissionError(13, "no", "x")),
                "w")


def test_atomic_torch_save_moves_every_tensor_to_the_cpu_first(tmp_path, monkeypatch):
    """What is saved is on_cpu's copy of the whole object (on a GPU run: CPU tensors; the
    gpu-marked test in test_train.py checks the result there)."""
    moved, real = [], io_.on_cpu

    def spy(obj):
        out = real(obj)
        moved.append(out)
        return out

    monkeypatch.setattr(io_, "on_cpu", spy)
    obj = {"state": {"w": torch.ones(2)}, "rows": [torch.zeros(1)]}
    io_.atomic_torch_save(tmp_path / "c.pt", obj)
    whole = [m for m in moved if isinstance(m, dict) and set(m) == {"state", "rows"}]
    assert len(whole) == 1 and torch.equal(whole[0]["state"]["w"], torch.ones(2))
    back = torch.load(tmp_path / "c.pt", weights_only=True)
    assert back["state"]["w"].device.type == "cpu" and torch.equal(back["rows"][0], torch.zeros(1))


def test_numpy_dict_keys_become_python_values(tmp_path):
    """plain() converts numpy scalars in dict keys too (a class-weight dict keyed by
    np.int64), so a checkpoint holding them loads with weights_only=True."""
    obj = {"weights": {np.int64(3): np.float64(0.5)}, "rows": (np.int32(1), [np.float32(2)])}
    out = plain(obj)
    assert out == {"weights": {3: 0.5}, "rows": (1, [2.0])}
    (key,) = out["weights"]
    assert type(key) is int and type(out["weights"][key]) is float
    torch.save(out, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True) == out


@pytest.mark.parametrize("data", [bytes(4096), b""], ids=["nul-bytes", "empty"])
def test_a_checkpoint_of_nul_bytes_or_none_is_corrupted_not_text(tmp_path, data):
    """What a crash can leave of a file whose data never reached the disk is reported as
    corrupted, not as a text file passed by mistake."""
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes(data)
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        safe_torch_load(broken)
    text = tmp_path / "config.json"
    text.write_text('{"objective": "sscls"}')
    with pytest.raises(CheckpointError, match=r"not a checkpoint \(a text file\)"):
        safe_torch_load(text)


def test_an_image_passed_for_a_checkpoint_is_named_as_one(tmp_path):
    """samples.png passed as the sampler is "not a checkpoint (a PNG image)", not a damaged
    checkpoint to delete."""
    from PIL import Image
    for name, kind in (("samples.png", "PNG"), ("x.jpg", "JPEG")):
        Image.new("L", (8, 8)).save(tmp_path / name)
        with pytest.raises(CheckpointError, match=rf"not a checkpoint \(a {kind} image\): pass "
                                                  rf"a run folder"):
            safe_torch_load(tmp_path / name)


def test_the_run_lock_is_let_go_for_a_forked_child_too_and_skipped_without_flock(tmp_path,
                                                                                   monkeypatch):
    """run_lock: a child forked inside the block (a DataLoader worker, say) does not keep the
    folder locked once the block ends; another process is refused while it is held; a file
    system without flock (ENOLCK) runs unlocked, as before the lock existed."""
    import errno
    import multiprocessing as mp
    import subprocess
    import sys
    fcntl = pytest.importorskip("fcntl")
    from ganaug._io import RunFolderBusy, run_lock

    with run_lock(tmp_path):
        child = mp.get_context("fork").Process(target=__import__("time").sleep, args=(30,))
        child.start()
        probe = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\ntry:\n"
                 "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    print('free')\n"
                 "except BlockingIOError:\n    print('held')\n")
        held = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True,
                              text=True).stdout.strip()
    try:
        assert held == "held"
        with run_lock(tmp_path):                  # the child still lives: the lock is free
            pass
    finally:
        child.terminate()
        child.join()

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(fcntl, "flock", no_flock)
    with run_lock(tmp_path):
        pass
    assert RunFolderBusy.__mro__[1] is OSError


def test_a_folder_let_go_is_locked_again_by_the_next_run_lock(tmp_path):
    """run_lock: a folder locked and let go is locked again the next time (a second run in the
    same process, e.g. two fit() calls on one folder in a notebook, takes the lock again)."""
    fcntl = pytest.importorskip("fcntl")
    with run_lock(tmp_path):
        pass
    fd = os.open(tmp_path, os.O_RDONLY)             # another holder (its own open file)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(RunFolderBusy, match=f"run folder {tmp_path} is being written"):
            with run_lock(tmp_path):
                pass
    finally:
        os.close(fd)


def test_a_folder_that_cannot_be_opened_runs_unlocked(tmp_path, monkeypatch):
    """run_lock: a folder this user cannot open (os.open fails) runs unlocked, no error."""
    pytest.importorskip("fcntl")
    real, asked = os.open, []

    def refuse(path, flags, *args, **kwargs):
        if os.fspath(path) == os.path.realpath(tmp_path):
            asked.append(path)
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", refuse)
    ran = False
    with run_lock(tmp_path):
        ran = True
    assert ran and asked


def test_run_lock_is_reentrant_for_another_spelling_of_the_folder(tmp_path):
    """run_lock is re-entrant per folder, however the folder is spelled (a symlink to it, a
    trailing '.'): the inner block does not find the folder busy."""
    pytest.importorskip("fcntl")
    run = tmp_path / "run"
    run.mkdir()
    link = tmp_path / "link"
    link.symlink_to(run, target_is_directory=True)
    with run_lock(run):
        with run_lock(link):
            pass
        with run_lock(f"{run}{os.sep}."):
            pass


def _raiser(e):
    def write(f):
        raise e
    return write


def test_an_oserror_that_names_its_file_is_raised_as_it_is(tmp_path):
    """_atomic's full-disk naming: only an OSError that names no file and has an errno is
    replaced; the replacement keeps the errno and names the whole path."""
    e = PermissionError(errno.EACCES, "Permission denied", "elsewhere.txt")
    with pytest.raises(PermissionError) as got:
        _atomic(tmp_path / "x", _raiser(e), "w")
    assert got.value is e and got.value.filename == "elsewhere.txt"


def test_an_oserror_without_errno_is_raised_as_it_is(tmp_path):
    e = OSError("the device went away")
    with pytest.raises(OSError) as got:
        _atomic(tmp_path / "x", _raiser(e), "w")
    assert got.value is e


def test_the_replacement_keeps_the_errno_and_names_the_whole_path(tmp_path):
    path = tmp_path / "sub" / "metrics.jsonl"
    with pytest.raises(OSError) as got:
        _atomic(path, _raiser(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))), "w")
    assert got.value.errno == errno.EDQUOT
    assert f"could not write {path} (" in str(got.value)


@pytest.mark.parametrize("version", [0, True, -1])
def test_version_0_or_true_is_not_valid(tmp_path, version):
    """safe_torch_load's version check: 0, -1 and True are not versions."""
    torch.save({"format": "ganaug", "version": version}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"has no valid 'version' \("):
        safe_torch_load(tmp_path / "c.pt")


@pytest.mark.parametrize("name, fmt, kind", [("a.gif", "GIF", "GIF"), ("a.bmp", "BMP", "BMP"),
                                             ("a.tif", "TIFF", "TIFF")])
def test_gif_bmp_and_tiff_passed_for_a_checkpoint_are_named_as_images(tmp_path, name, fmt,
                                                                      kind):
    Image = pytest.importorskip("PIL.Image")
    Image.new("L", (8, 8)).save(tmp_path / name, format=fmt)
    with pytest.raises(CheckpointError, match=rf"not a checkpoint \(a {kind} image\): pass a "
                                              rf"run folder"):
        safe_torch_load(tmp_path / name)


@pytest.mark.parametrize("text", ["BM notes about the run\n", "GIF8 is not a gif\n"])
def test_a_text_file_that_starts_like_an_image_magic_is_a_text_file(tmp_path, text):
    path = tmp_path / "notes.txt"
    path.write_text(text)
    with pytest.raises(CheckpointError, match=r"not a checkpoint \(a text file\)"):
        safe_torch_load(path)
