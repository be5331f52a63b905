"""experiment's functions as the Python API calls them: run folder names and claiming, the
seeds' aggregation and resume, evaluate_run's data root, split, epoch and eval-best.json, and
sample_run's seed, classes and argument checks. From a mutation run of experiment.py; each
test failed on its mutant."""
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from _formats import write_image_classes
from ganaug import CLSGAN, TrainConfig
from ganaug.data import DataNotFoundError
from ganaug.data.sources import folder_classes
from ganaug import experiment as E
from ganaug import monitor as M
from ganaug.cli import main
from ganaug.experiment import (_check_folder_classes, aggregate_seeds, claim_run_dir,
                               default_run_dir, evaluate_run, fit, fit_seeds, sample_run)


def test_run_folder_names():
    """default_run_dir: a long dataset name keeps its end (the folder's own name), 40 characters,
    other characters than [A-Za-z0-9_.-] as "_"; an image folder is folder-<its name>."""
    name = "a" * 30 + "-the-part-that-tells-them-apart"
    p = default_run_dir(TrainConfig(dataset=f"folder:/data/x/{name}", objective="cls"), "R")
    assert p.parent.name == "R"
    assert re.fullmatch(r"\d{8}-\d{6}-(.*)-cls", p.name).group(1) == f"folder-{name}"[-40:]
    assert p.name.endswith("-the-part-that-tells-them-apart-cls")
    q = default_run_dir(TrainConfig(dataset="folder:~/my images!", objective="sscls"), "R")
    assert q.name.endswith("-folder-my_images_-sscls")
    assert default_run_dir(TrainConfig(dataset="digits", objective="sscls")).name.endswith(
        "-digits-sscls")


def test_the_first_run_folder_creates_its_root(tmp_path, monkeypatch):
    """claim_run_dir creates the root too (the first run in a fresh directory: no runs/ yet)."""
    p = claim_run_dir(TrainConfig(), tmp_path / "new" / "runs")
    assert p.is_dir() and p.parent == tmp_path / "new" / "runs"
    monkeypatch.chdir(tmp_path)
    q = claim_run_dir(TrainConfig())                # the default root, "runs", made here
    assert q.is_dir() and q.parent.name == "runs"


def _seed_summary(acc, best=None):
    r = {"test_accuracy": acc, "test_error": 1 - acc, "balanced_accuracy": acc, "macro_f1": acc}
    if best is not None:
        r.update(best_test_accuracy=best, best_test_error=1 - best)
    return r


def test_best_epoch_means_need_every_seed_and_runs_are_needed():
    """aggregate_seeds: the best epoch's test accuracy is averaged only when every seed has one
    (a kept seed's summary from a run without validation images lacks it); no runs is an error."""
    both = aggregate_seeds([_seed_summary(0.5, 0.6), _seed_summary(0.7, 0.8)])
    assert both["best_test_accuracy_mean"] == pytest.approx(0.7)
    mixed = aggregate_seeds([_seed_summary(0.5, 0.6), _seed_summary(0.7)])
    assert "best_test_accuracy_mean" not in mixed
    assert mixed["test_accuracy_mean"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="no runs to aggregate"):
        aggregate_seeds([])


def test_no_seeds_is_refused(tmp_path):
    """fit_seeds (Python API) with no seeds is a ValueError before any work."""
    with pytest.raises(ValueError, match="at least one seed"):
        fit_seeds(TrainConfig(epochs=1), seeds=[], out=tmp_path / "runs", progress=False,
                  tensorboard=False)
    assert not (tmp_path / "runs").exists()


def test_seeds_resume_starts_a_missing_seed_beside_a_finished_one(tmp_path, capsys):
    """fit_seeds(resume=True) keeps the finished seeds and starts the missing ones (only when no
    seed has a run is there "nothing to resume")."""
    flags = ["--epochs", "1", "--labels-per-class", "2", "--quiet", "--no-tensorboard"]
    out = tmp_path / "o"
    assert main(["train", *flags, "--seeds", "0", "--out", str(out)]) == 0
    (out / "summary.json").unlink()              # as if stopped before seed 1 began
    stale = out / ".summary.json.k2j3.tmp"          # a kill -9 in the summary's write
    stale.write_bytes(b"half")
    capsys.readouterr()
    assert main(["train", *flags, "--seeds", "0,1", "--resume", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"already finished in {out / 'seed-0'}" in err
    assert not stale.exists() and \
        f"deleted {stale.name}, left by a run killed while writing summary.json" in err
    s = json.loads((out / "summary.json").read_text())
    assert s["seeds"] == [0, 1] and (out / "seed-1" / "checkpoint.pt").is_file()


def test_a_resume_without_recipe_keeps_the_recipe_in_the_summary(tmp_path):
    """fit_seeds: a resumed multi-seed run started from a recipe names that recipe in its summary
    (as each seed's summary does), also when the resume is not given --recipe again."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 1\n")
    cfg = TrainConfig(epochs=1, labels_per_class=2)
    out = tmp_path / "m"
    kw = dict(progress=False, log=lambda s: None, tensorboard=False)
    fit_seeds(cfg, [0], out, recipe=recipe, **kw)
    s = fit_seeds(cfg, [0], out, resume=True, **kw)         # seed 0 finished: kept
    assert s["runs"][0]["recipe"] == str(recipe)
    assert s["recipe"] == str(recipe)
    assert json.loads((out / "summary.json").read_text())["recipe"] == str(recipe)


def test_a_relative_data_root_is_made_absolute(tmp_path, monkeypatch):
    """evaluate_run(data_root=RELATIVE) for an image-folder run: the folder is recorded as an
    absolute path in the result (as the config records it), not as typed."""
    img, run = write_image_classes(tmp_path / "img", n=6), tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{img}", "--epochs", "1", "--out", str(run),
                 "--quiet", "--no-tensorboard", "--labels-per-class", "2"]) == 0
    shutil.move(str(img), str(tmp_path / "moved"))
    monkeypatch.chdir(tmp_path)
    r = evaluate_run("run", data_root="moved", device="cpu")
    assert r["dataset"] == f"folder:{os.path.abspath('moved')}"
    # a --data-root that is not there names that path, not the run's folder as moved
    with pytest.raises(DataNotFoundError, match=r"--data-root \(data_root=\) mvoed does not "
                                                r"exist: pass the folder that now holds the "
                                                r"images of run run \(it trained on .*img\)"):
        evaluate_run("run", data_root="mvoed", device="cpu")


def test_a_data_root_one_level_too_high_is_refused_before_reading_images(tmp_path, monkeypatch):
    """evaluate_run(data_root=) of an image-folder run: a folder whose class sub-folders are
    not the run's (one level too high) is refused from the folder names, before any image
    is decoded, and the error names the sub-folder that holds the run's classes."""
    from ganaug.data import sources
    data = tmp_path / "data"
    img, run = write_image_classes(data / "images", n=6, names=("cat", "dog")), tmp_path / "run"
    write_image_classes(data / "other", n=3, names=("x",))
    assert main(["train", "--dataset", f"folder:{img}", "--epochs", "1", "--out", str(run),
                 "--quiet", "--no-tensorboard", "--labels-per-class", "2"]) == 0

    def no_reading(*a, **k):
        raise AssertionError("images decoded")
    with monkeypatch.context() as m:
        m.setattr(sources, "_read_folder", no_reading)
        with pytest.raises(DataNotFoundError, match=rf"image folder {data} holds the class "
                                                    rf"sub-folders images, other, not the 2 "
                                                    rf"classes run {run} trained on \(cat, dog\): "
                                                    rf"{img} holds them: pass it as --data-root"):
            evaluate_run(run, data_root=str(data), device="cpu")
        with pytest.raises(DataNotFoundError, match=r"sub-folders x, not the 2 classes .*: pass "
                                                    r"the folder that holds them as --data-root"):
            evaluate_run(run, data_root=str(data / "other"), device="cpu")
    assert evaluate_run(run, data_root=str(img), device="cpu")["num_test"] == 3
    (img / "emu").mkdir()                           # the run's folder, a class more since
    write_image_classes(img, n=6, names=("emu",))
    with pytest.raises(DataNotFoundError, match=r"if this is the run's folder, its classes "
                                                r"changed since it trained \(new: emu\): put "
                                                r"them back as they were"):
        evaluate_run(run, data_root=str(img), device="cpu")


@pytest.fixture(scope="module")
def val_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("r") / "run"
    assert main(["train", "--epochs", "2", "--labels-per-class", "2", "--val-per-class", "2",
                 "--data-seed", "3", "--out", str(out), "--quiet", "--no-tensorboard"]) == 0
    return out


def test_the_result_names_the_checkpoints_epoch(val_run):
    """evaluate_run: the result names the checkpoint's epoch; a run of another data_seed (3)
    is evaluated on its own split (data_seed 0's labeled images differ, which the check that
    this is the run's own data would refuse)."""
    r = evaluate_run(val_run, device="cpu")
    assert r["epoch"] == 2 and r["checkpoint"] == "checkpoint.pt"
    assert r["test_error"] == pytest.approx(1 - r["test_accuracy"])


def test_best_and_save_write_eval_best_json(val_run):
    """With best=True, save=True the result is written to eval-best.json; eval.json, the last
    epoch's, is left alone."""
    run = val_run
    (run / "eval.json").unlink(missing_ok=True)
    r = evaluate_run(run, device="cpu", best=True, save=True)
    assert r["checkpoint"] == "best.pt"
    assert json.loads((run / "eval-best.json").read_text())["checkpoint"] == "best.pt"
    assert not (run / "eval.json").exists()


def test_data_root_reaches_the_loader(tmp_path, monkeypatch):
    """evaluate_run(data_root=...) for a torchvision dataset reads the data from that root."""
    run = tmp_path / "o"
    run.mkdir()
    CLSGAN((1, 28, 28), 10, "mlp").save(run / "checkpoint.pt", extra={
        "config": TrainConfig(dataset="mnist").resolved().to_dict(), "epoch": 1})
    seen = []

    def loader(name, root, download, image_size):
        seen.append((name, root))
        raise RuntimeError("stop")

    monkeypatch.setattr(E, "load_dataset", loader)
    with pytest.raises(RuntimeError, match="stop"):
        E.evaluate_run(run, data_root=str(tmp_path / "elsewhere"), device="cpu")
    assert seen == [("mnist", str(tmp_path / "elsewhere"))]


def _sampler_run(tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    CLSGAN((1, 8, 8), 3, "mlp", ["x", "y", "z"], g_hidden=[16], d_hidden=[16]).save(
        run / "checkpoint.pt", extra={"config": {"objective": "sscls"}})
    return run


def test_the_seed_reaches_the_samples_and_the_pt_names_the_classes(tmp_path):
    """sample_run: its seed seeds the samples, and a .pt holds images, labels and the class
    names."""
    run = _sampler_run(tmp_path)
    got = torch.load(sample_run(run, 2, tmp_path / "s.pt", seed=5, device="cpu"),
                     weights_only=True)
    want, labels = CLSGAN.load(run).sample_per_class(2, 5)
    assert torch.equal(got["images"], want) and torch.equal(got["labels"], labels)
    assert got["classes"] == ["x", "y", "z"]


def test_the_seed_reaches_the_standing_statistics(tmp_path):
    """sample_run's seed also seeds the standing statistics' own samples."""
    run = _sampler_run(tmp_path)
    got = torch.load(sample_run(run, 2, tmp_path / "s.pt", seed=5, device="cpu",
                                standing_stats=64), weights_only=True)
    m = CLSGAN.load(run)
    assert m.standing_statistics(64, seed=5)
    assert torch.equal(got["images"], m.sample_per_class(2, 5)[0])


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_per_class_must_be_positive(tmp_path, bad):
    """sample_run: --per-class must be a positive integer, refused before any work."""
    run = _sampler_run(tmp_path)
    with pytest.raises(ValueError, match=r"per_class \(--per-class\) must be a positive integer"):
        sample_run(run, bad, tmp_path / "s.pt", device="cpu")
    assert not (tmp_path / "s.pt").exists()


def test_evaluate_takes_an_image_set(tiny):
    """evaluate(model, data) on a dataset that is no ImageSet: a TypeError that names what it
    takes (it was an AttributeError about .images)."""
    from torch.utils.data import TensorDataset
    from ganaug import evaluate
    model = CLSGAN((1, 8, 8), 4, "mlp")
    with pytest.raises(TypeError, match=r"evaluate takes an ImageSet .*got TensorDataset"):
        evaluate(model, TensorDataset(tiny.images, tiny.targets))
    assert set(evaluate(model, tiny)) >= {"accuracy", "per_class_accuracy"}


def test_a_run_trained_in_python_on_own_data_is_told_to_evaluate_in_python(tiny, tmp_path):
    """train(..., out=) on an ImageSet of one's own writes a config that names only the
    default dataset (digits): ganaug eval cannot reload that data, and says how to evaluate
    the run instead."""
    from _tiny import _run
    _run(tiny, tmp_path / "run", epochs=1)
    with pytest.raises(ValueError, match=r"its config names digits, which cannot differ.*"
                                         r"ganaug.evaluate\(CLSGAN.load\(RUN\), test_set\)"):
        evaluate_run(tmp_path / "run", device="cpu", quality=False)


def test_a_data_root_that_is_a_file_is_named_as_one(tmp_path):
    """evaluate_run(data_root=A FILE) for an image-folder run names that it is a file."""
    img, run = write_image_classes(tmp_path / "img", n=6), tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{img}", "--epochs", "1", "--out", str(run),
                 "--quiet", "--no-tensorboard", "--labels-per-class", "2"]) == 0
    afile = tmp_path / "notes.txt"
    afile.write_text("not images")
    with pytest.raises(DataNotFoundError, match=r"--data-root \(data_root=\) .*notes\.txt is a "
                                                r"file: pass the folder that now holds the "
                                                r"images of run"):
        evaluate_run(run, data_root=str(afile), device="cpu", quality=False)


class _Writer:
    def __init__(self):
        self.images = []

    def add_scalar(self, tag, value, step):
        pass

    def add_image(self, tag, image, step):
        self.images.append(tag)

    def flush(self):
        pass

    def close(self):
        pass


def test_a_supervised_run_logs_no_sample_grid(tmp_path, monkeypatch):
    """fit() of an objective that trains no generator logs no TensorBoard sample grid (its
    samples would be noise); a GAN objective's run does."""
    for objective, grids in (("supervised", 0), ("cls", 1)):
        writer = _Writer()
        monkeypatch.setattr(M, "open_tensorboard", lambda d: writer)
        cfg = TrainConfig(objective=objective, epochs=1, batch_size=128, labels_per_class=2)
        fit(cfg, tmp_path / objective, progress=False, log=lambda s: None, tensorboard=True)
        assert writer.images.count("samples") == grids, objective


def test_eval_never_tells_to_pass_download(tmp_path, monkeypatch):
    """The data-not-found error of a run's dataset says how to point --data-root at the
    files; `ganaug eval` has no --download, so its copy of the error does not offer it
    (the one train gives does)."""
    from pathlib import Path
    from ganaug.data.sources import DOWNLOAD_HINT, _missing
    missing = _missing("MNIST", Path("/nowhere/MNIST/raw"), "train-images-idx3-ubyte",
                       "MNIST/raw/")
    assert str(missing).endswith(DOWNLOAD_HINT) and "(data_root=, or load_dataset's root=)" in str(missing)
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(run), "--quiet", "--no-tensorboard"]) == 0

    def absent(*a, **k):
        raise missing
    monkeypatch.setattr(E, "load_dataset", absent)
    with pytest.raises(DataNotFoundError, match=r"MNIST not found: .* point --data-root at it$"):
        evaluate_run(run, device="cpu")
    # the former torchvision MNIST files (read when MNIST/raw lacks the IDX files), damaged
    from ganaug.data.sources import _read_mnist_processed
    bad = tmp_path / "MNIST" / "processed" / "training.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError) as e:
        _read_mnist_processed(bad)
    assert str(e.value).endswith(DOWNLOAD_HINT)
    damaged = e.value

    def unreadable(*a, **k):
        raise damaged
    monkeypatch.setattr(E, "load_dataset", unreadable)
    with pytest.raises(ValueError, match=r"could not be read as torchvision's MNIST file .*"
                                         r"put MNIST's four raw files in MNIST/raw$"):
        evaluate_run(run, device="cpu")


def _dirs(root: Path, *names):
    for n in names:
        (root / n).mkdir(parents=True)
    return root


def test_folder_classes_of_a_train_folder_without_test_is_the_folder_itself(tmp_path):
    """folder_classes reads the classes load_folder would (train/ alone is not a split); the
    folder-class check before an eval (F01 F03-F06): ids "0".."K-1" are left to the data check, half the
    classes changed is another folder, hidden folders are not offered."""
    assert folder_classes(_dirs(tmp_path / "a", "train/cat", "train/dog")) == ["train"]
    assert folder_classes(_dirs(tmp_path / "b", "train/cat", "train/dog", "test/cat",
                                "test/dog")) == ["cat", "dog"]


def test_id_class_names_are_left_to_the_data_check(tmp_path):
    folder = _dirs(tmp_path, "a", "b")
    assert _check_folder_classes(str(folder), ["0", "1"], tmp_path / "run") is None


def test_half_the_classes_other_is_another_folder_not_a_changed_one(tmp_path):
    folder = _dirs(tmp_path, "cat", "emu")
    with pytest.raises(DataNotFoundError, match="pass the folder that holds them as "
                                                "--data-root"):
        _check_folder_classes(str(folder), ["cat", "dog"], tmp_path / "run")


def test_a_hidden_folder_is_not_offered_as_the_data_root(tmp_path):
    folder = _dirs(tmp_path / "d", ".old/cat", ".old/dog", "x")
    with pytest.raises(DataNotFoundError) as e:
        _check_folder_classes(str(folder), ["cat", "dog"], tmp_path / "run")
    assert ".old" not in str(e.value)


def test_a_sub_folder_with_two_train_splits_does_not_hide_the_class_error(tmp_path):
    folder = _dirs(tmp_path / "d", "x/Train", "x/train", "y")
    with pytest.raises(DataNotFoundError, match="holds the class sub-folders x, y, not the 2 "
                                                "classes"):
        _check_folder_classes(str(folder), ["cat", "dog"], tmp_path / "run")


def test_build_model_resolves_the_config_so_spectral_norm_trains_as_the_readme_builds_it():
    """The README's flow, build_model(config, labeled) then train(model, ..., config), with an
    unresolved config of lipschitz='spectral-norm': the model is built spectrally normalised
    (the config's resolution adds norm='spectral'), so train accepts it."""
    from ganaug import build_model, load_dataset, split_labeled, train
    train_set, _ = load_dataset("digits")
    labeled, unlabeled = split_labeled(train_set, 2, seed=0)
    cfg = TrainConfig(objective="gan", lipschitz="spectral-norm", epochs=1, batch_size=16)
    model = build_model(cfg, labeled)
    assert model.net_options["norm"] == "spectral"
    assert "norm" not in cfg.net_options                  # the caller's config unchanged
    state = train(model, labeled, unlabeled, cfg, progress=False, log=lambda s: None)
    assert len(state.history) == 1


def test_a_seeds_root_busy_in_another_process_is_refused_before_any_seed_trains(tmp_path):
    """fit_seeds locks the multi-seed root: another holder of its flock (as run_lock takes
    it) stops it with RunFolderBusy before any seed trains."""
    fcntl = pytest.importorskip("fcntl")
    from ganaug._io import RunFolderBusy
    from ganaug.experiment import fit_seeds
    out = tmp_path / "o"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)                  # another open file: another holder
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunFolderBusy, match="is being written by another process"):
            fit_seeds(TrainConfig(epochs=1, labels_per_class=2), seeds=[0], out=out,
                      progress=False, log=lambda s: None, tensorboard=False)
    finally:
        os.close(fd)
    assert not (out / "seed-0").exists() and not (out / "summary.json").exists()
