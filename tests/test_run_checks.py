"""What `ganaug train` refuses before any work, and what resuming may change: numeric
options, options without effect, `auto` on resume, fewer epochs than trained, the fused
switch; default run folders that never collide; what an interrupt says."""
import argparse
import math
import os

import numpy as np
import pytest
import torch

from ganaug import TrainConfig
from ganaug._io import CheckpointError
from ganaug.config import SEED_RANGE
from ganaug.cli import _interrupted, main
from ganaug.experiment import claim_run_dir
from ganaug.runs import RUN_KEYS, check_run_keys, seed_folders


@pytest.mark.parametrize("key,value", [
    ("gamma", math.nan), ("lam", math.nan), ("mode_seeking", math.nan), ("gp_weight", math.nan),
    ("div_k", math.nan), ("clip", -1.0), ("div_p", -1.0), ("lr", math.nan),
    ("weight_decay", -1.0), ("margin_scale", math.inf), ("beta1", 1.0), ("gamma", "1"),
    ("g_cond_weight", math.inf), ("g_cond_weight", math.nan)])
def test_numeric_options_must_be_finite_and_in_range(key, value):
    with pytest.raises(ValueError, match=key):
        TrainConfig(**{key: value}).resolved()


@pytest.mark.parametrize("key", ["epochs", "batch_size", "d_steps", "noise_dim", "lr_decay_every"])
def test_counts_must_be_positive_whole_numbers(key):
    for bad in (1.5, 0, True, "2"):
        with pytest.raises(ValueError, match=f"{key} must be a positive whole number"):
            TrainConfig(**{key: bad}).resolved()
    c = TrainConfig(**{key: np.int64(3)}).resolved()
    assert type(getattr(c, key)) is int and getattr(c, key) == 3


@pytest.mark.parametrize("options,match", [
    (dict(lipschitz="clip", gp_weight=5.0), "gp_weight weights the gp / zero-gp"),
    (dict(objective="wgan-div", gp_weight=0.5), "div is weighted by --div-k"),
    (dict(objective="supervised", mode_seeking=1.0), "trains no generator"),
    (dict(objective="supervised", d_steps=2), "trains no generator"),
    (dict(objective="supervised", lipschitz="zero-gp"), "generates none"),
    (dict(objective="supervised", g_loss="feature-matching"), "trains no generator"),
    (dict(objective="supervised", lam=2.0), "trains no generator"),
    (dict(objective="cls", gamma=0.5), "uses no unlabeled images"),
    (dict(objective="cls", gamma_rampup=3), "uses no unlabeled images"),
    (dict(objective="ls", gamma=0.5), "one lam-weighted critic"),
    (dict(objective="wgan-gp", gamma_rampup=2), "one lam-weighted critic"),
    (dict(objective="sscls", nu=0.9), "used by objective gls only"),
    (dict(objective="wgan-gp", nu=0.9), "used by objective gls only"),
    (dict(objective="gan", margin_scale=1.0), "loss-sensitive critic"),
    (dict(objective="sscls", clip=0.1), "belongs to --lipschitz clip"),
    (dict(objective="wgan-gp", div_p=2.0), "belongs to --lipschitz div"),
    (dict(objective="sscls", weight_decay=1e-3), "belongs to --lipschitz weight-decay"),
    (dict(consistency_teacher="net"), "consistency term, which is off"),
    (dict(lr_decay=1.0, lr_decay_every=5), "learning-rate decay, which is off"),
    (dict(objective="wgan-gp", div_k=1.0), "belongs to --lipschitz div"),
    (dict(objective="gan", loss_form="softmax"), "needs loss_form='semi'"),
    (dict(objective="ls", loss_form="softmax"), "needs loss_form='semi'"),
    (dict(labels_per_class=0), r"labels_per_class \(--labels-per-class\) must be a positive "
                                "integer"),
    (dict(labels_per_class="some"), r"labels_per_class \(--labels-per-class\) must be a "
                                     "positive integer or 'all', got 'some'"),
    (dict(mode_seeking=-0.5), "mode_seeking must be non-negative"),
    (dict(compile=True, amp=True), "amp must be one of")])
def test_options_without_effect_or_out_of_range_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**options).resolved()


@pytest.mark.parametrize("options", [
    dict(objective="sscls", gamma=0.5, gamma_rampup=2), dict(objective="gls", nu=0.3),
    dict(objective="wgan", clip=0.05), dict(objective="wgan-div", div_k=1.0, div_p=2.0),
    dict(objective="cls", margin_scale=1.0), dict(objective="supervised", weight_decay=1e-3),
    dict(objective="wgan-gp", gp_weight=5.0), dict(objective="supervised", lipschitz="clip"),
    dict(lipschitz="zero-gp", gp_weight=1.0), dict(consistency=1.0, consistency_teacher="net"),
    dict(lr_decay=0.5, lr_decay_every=5)])
def test_options_that_act_are_accepted(options):
    TrainConfig(**options).resolved()


def test_labels_per_class_all_means_every_label_as_on_the_command_line():
    assert TrainConfig(labels_per_class="all").resolved().labels_per_class is None


def test_resolved_configs_resolve_again_unchanged():
    for objective in ("sscls", "cls", "wgan", "supervised", "gls"):
        c = TrainConfig(objective=objective).resolved()
        assert c.resolved() == c


def test_resume_accepts_auto_refuses_fewer_epochs_and_applies_fused_adam(tmp_path, capsys):
    out = tmp_path / "r"
    base = ["train", "--batch-size", "128", "--out", str(out), "--quiet", "--no-tensorboard"]
    assert main([*base, "--epochs", "2", "--fused-adam", "off"]) == 0
    capsys.readouterr()
    assert main([*base, "--epochs", "1", "--resume"]) == 2
    assert "it has trained 2 already; pass --epochs 2 or more" in capsys.readouterr().err
    assert main([*base, "--epochs", "3", "--resume", "--lipschitz", "auto", "--g-loss", "auto",
                 "--fused-adam", "on"]) == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 3
    assert all(g["fused"] is True for key in ("opt_d", "opt_g")
               for g in ckpt[key]["param_groups"])


def test_default_run_folders_never_collide(tmp_path, monkeypatch):
    import ganaug.experiment as E
    monkeypatch.setattr(E.time, "strftime", lambda fmt: "20261203-080804")   # one second
    cfg = TrainConfig().resolved()
    a, b, c = (claim_run_dir(cfg, tmp_path) for _ in range(3))
    assert [p.name for p in (a, b, c)] == ["20261203-080804-digits-sscls",
                                           "20261203-080804-digits-sscls-2",
                                           "20261203-080804-digits-sscls-3"]
    assert all(p.is_dir() for p in (a, b, c))


def test_a_failed_seeds_run_leaves_no_empty_default_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--seeds", "0,1", "--dataset", "mnist", "--data-root",
                 str(tmp_path / "nothing"), "--quiet"]) == 2
    assert "ganaug: error:" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_seeds_summary_counts_epochs_in_words():
    from ganaug.cli import _epochs
    done = lambda n, per=None, stopped=(): dict(epochs_planned=n, epochs_per_seed=per or [n, n],  # noqa: E731
                                                stopped_seeds=list(stopped))
    assert _epochs(done(1)) == "1 epoch" and _epochs(done(20)) == "20 epochs"
    assert _epochs(done(20, [12, 20], [0])) == "epochs 12/20 of 20 (time limit)"


def test_the_interrupt_message_says_whether_there_is_a_checkpoint(tmp_path):
    args = argparse.Namespace(command="train", out=str(tmp_path))
    assert "no checkpoint to resume from" in _interrupted(args)
    (tmp_path / "seed-0").mkdir()
    (tmp_path / "seed-0" / "checkpoint.pt").write_bytes(b"")     # unreadable: epoch '?'
    assert "--resume" in _interrupted(args) and "is kept (seed-0: epoch ?;" in _interrupted(args)
    (tmp_path / "seed-1").mkdir()
    torch.save({"format": "ganaug", "epoch": 3}, tmp_path / "seed-1" / "checkpoint.pt")
    assert "(seed-0: epoch ?, seed-1: epoch 3;" in _interrupted(args)
    torch.save({"format": "ganaug", "epoch": 5}, tmp_path / "checkpoint.pt")   # a run folder
    assert "(epoch 5, seed-0: epoch ?, seed-1: epoch 3;" in _interrupted(args)
    assert "printed above" in _interrupted(argparse.Namespace(command="train", out=None))
    assert _interrupted(argparse.Namespace(command="eval")) == "ganaug: interrupted"


@pytest.mark.parametrize("objective,lipschitz,g_loss,gp_weight,g_cond_weight", [
    ("sscls", "zero-gp", "feature-matching", 0.1, 3.0), ("cls", "zero-gp", "loss", 0.1, 0.0),
    ("wgan", "clip", "loss", 10.0, 0.0), ("wgan-gp", "gp", "loss", 10.0, 0.0),
    ("gan", "none", "loss", 10.0, 0.0), ("supervised", "weight-decay", "loss", 10.0, 0.0)])
def test_auto_values_resolve_to_each_objectives_own(objective, lipschitz, g_loss, gp_weight,
                                                      g_cond_weight):
    c = TrainConfig(objective=objective).resolved()
    assert (c.lipschitz, c.g_loss, c.gp_weight, c.g_cond_weight) == \
        (lipschitz, g_loss, gp_weight, g_cond_weight)


def test_auto_weights_follow_the_chosen_generator_loss_and_regulariser():
    assert TrainConfig(objective="cls", g_loss="feature-matching").resolved().g_cond_weight == 3.0
    # an unconditional objective's feature matching has no conditional term to weight
    assert TrainConfig(objective="gan", g_loss="feature-matching").resolved().g_cond_weight == 0.0
    assert TrainConfig(lipschitz="gp").resolved().gp_weight == 10.0
    c = TrainConfig(lipschitz="spectral-norm").resolved()
    assert c.net_options["norm"] == "spectral" and TrainConfig().net_options == {}


@pytest.mark.parametrize("options", [
    dict(lr_decay=1.0), dict(objective="gls", nu=0.0), dict(ema_decay=0.0),
    dict(objective="cls", loss_form="softmax")])
def test_range_ends_that_mean_something_are_accepted(options):
    c = TrainConfig(**options).resolved()
    assert all(getattr(c, k) == v for k, v in options.items())


def test_boolean_speed_switches_read_as_on_and_off():
    c = TrainConfig(compile=False, channels_last=True, fused_adam=False).resolved()
    assert (c.compile, c.channels_last, c.fused_adam) == ("off", "on", "off")


def test_diff_names_every_changed_setting_but_the_resumable_ones():
    base = TrainConfig()
    other = TrainConfig(lam=2.0, gamma=0.5, epochs=7, device="cpu", seed=3)
    assert base.diff(other) == ["lam", "gamma", "seed"]


def test_the_run_folder_records_the_resolved_configuration(tiny, tmp_path):
    """config.json holds what `auto` and None became, even when train() is given the raw one."""
    import json
    from _tiny import _run
    _run(tiny, out=tmp_path, epochs=1)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert (cfg["lipschitz"], cfg["g_loss"], cfg["gp_weight"], cfg["g_cond_weight"]) == \
        ("zero-gp", "feature-matching", 0.1, 3.0)


def test_a_dict_of_settings_in_place_of_a_config_says_how_to_build_one(tiny, tmp_path):
    from ganaug import build_model, fit, fit_seeds, train
    model = build_model(TrainConfig().resolved(), tiny)
    for call in (lambda: fit({"epochs": 1}, out=tmp_path / "a"),
                 lambda: fit_seeds({"epochs": 1}, [0], tmp_path / "b"),
                 lambda: train(model, tiny, None, {"epochs": 1}, out=tmp_path / "c")):
        with pytest.raises(TypeError, match=r"config must be a TrainConfig, got dict: build one "
                                            r"with TrainConfig\(\*\*settings\)"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_numpy_values_in_a_config_or_model_give_checkpoints_that_load(tiny, tmp_path):
    """A sweep over np.logspace hands TrainConfig numpy scalars: they are stored as Python
    values, so the checkpoint (config, history, the model's spec) loads with
    weights_only=True; a model built or named with numpy values saves loadably too."""
    import json

    from _tiny import _run
    from ganaug import CLSGAN
    _run(tiny, out=tmp_path / "r", epochs=1, lr=np.float64(2e-3), gamma=np.float32(0.5),
         labels_per_class=np.int64(4), net_options={"input_noise": np.float64(0.1)})
    ckpt = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert type(ckpt["config"]["lr"]) is float and ckpt["config"]["lr"] == 2e-3
    assert type(ckpt["history"][0]["lr"]) is float and ckpt["config"]["gamma"] == 0.5
    assert ckpt["model"]["net_options"]["input_noise"] == 0.1
    assert json.loads((tmp_path / "r" / "config.json").read_text())["labels_per_class"] == 4
    m = CLSGAN((1, 8, 8), 2, "mlp", input_noise=np.float64(0.2))
    m.classes = [np.str_("cat"), np.str_("dog")]
    m.save(tmp_path / "m.pt")
    loaded = CLSGAN.load(tmp_path / "m.pt")
    assert loaded.classes == ["cat", "dog"] and loaded.spec()["net_options"]["input_noise"] == 0.2


def test_one_generated_image_per_step_for_batchnorm1d_is_refused_before_any_work(tiny, tmp_path):
    """The MLP generator's BatchNorm1d cannot train on one row: a labels-only objective at
    batch size 1 was torch's "Expected more than 1 value per channel" after the run folder
    was made. sscls at batch 1 generates 2 (one per labeled and unlabeled row) and trains;
    so does the generator without BatchNorm."""
    from _tiny import FAST, _run
    with pytest.raises(ValueError, match=r"batch_size 1 gives the generator 1 image per step, "
                                         r"and its BatchNorm1d layers need at least 2"):
        _run(tiny, out=tmp_path / "r", objective="cls", batch_size=1, epochs=1)
    assert not (tmp_path / "r").exists()
    _run(tiny, objective="sscls", batch_size=1, epochs=1)
    _run(tiny, objective="cls", batch_size=1, epochs=1,
         net_options={**FAST["net_options"], "g_norm": "none"})


def test_fm_real_unlabeled_needs_unlabeled_images():
    with pytest.raises(ValueError, match=r"fm_real='unlabeled' .* objective 'cls' uses none"):
        TrainConfig(objective="cls", g_loss="feature-matching", fm_real="unlabeled").resolved()


def test_settings_without_effect_name_the_flag_beside_the_field():
    with pytest.raises(ValueError, match=r"use --objective gls or leave nu \(--nu\) unset$"):
        TrainConfig(nu=0.3).resolved()
    with pytest.raises(ValueError, match=r"leave lr_decay_every \(--lr-decay-every\) unset$"):
        TrainConfig(lr_decay=1.0, lr_decay_every=5).resolved()


def test_a_fix_that_names_no_field_gets_no_flag():
    """'leave them unset' stays as it is: only a field's name gets its flag beside it."""
    with pytest.raises(ValueError) as e:
        TrainConfig(objective="cls", gamma_rampup=3).resolved()
    assert "leave them unset" in str(e.value) and "--them" not in str(e.value)


@pytest.mark.parametrize("kw,message", [
    (dict(d_steps=2), "d_steps has no effect: objective 'supervised' trains no generator; "
                      "leave d_steps (--d-steps) at 1"),
    (dict(mode_seeking=1.0, d_steps=3), "mode_seeking and d_steps have no effect: "
     "objective 'supervised' trains no generator; leave mode_seeking (--mode-seeking) at 0 "
     "and d_steps (--d-steps) at 1"),
    (dict(lam=2.0), "lam has no effect: objective 'supervised' trains no generator and has "
                    "no adversarial term; leave lam (--lam) unset"),
    (dict(lam=2.0, g_loss="feature-matching"), "g_loss and lam have no effect: objective "
     "'supervised' trains no generator and has no adversarial term; leave g_loss (--g-loss) "
     "and lam (--lam) unset"),
    (dict(g_loss="feature-matching"), "g_loss has no effect: objective 'supervised' trains no "
     "generator and has no adversarial term; leave g_loss (--g-loss) unset")])
def test_a_setting_without_effect_is_named_alone_when_given_alone(kw, message):
    """The refusal of settings a generator-less objective ignores names the ones given
    (d_steps alone was refused as "mode_seeking and d_steps")."""
    with pytest.raises(ValueError) as e:
        TrainConfig(objective="supervised", **kw).resolved()
    assert str(e.value) == message


# The seed range is torch's, both ends included.
def test_both_ends_of_the_seed_range_are_accepted():
    lo, hi = SEED_RANGE
    for seed in (lo, hi):
        c = TrainConfig(seed=seed, data_seed=seed).resolved()
        assert (c.seed, c.data_seed) == (seed, seed)
        torch.Generator().manual_seed(seed)                 # torch takes them too


# ema_decay 1 would freeze the averaged nets (used to sample and classify) at their init.
@pytest.mark.parametrize("bad", [1.0, -0.1])
def test_ema_decay_must_be_below_one(bad):
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        TrainConfig(ema_decay=bad).resolved()


# nu = 1 (the linear GLS cost) is in range: nu <= 1.
def test_gls_takes_nu_one():
    assert TrainConfig(objective="gls", nu=1.0).resolved().nu == 1.0


# A learning rate (or other scale) of 0 would train nothing: refused before any work.
@pytest.mark.parametrize("key", ["lr", "lam", "margin_scale"])
def test_zero_is_not_a_positive_number(key):
    with pytest.raises(ValueError, match=f"{key} must be a positive, finite number, got 0"):
        TrainConfig(**{key: 0.0}).resolved()


# folder:~/PATH is saved with ~ expanded, so the run folder's config names the same images.
def test_folder_dataset_with_tilde_is_resolved_to_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    c = TrainConfig(dataset="folder:~/imgs").resolved()
    assert c.dataset == "folder:" + os.path.join(str(tmp_path), "imgs")


# download is True or False: the string "no" is not a yes.
@pytest.mark.parametrize("bad", ["no", 1])
def test_download_must_be_a_bool(bad):
    with pytest.raises(ValueError, match=f"download must be True or False, got {bad!r}"):
        TrainConfig(dataset="mnist", download=bad).resolved()


# An unknown device is refused by the config, before any data is loaded.
@pytest.mark.parametrize("bad", ["gpu", "mps", "CUDA"])
def test_unknown_device_is_refused_by_the_config(bad):
    with pytest.raises(ValueError, match=f"device must be auto, cpu, cuda or cuda:N, got '{bad}'"):
        TrainConfig(device=bad).resolved()


# lipschitz spectral-norm builds the loss network with spectral normalisation, whatever
# weight norm net_options name (a recipe's norm: none or weight does not switch it off).
@pytest.mark.parametrize("norm", ["none", "weight"])
def test_spectral_norm_wins_over_the_net_options_norm(norm):
    c = TrainConfig(lipschitz="spectral-norm", net_options={"norm": norm}).resolved()
    assert c.net_options["norm"] == "spectral"


def test_resume_without_a_run_folder_is_refused_in_python_too():
    """fit(resume=True) without out= is refused before any work (the command line has its
    own check), not started as a new run that saves nothing."""
    from ganaug import fit
    with pytest.raises(ValueError, match="--resume needs --out pointing at the run to resume"):
        fit(TrainConfig(epochs=1), out=None, resume=True, progress=False)


def test_every_missing_key_is_named(tmp_path):
    """check_run_keys names every missing key; seed_folders: seed-N folders only (not files,
    not seed-1-old), sorted by number."""
    with pytest.raises(CheckpointError, match=r"lacks 'state', 'epoch': it was edited"):
        check_run_keys({"config": {}, "model": {}}, tmp_path / "c.pt", RUN_KEYS[:4])


def test_seed_folders_are_folders_named_seed_n_sorted_by_number(tmp_path):
    for s in (10, 2, -1, 0, 33, 7, 1):
        (tmp_path / f"seed-{s}").mkdir()
    (tmp_path / "seed-5").write_text("a file")
    (tmp_path / "seed-3-old").mkdir()
    (tmp_path / "seed-4.bak").mkdir()
    assert seed_folders(tmp_path) == [-1, 0, 1, 2, 7, 10, 33]


def test_a_resume_with_another_objective_or_regulariser_names_that_change(tmp_path, capsys):
    """--resume with --objective wgan (or --lipschitz spectral-norm) on an sscls run: the
    saved settings would clash with it (g_cond_weight, gp_weight), but the error names the
    change asked for, which is what the user can drop."""
    run = tmp_path / "run"
    flags = ["--labels-per-class", "2", "--quiet", "--no-tensorboard", "--out", str(run)]
    assert main(["train", "--epochs", "1", *flags]) == 0
    for extra, change in ((["--objective", "wgan"], "--objective 'sscls' -> 'wgan'"),
                          (["--objective", "gls", "--nu", "0.2"],
                           "--objective 'sscls' -> 'gls', --nu 0.5 -> 0.2"),
                          (["--lipschitz", "spectral-norm"],
                           "--lipschitz 'zero-gp' -> 'spectral-norm'")):
        capsys.readouterr()
        assert main(["train", "--epochs", "2", "--resume", *extra, *flags]) == 2
        err = capsys.readouterr().err
        assert f"cannot resume {run}: the configuration differs ({change})" in err, err
        assert "g_cond_weight" not in err and "gp_weight" not in err


def test_a_run_of_the_earlier_unconditional_critic_is_not_resumed(tmp_path, capsys):
    """Checkpoints of `ls`, `gls` and the unconditional WGANs written before their critic
    compared -logsumexp a (no "unconditional_critic" key) are refused on resume, since the
    loss would change mid-run; other objectives' checkpoints resume as before."""
    from ganaug._io import CHECKPOINT, atomic_torch_save, safe_torch_load
    flags = ["--labels-per-class", "2", "--quiet", "--no-tensorboard"]
    for objective, refused in (("ls", True), ("cls", False)):
        run = tmp_path / objective
        args = ["train", "--objective", objective, *flags, "--out", str(run)]
        assert main([*args, "--epochs", "1"]) == 0
        ckpt = safe_torch_load(run / CHECKPOINT)
        assert ckpt.pop("unconditional_critic") == "logit"
        atomic_torch_save(run / CHECKPOINT, ckpt)          # as an earlier ganaug wrote it
        capsys.readouterr()
        assert main([*args, "--epochs", "2", "--resume"]) == (2 if refused else 0)
        err = capsys.readouterr().err
        assert ("it was trained by an earlier ganaug, whose 'ls' critic compared "
                "softplus(-logsumexp a)" in err) is refused, err
