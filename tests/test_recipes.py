"""Recipes: loading, precedence (defaults < recipe < flags), errors, and each shipped recipe
run for a few steps on small files in its dataset's exact on-disk format; multi-seed runs."""
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

from ganaug import TrainConfig, fit
from ganaug.cli import main
from ganaug.recipes import RecipeError, load_recipe, recipe_config

from _formats import write_cifar10, write_mnist, write_svhn
from conftest import SHARED_DATA

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SHIPPED = {"mnist-100.yaml": ("mnist", 10, "mlp"), "svhn-1000.yaml": ("svhn", 100, "conv"),
           "cifar10-4000.yaml": ("cifar10", 400, "conv")}
FAST = ["--epochs", "1", "--quiet", "--no-tensorboard"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_recipes_define_their_benchmark(name):
    path = RECIPES / name
    values = load_recipe(path)
    dataset, per_class, arch = SHIPPED[name]
    assert values["dataset"] == dataset and values["labels_per_class"] == per_class
    assert values["arch"] == arch and values["data_seed"] == 0
    cfg = recipe_config(path).resolved()
    assert cfg.objective == "sscls" and cfg.batch_size == 64
    # the paper's learning rate, or a departure the header names (MNIST: Improved GAN's 3e-3)
    assert cfg.lr == pytest.approx(1e-3) or ("lr" in values and "learning rate" in path.read_text())
    # only differences from the defaults (plus the keys that define the benchmark)
    defaults = TrainConfig().to_dict()
    assert all(values[k] != defaults[k] for k in values
               if k not in ("labels_per_class", "data_seed", "arch", "epochs"))
    header = path.read_text()
    assert f"ganaug train --recipe recipes/{name} --data-root DIR" in header
    for word in ("Reproduces", "data_seed 0", "Epochs"):
        assert word in header


def _recipe(tmp_path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_recipe_values_are_typed_and_overridable(tmp_path):
    path = _recipe(tmp_path, "# comment\nepochs: 3\nlr: 1\nlabels_per_class: all\n"
                             "net_options: {d_hidden: [16]}\n")
    values = load_recipe(path)
    assert values == {"epochs": 3, "lr": 1.0, "labels_per_class": None,
                      "net_options": {"d_hidden": [16]}}
    assert isinstance(values["lr"], float)
    cfg = recipe_config(path, epochs=7)
    assert cfg.epochs == 7 and cfg.lr == 1.0 and cfg.batch_size == TrainConfig().batch_size
    assert load_recipe(_recipe(tmp_path, "")) == {}


BAD = [
    ("epochs: 3\nlabels-per-class: 5\n", "unknown key 'labels-per-class' (did you mean "
                                         "'labels_per_class'?)"),
    ("epochs: ten\n", "epochs must be int, got 'ten'"),
    ("epochs: true\n", "epochs must be int, got True"),
    ("lr: null\n", "lr must be float, got None"),
    ("labels_per_class: some\n", "labels_per_class must be a positive integer or 'all'"),
    ("download: 1\n", "download must be bool, got 1"),
    ("- epochs: 3\n", "must be a mapping"),
    ("epochs: [1\n", "is not valid YAML: expected ',' or ']', but got '<stream end>' (line 2, "
                     "column 1), while parsing a flow sequence (line 1, column 9)"),
    ("epochs: 3\nepochs: 5\n", "is not valid YAML: key 'epochs' is given twice (line 2, "
                               "column 1)"),
    ("? [a, b]\n: 3\n", "a key must be a name, not a list"),
    ("lr: fast\n", "lr must be float, got 'fast'"),
    ("data_root: 1e5\n", "data_root must be str, got 100000.0 (YAML read it as float: quote "
                        "text, e.g. data_root: '~/data')"),
    ("data_root: ~\n", "data_root must be str, got None (YAML read it as null: quote text, "
                       "e.g. data_root: '~/data')"),
    ("data_root: no\n", "data_root must be str, got False (YAML read it as bool"),
    ("dataset: yes\n", "dataset must be str, got True (YAML read it as bool: quote text)"),
    ("epochs: 2.5\n", "epochs must be int, got 2.5"),
    ("image_size: 32.0\n", "image_size must be int or null, got 32.0"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_recipes_are_one_clear_line_before_any_work(text, message, tmp_path, capsys):
    path = _recipe(tmp_path, text)
    with pytest.raises(RecipeError, match="recipe"):
        load_recipe(path)
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(path), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganaug: error: recipe") and message in err and "\n" not in err
    assert not out.exists()


def test_a_flag_that_clashes_with_a_recipe_value_names_the_recipe_s_setting(tmp_path, capsys):
    """--objective cls against a recipe's fm_layers: all (and consistency): the error names
    the recipe's settings it comes from and the flags that override them, before any work;
    the same clash made by flags alone gets no such note."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("fm_layers: all\nconsistency: 3.0\n")
    out = tmp_path / "o"
    assert main(["train", "--recipe", str(recipe), "--objective", "cls", "--out", str(out)]) == 2
    assert (f"or leave fm_layers at 'last' (--recipe {recipe} sets fm_layers: 'all' "
            f"(--fm-layers overrides it))") in capsys.readouterr().err
    assert main(["train", "--recipe", str(recipe), "--objective", "cls", "--fm-layers", "last",
                 "--out", str(out)]) == 2
    assert (f"(--recipe {recipe} sets consistency: 3.0 (--consistency overrides it))"
            in capsys.readouterr().err)
    assert main(["train", "--objective", "cls", "--fm-layers", "all", "--out", str(out)]) == 2
    assert capsys.readouterr().err.rstrip().endswith("or leave fm_layers at 'last'")
    recipe.write_text("epochs: 3\n")       # named in the message as a word, not its cause
    assert main(["train", "--recipe", str(recipe), "--lr-decay", "2", "--out", str(out)]) == 2
    assert capsys.readouterr().err.rstrip().endswith("must be in (0, 1], got 2.0")
    assert not out.exists()


def test_yaml_1_1_spellings_of_documented_values_are_read_as_meant(tmp_path):
    """PyYAML reads `off` as False and `1e-3` (no dot) as a string; both are what the docs
    and the flags spell."""
    path = _recipe(tmp_path, "amp: off\ncompile: on\nfused_adam: off\nlr: 1e-3\n")
    assert load_recipe(path) == {"amp": "off", "compile": "on", "fused_adam": "off",
                                 "lr": 0.001}
    assert recipe_config(path).resolved().amp == "off"


def test_exponent_floats_without_a_dot_are_floats_at_every_depth(tmp_path):
    """YAML 1.2 (and Python) read ``1e-3`` as a number; a recipe's net_options got the string
    before, and the resolved config recorded it as one."""
    path = _recipe(tmp_path, "net_options:\n  input_noise: 1e-3\n  hidden_noise: 5E-1\n"
                             "  d_hidden: [5e2, 250]\n  norm: none\n")
    opts = load_recipe(path)["net_options"]
    assert opts == {"input_noise": 0.001, "hidden_noise": 0.5, "d_hidden": [500.0, 250],
                    "norm": "none"}
    assert all(isinstance(v, float) for v in (opts["input_noise"], opts["hidden_noise"]))
    path = _recipe(tmp_path, "net_options: {a: 1.5, b: .5, c: -.inf, d: nan, e: 1_000, "
                             "f: '1e-3', g: 1e, h: e5}\n")
    opts = load_recipe(path)["net_options"]
    assert opts["a"] == 1.5 and opts["b"] == 0.5 and opts["c"] == float("-inf")
    assert opts["e"] == 1000 and isinstance(opts["e"], int)
    assert [opts[k] for k in "dfgh"] == ["nan", "1e-3", "1e", "e5"]   # quoted or not numbers


def test_only_labels_per_class_spells_none_as_all_and_null_fills_optional_fields(tmp_path):
    path = _recipe(tmp_path, "data_root: all\nimage_size: null\ngp_weight: null\n"
                             "g_cond_weight: 2\nlabels_per_class: all\n")
    assert load_recipe(path) == {"data_root": "all", "image_size": None, "gp_weight": None,
                                 "g_cond_weight": 2.0, "labels_per_class": None}
    assert isinstance(load_recipe(path)["g_cond_weight"], float)


def test_a_folder_or_a_binary_file_is_not_a_recipe(tmp_path, capsys):
    binary = tmp_path / "r.yaml"
    binary.write_bytes(bytes([0x89, 0x50, 0xFF, 0x00]))
    for path, message in ((tmp_path, "is a folder; pass a .yaml file"),
                          (binary, "is not a text file")):
        assert main(["train", "--recipe", str(path), "--out", str(tmp_path / "run"),
                     *FAST]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"ganaug: error: recipe {path}") and message in err
        assert not (tmp_path / "run").exists()


def test_flags_undo_a_recipes_switch_and_auto_restores_a_computed_default(tmp_path):
    from ganaug.cli_args import _parser
    parse = _parser().parse_args
    args = parse(["train", "--no-balanced-labels", "--no-download", "--gp-weight", "auto",
                  "--g-cond-weight", "none", "--image-size", "auto"])
    assert (args.balanced_labels, args.download) == (False, False)
    assert (args.gp_weight, args.g_cond_weight, args.image_size) == (None, None, None)
    path = _recipe(tmp_path, "balanced_labels: true\ngp_weight: 0.5\nepochs: 1\n")
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(path), "--out", str(out), "--no-balanced-labels",
                 "--lipschitz", "weight-decay", "--gp-weight", "auto", *FAST]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["balanced_labels"] is False and cfg["lipschitz"] == "weight-decay"


def test_missing_recipe_file(tmp_path, capsys):
    assert main(["train", "--recipe", str(tmp_path / "nope.yaml"), "--out",
                 str(tmp_path / "run"), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"ganaug: error: recipe {tmp_path / 'nope.yaml'} does not exist"


def test_flags_override_recipe_and_the_run_records_it(tmp_path):
    path = _recipe(tmp_path, "epochs: 5\nlr: 0.002\nlabels_per_class: 5\nbatch_size: 32\n")
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(path), "--out", str(out), "--batch-size", "128",
                 *FAST]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["batch_size"] == 128            # flags win
    assert cfg["lr"] == 0.002 and cfg["labels_per_class"] == 5        # the recipe's
    assert cfg["ema_decay"] == TrainConfig().ema_decay                # defaults stay
    # the resolved configuration: what `auto` and None became for this run
    assert (cfg["lipschitz"], cfg["g_loss"], cfg["gp_weight"], cfg["g_cond_weight"]) == \
        ("zero-gp", "feature-matching", 0.1, 3.0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"] == str(path) and summary["num_labeled"] == 50
    assert summary["test_error"] == pytest.approx(1 - summary["test_accuracy"])
    assert (out / "recipe.yaml").read_text() == path.read_text()
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # resuming needs only --out: the summary still names the recipe the run came from
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet",
                 "--no-tensorboard"]) == 0
    assert json.loads((out / "summary.json").read_text())["recipe"] == str(path)


# ------------------------------------------------------- the shipped recipes, a few steps

def _mnist_like(root, per_class: int, rng) -> None:
    x = rng.integers(0, 256, (10 * per_class, 28, 28))
    y = np.arange(10 * per_class) % 10
    write_mnist(root, x, y, x[:50], y[:50])


def _real_mnist_subset(root, per_class: int) -> None:
    """The first ``per_class`` images of every class of the real MNIST, in its IDX format."""
    from ganaug.data import load_dataset
    tr, te = load_dataset("mnist", SHARED_DATA)

    def pick(ds, n):
        idx = np.concatenate([np.nonzero(ds.targets.numpy() == c)[0][:n] for c in range(10)])
        x = ((ds.images[idx, 0] + 1) * 127.5).round().numpy()
        return x, ds.targets[idx].numpy()
    write_mnist(root, *pick(tr, per_class), *pick(te, 5))


@pytest.mark.parametrize("source", ["generated", "real"])
def test_mnist_recipe_runs_a_few_steps(source, tmp_path):
    if source == "real":
        if not (SHARED_DATA / "MNIST" / "raw").is_dir():
            pytest.skip("real MNIST not present")
        _real_mnist_subset(tmp_path / "data", 12)
    else:
        _mnist_like(tmp_path / "data", 12, np.random.default_rng(0))
    out = tmp_path / "run"
    # the recipe's 10 labels per class; 120 images in batches of 64 -> 2 steps
    assert main(["train", "--recipe", str(RECIPES / "mnist-100.yaml"), "--data-root",
                 str(tmp_path / "data"), "--out", str(out), *FAST]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["dataset"] == "mnist" and s["num_labeled"] == 100 and s["num_unlabeled"] == 20
    assert s["arch"] == "mlp" and s["recipe"].endswith("mnist-100.yaml")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["labels_per_class"] == 10


@pytest.mark.parametrize("name,write", [("svhn-1000.yaml", lambda root: write_svhn(root, 30, 10)),
                                        ("cifar10-4000.yaml",
                                         lambda root: write_cifar10(root, 6, 10))])
def test_conv_recipes_run_a_few_steps_on_files_in_the_real_format(name, write, tmp_path):
    write(tmp_path)
    # the recipe, with its sizes cut for a CPU test: 3 labels per class, 2 steps, narrow nets
    cfg = recipe_config(RECIPES / name, data_root=str(tmp_path), epochs=1, batch_size=15,
                        labels_per_class=2, device="cpu",
                        net_options={"d_width": 8, "g_width": 16})
    s = fit(cfg, tmp_path / "run", progress=False, log=lambda m: None, recipe=RECIPES / name,
            tensorboard=False)
    assert s["dataset"] == load_recipe(RECIPES / name)["dataset"] and s["arch"] == "conv"
    assert s["num_labeled"] == 20 and s["num_unlabeled"] == 10 and s["num_test"] == 10
    assert 0.0 <= s["test_accuracy"] <= 1.0
    assert (tmp_path / "run" / "recipe.yaml").exists()


# ------------------------------------------------------------------ --seeds

def test_seeds_aggregate_and_resume_finishes_the_rest(tmp_path, capsys):
    out = tmp_path / "multi"
    args = ["train", "--seeds", "0,1", "--batch-size", "128", "--out", str(out), *FAST]
    assert main(args) == 0
    printed = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    accs = [r["test_accuracy"] for r in s["runs"]]
    assert [r["seed"] for r in s["runs"]] == [0, 1] and s["seeds"] == [0, 1]
    assert s["test_accuracy_mean"] == pytest.approx(statistics.fmean(accs))
    assert s["test_accuracy_std"] == pytest.approx(statistics.stdev(accs))
    assert s["test_error_mean"] == pytest.approx(1 - statistics.fmean(accs))
    assert s["test_error_std"] == pytest.approx(statistics.stdev(accs))
    assert f"{100 * s['test_error_mean']:.2f}% ± {s['test_error_std']:.2%}" in printed
    assert "mean ± sample std" in printed
    for seed in (0, 1):
        assert json.loads((out / f"seed-{seed}" / "config.json").read_text())["seed"] == seed
    # refusals, before any work
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args, "--seed", "3"]) == 2
    assert "--seed and --seeds" in capsys.readouterr().err
    assert main(["train", "--seeds", "0", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    # lose seed 1 and the aggregate: --resume reruns seed 1 only and gets the same numbers
    shutil.rmtree(out / "seed-1")
    (out / "summary.json").unlink()
    stamp = (out / "seed-0" / "summary.json").stat().st_mtime_ns
    assert main(["train", "--seeds", "0,1", "--out", str(out), "--resume", "--quiet",
                 "--no-tensorboard"]) == 0
    assert (out / "seed-0" / "summary.json").stat().st_mtime_ns == stamp
    s2 = json.loads((out / "summary.json").read_text())
    assert s2["test_accuracy_mean"] == s["test_accuracy_mean"]


def test_the_run_keeps_the_recipe_it_parsed_whatever_happens_to_the_file(tmp_path, monkeypatch,
                                                                        capsys):
    """The recipe is read once, when the run starts, and written (atomically) into the run
    folder then: editing or deleting the file mid-run changes neither the copy nor the run,
    every seed of --seeds gets the same copy, and a resume that passes the run's own copy
    as --recipe works."""
    from ganaug import experiment as E
    real_train = E.train
    path = _recipe(tmp_path, "epochs: 1\nlr: 0.002\n")
    original = path.read_text()

    def train(model, labeled, unlabeled, cfg, *, out, **kw):
        assert (out / "recipe.yaml").read_text() == original      # there from the start
        if path.exists():
            path.write_text("epochs: 1\nlr: 0.5\n")                # edited mid-run ...
        return real_train(model, labeled, unlabeled, cfg, out=out, **kw)

    monkeypatch.setattr(E, "train", train)
    out = tmp_path / "multi"
    assert main(["train", "--recipe", str(path), "--seeds", "0,1", "--batch-size", "128",
                 "--out", str(out), *FAST]) == 0
    for seed in (0, 1):
        assert (out / f"seed-{seed}" / "recipe.yaml").read_text() == original
        assert json.loads((out / f"seed-{seed}" / "config.json").read_text())["lr"] == 0.002
    path.write_text(original)

    def deleting(*args, **kw):
        path.unlink()                                               # ... or deleted
        return train(*args, **kw)

    monkeypatch.setattr(E, "train", deleting)
    run = tmp_path / "run"
    assert main(["train", "--recipe", str(path), "--batch-size", "128", "--out", str(run),
                 *FAST]) == 0
    assert (run / "recipe.yaml").read_text() == original
    assert json.loads((run / "summary.json").read_text())["recipe"] == str(path)
    monkeypatch.setattr(E, "train", real_train)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--recipe", str(run / "recipe.yaml"),
                 "--epochs", "2", "--quiet", "--no-tensorboard"]) == 0, capsys.readouterr().err
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    assert (run / "recipe.yaml").read_text() == original


# A float field given a quoted number (`lr: '1e-3'`) is that number.
def test_quoted_numbers_for_float_fields(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lr: '1e-3'\nema_decay: \"0.99\"\n")
    assert load_recipe(path) == {"lr": 0.001, "ema_decay": 0.99}
    assert recipe_config(path).resolved().lr == 0.001


# A recipe path with ~ is found in the home folder (load_recipe and `--recipe ~/...`).
def test_recipe_path_with_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "r.yaml").write_text("epochs: 3\n")
    assert load_recipe("~/r.yaml") == {"epochs": 3}
    assert recipe_config("~/r.yaml", lr=0.002).epochs == 3


def test_a_relative_recipe_path_that_is_not_there_says_where_recipes_live(tmp_path, capsys,
                                                                         monkeypatch):
    """Run outside the checkout, `--recipe recipes/mnist-100.yaml` is not there: the error
    names the directory it looked from and that the recipes ship in the repository."""
    from ganaug.recipes import SHIPPED
    shipped = Path(__file__).resolve().parents[1] / "recipes"
    assert sorted(SHIPPED) == sorted(p.name for p in shipped.glob("*.yaml"))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--recipe", "recipes/mnist-100.yaml", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ganaug: error: recipe recipes/mnist-100.yaml does not exist (from "
                          f"{tmp_path}): ganaug's recipes (mnist-100.yaml, svhn-1000.yaml, "
                          f"cifar10-4000.yaml) are files of its repository's recipes/ folder")


@pytest.mark.parametrize("key, field", [("learning_rate", "lr"), ("num_epochs", "epochs"),
                                        ("n_labels", "labels_per_class")])
def test_other_libraries_names_for_a_field_get_its_name(tmp_path, key, field):
    with pytest.raises(RecipeError, match=rf"unknown key '{key}' \(did you mean '{field}'\?\)"):
        load_recipe(_recipe(tmp_path, f"{key}: 1\n"))


def test_a_resume_s_bad_recipe_value_names_the_recipe_setting(tmp_path, capsys):
    """--resume with a recipe whose value fails the settings' check: the error names the
    recipe's setting and the flag that overrides it (as a new run's does)."""
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", "--labels-per-class", "2",
                 "--quiet", "--no-tensorboard"]) == 0
    recipe = tmp_path / "r.yaml"
    recipe.write_text("time_limit: -5\n")
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--recipe", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"(--recipe {recipe} sets time_limit: -5.0 (--time-limit overrides it))" in err, err


def test_an_absolute_path_to_a_missing_shipped_recipe_gets_no_checkout_hint(tmp_path):
    path = tmp_path / "recipes" / "mnist-100.yaml"
    with pytest.raises(FileNotFoundError) as e:
        load_recipe(path)
    assert str(e.value) == f"recipe {path} does not exist"


def test_labels_as_a_recipe_key_is_told_labels_per_class(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "r.yaml"
    path.write_text("labels: 10\n")
    with pytest.raises(RecipeError, match=r"unknown key 'labels' \(did you mean "
                                          r"'labels_per_class'\?\)"):
        load_recipe(path)
