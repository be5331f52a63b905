"""The training loop on tiny data: every objective and regulariser, determinism, resume."""
import dataclasses
import importlib
import itertools
import json
import math
import os
import stat
import sys
import types

import numpy as np
import pytest
import torch

from ganaug import CLSGAN, TrainConfig, build_model, train
from ganaug.config import LIPSCHITZ
from ganaug.data import ImageSet, split_labeled
from ganaug.objectives import get_objective, list_objectives
from ganaug.step import step_kind
from ganaug.progress import LogBar, progress_bar

from _tiny import CONV, FAST, _run, colour


@pytest.mark.parametrize("objective", list_objectives())
def test_every_objective_trains_with_finite_losses(tiny, objective):
    st = _run(tiny, objective=objective)
    assert len(st.history) == 2
    for rec in st.history:
        for k in ("d_loss", "g_loss", "sup_loss", "critic", "penalty"):
            assert math.isfinite(rec[k]), (objective, k, rec[k])
        assert 0.0 <= rec["test_accuracy"] <= 1.0


@pytest.mark.parametrize("lipschitz", LIPSCHITZ)
def test_every_regulariser_trains(tiny, lipschitz):
    st = _run(tiny, objective="sscls", lipschitz=lipschitz)
    assert all(math.isfinite(r["d_loss"]) for r in st.history)
    if lipschitz == "clip":                        # the weights the layers use (W = g v/|v|)
        used = [t for m in st.model.loss_net.modules() if isinstance(m, torch.nn.Linear)
                for t in (m.weight, m.bias)]
        assert max(t.abs().max().item() for t in used) <= 0.01 + 1e-7
    if lipschitz == "spectral-norm":
        assert st.model.net_options["norm"] == "spectral"
    if lipschitz in ("gp", "zero-gp", "div"):
        assert st.history[-1]["penalty"] > 0


def test_gls_with_nu_zero_trains_exactly_like_ls(tiny):
    # a small margin so that some hinge arguments go negative, where the slope matters
    a = _run(tiny, objective="ls", margin_scale=0.01, epochs=4)
    b = _run(tiny, objective="gls", nu=0.0, margin_scale=0.01, epochs=4)
    c = _run(tiny, objective="gls", nu=0.5, margin_scale=0.01, epochs=4)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], c.model.state_dict()[k]) for k in sa)


def test_same_seed_same_result_and_other_seed_differs(tiny):
    a, b, c = _run(tiny, seed=3), _run(tiny, seed=3), _run(tiny, seed=4)
    ga, gb = a.model.generator.state_dict(), b.model.generator.state_dict()
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    assert a.history[-1]["d_loss"] == b.history[-1]["d_loss"]
    assert a.history[-1]["d_loss"] != c.history[-1]["d_loss"]


@pytest.mark.parametrize("objective", ["sscls", "wgan"])      # wgan: weight clipping
def test_resume_equals_never_stopping(tiny, tmp_path, objective):
    full = _run(tiny, out=tmp_path / "a", epochs=4, objective=objective)
    _run(tiny, out=tmp_path / "b", epochs=2, objective=objective)
    resumed = _run(tiny, out=tmp_path / "b", epochs=4, resume=True, objective=objective)
    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r["d_loss"] for r in full.history] == [r["d_loss"] for r in resumed.history]


def test_checkpoint_tensors_go_to_the_cpu_with_their_state_dict_versions():
    """What atomic_torch_save writes: every tensor on the CPU (a GPU run's checkpoint loads
    with a plain torch.load on a machine without one), dicts, lists and tuples as they were,
    and a state dict's module versions (``_metadata``) kept."""
    from ganaug._io import on_cpu
    sd = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).state_dict()
    out = on_cpu({"state": sd, "rows": [torch.ones(2), (torch.zeros(1), 3)], "name": "a"})
    assert type(out["state"]) is type(sd) and out["state"]._metadata == sd._metadata
    assert list(out["state"]) == list(sd) and all(torch.equal(out["state"][k], sd[k]) for k in sd)
    assert isinstance(out["rows"][1], tuple) and out["rows"][1][1] == 3 and out["name"] == "a"


@pytest.mark.gpu
def test_a_gpu_runs_checkpoint_loads_with_plain_torch_load_without_a_gpu(tiny, tmp_path):
    import subprocess
    import sys
    _run(tiny, out=tmp_path, epochs=1, device="cuda", compile="off")
    code = ("import sys, torch; c = torch.load(sys.argv[1], weights_only=True); "
            "print(sorted({t.device.type for t in c['state'].values()}))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "checkpoint.pt")],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert r.stdout.strip() == "['cpu']", r.stderr


def test_run_folder_contents_and_weights_only_checkpoint(tiny, tmp_path):
    _run(tiny, out=tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"checkpoint.pt", "config.json", "metrics.jsonl", "samples.png", "samples"} <= names
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    from PIL import Image
    with Image.open(tmp_path / "samples.png") as im:    # 4 classes x 10; 8x8 drawn at 32x32
        assert im.size == (10 * 33 + 1, 4 * 33 + 1)
        px = np.asarray(im.convert("L"))
    cell = px[1:33, 1:33]                                # one sample: 4x4 blocks of one value
    assert (cell == np.kron(cell[::4, ::4], np.ones((4, 4), dtype=cell.dtype))).all()
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["format"] == "ganaug"
    assert not [p for p in tmp_path.rglob("*.tmp")]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_resume_into_a_different_configuration_is_refused(tiny, tmp_path):
    _run(tiny, out=tmp_path)
    with pytest.raises(ValueError, match="configuration differs.*lr"):
        _run(tiny, out=tmp_path, resume=True, epochs=3, lr=0.5)
    with pytest.raises(ValueError, match=r"already holds a run; pass --resume \(resume=True in "
                                         r"Python\) to continue it or choose another --out "
                                         r"\(out=\)"):
        _run(tiny, out=tmp_path)


def test_resuming_a_finished_run_says_there_is_nothing_to_train(tiny, tmp_path):
    done = _run(tiny, out=tmp_path, epochs=1)
    lines = []
    again = _run(tiny, out=tmp_path, resume=True, epochs=1, log=lines.append)
    assert any("has trained all 1 of its epochs: nothing to train" in s for s in lines), lines
    assert not any(s.startswith("resuming") for s in lines)
    assert again.history == done.history
    lines.clear()
    _run(tiny, out=tmp_path, resume=True, epochs=2, log=lines.append)
    assert f"resuming {tmp_path} from epoch 1" in lines


def test_a_semi_supervised_objective_without_unlabeled_images_says_so(tiny):
    lines = []
    cfg = TrainConfig(**{**FAST, "epochs": 1})
    lab, _ = split_labeled(tiny, cfg.labels_per_class, cfg.data_seed)
    train(build_model(cfg.resolved(), tiny), lab, None, cfg, progress=False, log=lines.append)
    assert ("no unlabeled images: sscls's unlabeled terms are off, it trains on the labeled "
            "images alone") in lines
    lines.clear()
    _run(tiny, epochs=1, log=lines.append)              # with unlabeled images: not a word
    assert not any("unlabeled" in s for s in lines), lines
    lines.clear()
    cfg = TrainConfig(**{**FAST, "epochs": 1, "consistency": 3, "unlabeled_ratio": 2,
                         "gamma": 0.5, "fm_real": "unlabeled"})
    train(build_model(cfg.resolved(), tiny), lab, None, cfg, progress=False, log=lines.append)
    assert ("no unlabeled images: sscls's unlabeled terms are off, it trains on the labeled "
            "images alone; --consistency 3, --unlabeled-ratio 2, --gamma 0.5, --fm-real "
            "unlabeled therefore have no effect") in lines


def test_spectral_norm_needs_a_spectral_model(tiny):
    model = CLSGAN(tiny.image_shape, 4, "mlp")
    with pytest.raises(ValueError, match="norm='spectral'"):
        train(model, tiny, None, TrainConfig(**FAST, lipschitz="spectral-norm"), progress=False)


def test_model_mismatch_is_refused(tiny):
    model = CLSGAN((1, 8, 8), 3, "mlp")
    with pytest.raises(ValueError, match="does not match the model"):
        train(model, tiny, None, TrainConfig(**FAST), progress=False)


def test_conv_pair_trains_on_tiny_colour_images():
    st = _run(colour(), **CONV)
    assert st.model.arch == "conv" and math.isfinite(st.history[-1]["d_loss"])


def test_mode_seeking_term_changes_the_generator_and_stays_finite(tiny):
    a = _run(tiny, objective="cls", seed=1)
    b = _run(tiny, objective="cls", seed=1, mode_seeking=1.0)
    assert all(math.isfinite(r["g_loss"]) for r in b.history)
    ga, gb = a.model.generator.state_dict(), b.model.generator.state_dict()
    assert not all(torch.equal(ga[k], gb[k]) for k in ga)
    with pytest.raises(ValueError, match="mode_seeking must be non-negative"):
        TrainConfig(mode_seeking=-1.0).resolved()


def test_gls_slope_may_be_negative_but_not_above_one_or_nan(tiny):
    assert TrainConfig(objective="gls", nu=-1.0).resolved().nu == -1.0
    for bad in (1.5, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="finite number <= 1"):
            TrainConfig(objective="gls", nu=bad).resolved()
    run = _run(tiny, objective="gls", nu=-1.0, seed=0)
    assert all(math.isfinite(r["d_loss"]) for r in run.history)


def _generator_loss_inputs(tiny, **kw):
    """A built model in eval mode (no noise layers: deterministic), its nets, a batch of 8
    labeled + 8 unlabeled images, fakes for their labels, and the objective's L."""
    from ganaug.step import Speed, _Batch, _ell, _Nets

    cfg = TrainConfig(**FAST, **kw).resolved()
    model = build_model(cfg, tiny)
    G, D = model.generator.eval(), model.loss_net.eval()
    nets = _Nets(G, D, Speed(None, None, False, False), torch.device("cpu"), lambda s: None)
    y = tiny.targets[:16]
    b = _Batch(tiny.images[:16], y, torch.cat([y[:8], torch.full((8,), -1)]), 8)
    x_g = G(torch.rand(16, cfg.noise_dim) * 2 - 1, y)
    return cfg, nets, b, x_g, _ell(get_objective(cfg.objective), cfg.loss_form)


def test_conditional_generator_term_is_weight_times_L_of_the_fakes(tiny):
    from ganaug.objectives import conditional_loss
    from ganaug.step import _generator_loss

    cfg, nets, b, x_g, ell = _generator_loss_inputs(tiny, g_cond_weight=2.5)
    with_term = _generator_loss(cfg, nets, b, x_g, ell, 1)     # (feature matching, term)
    without = _generator_loss(dataclasses.replace(cfg, g_cond_weight=0.0), nets, b, x_g, ell, 1)
    term = 2.5 * conditional_loss(nets.D(x_g), b.y_gen).mean()
    torch.testing.assert_close(with_term, torch.stack([without[0], term]))
    assert without[1].item() == 0.0 and term.item() > 0


def test_each_epoch_logs_the_conditional_terms_part_of_the_generator_loss(tiny):
    """g_cond: the mean of g_cond_weight x L(G(z, y), y) over the epoch, a part of g_loss;
    0 where there is no such term."""
    fm = _run(tiny, g_cond_weight=3.0)
    for rec in fm.history:
        assert 0 < rec["g_cond"] < rec["g_loss"], rec
    light = _run(tiny, g_cond_weight=0.3)          # a tenth of the weight
    assert light.history[0]["g_cond"] < fm.history[0]["g_cond"]
    for kw in ({"g_cond_weight": 0.0}, {"g_loss": "loss"}):
        r = _run(tiny, **kw)
        assert all(rec["g_cond"] == 0.0 and rec["g_loss"] != 0.0 for rec in r.history), kw


def test_feature_matching_on_all_layers_matches_every_hidden_layer(tiny):
    from ganaug.objectives import feature_matching
    from ganaug.step import _generator_loss

    cfg, nets, b, x_g, ell = _generator_loss_inputs(tiny, fm_layers="all", g_cond_weight=0.0)
    D = nets.D
    loss = _generator_loss(cfg, nets, b, x_g, ell, 1).sum()
    expected = feature_matching(D(b.x, features="all")[1], D(x_g, features="all")[1])
    torch.testing.assert_close(loss, expected)
    last = _generator_loss(dataclasses.replace(cfg, fm_layers="last"), nets, b, x_g, ell,
                           1).sum()
    assert abs(loss.item() - last.item()) > 1e-3 * last.item()   # the first layer counts too
    loss.backward()
    assert all(p.grad is not None for p in nets.G.parameters())


def test_feature_matching_on_the_unlabeled_reals_alone(tiny):
    """fm_real="unlabeled" (DESIGN.md, Salimans et al.) matches the fakes' mean features with
    the batch's unlabeled rows only; "all" (the default) with every real row."""
    from ganaug.objectives import feature_matching
    from ganaug.step import _generator_loss

    for layers in ("last", "all"):
        cfg, nets, b, x_g, ell = _generator_loss_inputs(tiny, fm_layers=layers,
                                                        fm_real="unlabeled", g_cond_weight=0.0)
        which = True if layers == "last" else "all"
        loss = _generator_loss(cfg, nets, b, x_g, ell, 1).sum()
        expected = feature_matching(nets.D(b.x[b.n:], features=which)[1],
                                    nets.D(x_g, features=which)[1])
        torch.testing.assert_close(loss, expected)
        every = _generator_loss(dataclasses.replace(cfg, fm_real="all"), nets, b, x_g, ell,
                                1).sum()
        torch.testing.assert_close(every, feature_matching(nets.D(b.x, features=which)[1],
                                                           nets.D(x_g, features=which)[1]))
        assert abs(loss.item() - every.item()) > 1e-4 * every.item()
    r = _run(tiny, fm_real="unlabeled")
    assert r.config.fm_real == "unlabeled" and math.isfinite(r.history[-1]["g_loss"])
    with pytest.raises(ValueError, match="fm_real must be one of all, unlabeled"):
        TrainConfig(fm_real="labeled").resolved()
    with pytest.raises(ValueError, match="fm_real='unlabeled'.*use --g-loss feature-matching"):
        TrainConfig(fm_real="unlabeled", objective="wgan-gp").resolved()


def test_all_layers_with_a_network_that_cannot_list_them_is_a_clear_error(tiny):
    from ganaug.step import Speed, _Nets

    class OneFeature(torch.nn.Module):               # answers any truthy features= with h
        def forward(self, x, features=False):
            h = x.flatten(1)
            return (h[:, :4], h) if features else h[:, :4]

    nets = _Nets(torch.nn.Identity(), OneFeature(), Speed(None, None, False, False),
                 torch.device("cpu"), lambda s: None)
    with pytest.raises(TypeError, match="features='all'.*use fm_layers='last'"):
        nets.d(tiny.images[:4], features="all")


def test_feature_matching_on_all_layers_trains_and_is_checked(tiny):
    r = _run(tiny, fm_layers="all")
    assert r.config.fm_layers == "all" and math.isfinite(r.history[-1]["g_loss"])
    with pytest.raises(ValueError, match="fm_layers must be one of last, all"):
        TrainConfig(fm_layers="first").resolved()
    with pytest.raises(ValueError, match="use --g-loss feature-matching"):
        TrainConfig(fm_layers="all", objective="wgan-gp").resolved()


def test_conditional_generator_term_makes_samples_follow_their_labels(tiny):
    """Feature matching alone leaves the generator free to ignore y: its samples land in
    their own class at chance (1/4); the conditional term pulls them to it."""
    def agreement(weight):
        r = _run(tiny, epochs=20, seed=0, g_cond_weight=weight)
        y = torch.arange(4).repeat(64)
        torch.manual_seed(0)
        x = r.model.sample(y)
        return float((r.model.predict(x).cpu() == y).float().mean())

    plain, conditioned = agreement(0.0), agreement(5.0)
    assert plain < 0.35
    assert conditioned > plain + 0.15


def test_the_conditional_terms_share_is_held_at_every_step(tiny):
    """g_cond_share s: each step's term is s of that step's loss, so each epoch's mean too;
    it replaces the default weight, and its samples follow their labels (here, where
    feature matching is small, a share of 0.4 was too light: 0.28, chance)."""
    def agreement(r):
        y = torch.arange(4).repeat(64)
        torch.manual_seed(0)
        return float((r.model.predict(r.model.sample(y)).cpu() == y).float().mean())

    r = _run(tiny, epochs=20, seed=0, g_cond_share=0.8)
    assert r.config.g_cond_weight == 0.0
    for rec in r.history:
        assert rec["g_cond"] == pytest.approx(0.8 * rec["g_loss"], rel=1e-5), rec
    assert agreement(r) > agreement(_run(tiny, epochs=20, seed=0, g_cond_weight=0.0)) + 0.15


def test_conditional_generator_term_is_refused_where_it_means_nothing():
    with pytest.raises(ValueError, match="g_cond_weight must be a non-negative, finite number"):
        TrainConfig(g_cond_weight=-1.0).resolved()
    with pytest.raises(ValueError, match="g_cond_weight must be a non-negative, finite number"):
        TrainConfig(g_cond_weight=float("nan")).resolved()
    with pytest.raises(ValueError, match="--g-loss feature-matching"):
        TrainConfig(g_cond_weight=1.0, g_loss="loss").resolved()
    with pytest.raises(ValueError, match="conditional objective"):
        TrainConfig(objective="gan", g_loss="feature-matching", g_cond_weight=1.0).resolved()
    assert TrainConfig(objective="cls", g_loss="feature-matching",
                       g_cond_weight=1.0).resolved().g_cond_weight == 1.0
    for bad in (-0.1, 1.0, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=r"g_cond_share must be a number in \[0, 1\)"):
            TrainConfig(g_cond_share=bad).resolved()
    with pytest.raises(ValueError, match="g_cond_weight=2.0 cannot apply too; give one of them"):
        TrainConfig(g_cond_share=0.5, g_cond_weight=2.0).resolved()
    with pytest.raises(ValueError, match="g_cond_share weighs.*--g-loss feature-matching"):
        TrainConfig(g_cond_share=0.5, g_loss="loss").resolved()
    with pytest.raises(ValueError, match="g_cond_share weighs.*conditional objective"):
        TrainConfig(objective="gan", g_loss="feature-matching", g_cond_share=0.5).resolved()
    assert TrainConfig(g_cond_share=0.5, g_cond_weight=0.0).resolved().g_cond_share == 0.5


def test_conditional_generator_term_defaults_to_3_with_feature_matching_only():
    assert TrainConfig().resolved().g_cond_weight == 3.0                      # sscls
    assert TrainConfig(objective="cls", g_loss="feature-matching").resolved().g_cond_weight == 3.0
    assert TrainConfig(objective="cls").resolved().g_cond_weight == 0.0       # its own loss
    assert TrainConfig(g_loss="loss").resolved().g_cond_weight == 0.0
    assert TrainConfig(objective="gan", g_loss="feature-matching").resolved().g_cond_weight == 0.0


def test_runs_saved_before_g_cond_weight_existed_resume_as_they_trained(tiny, tmp_path):
    _run(tiny, out=tmp_path, g_cond_weight=0.0)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del ckpt["config"]["g_cond_weight"]                   # as written before the key existed
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    assert TrainConfig.from_dict(ckpt["config"]).g_cond_weight == 0.0
    with pytest.raises(ValueError, match="configuration differs.*g_cond_weight: 0.0 -> 3.0"):
        _run(tiny, out=tmp_path, resume=True, epochs=3)   # today's default would change it
    assert len(_run(tiny, out=tmp_path, resume=True, epochs=3, g_cond_weight=0.0).history) == 3


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_atomic_writes_get_the_permissions_of_a_plain_write(tmp_path):
    from ganaug._io import atomic_write_text

    old = os.umask(0o022)
    try:
        new = atomic_write_text(tmp_path / "new.json", "{}")
        kept = tmp_path / "kept.json"
        kept.write_text("")
        kept.chmod(0o600)
        atomic_write_text(kept, "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644      # not mkstemp's 0600
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600     # an existing file keeps its mode


T = importlib.import_module("ganaug.train")      # the module (ganaug.train is the function)


def test_train_seconds_add_up_over_epochs_and_over_a_resume(tiny, tmp_path, monkeypatch):
    ticks = itertools.count()                  # a clock that moves 1/8 s per reading
    monkeypatch.setattr(T, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks) / 8))
    _run(tiny, out=tmp_path, epochs=2)
    st = _run(tiny, out=tmp_path, epochs=4, resume=True)
    assert [r["seconds"] for r in st.history] == [0.125, 0.25, 0.375, 0.5]
    assert st.train_seconds == 0.5
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["train_seconds"] == 0.5


def test_every_epoch_is_logged_with_its_test_accuracy(tiny):
    lines = []
    st = _run(tiny, log=lines.append)
    epochs = [ln for ln in lines if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in epochs] == ["1/2", "2/2"]
    assert f"test_acc={st.history[-1]['test_accuracy']:.4f}" in epochs[-1]


def test_each_epoch_record_holds_that_epochs_test_accuracy(tiny):
    from ganaug.experiment import evaluate

    seen = []
    st = _run(tiny, epochs=4, on_epoch=lambda rec, m: seen.append(evaluate(m, tiny)["accuracy"]))
    assert [r["test_accuracy"] for r in st.history] == pytest.approx(seen)
    assert len(set(seen)) > 1                          # the accuracy moved


def test_gamma_ramps_up_over_its_epochs_from_the_first(tiny):
    st = _run(tiny, epochs=3, gamma=0.5, gamma_rampup=2)
    assert [r["gamma"] for r in st.history] == [0.25, 0.5, 0.5]


def test_the_loss_network_loss_includes_its_consistency_term(tiny):
    r = _run(tiny, consistency=2.0).history[-1]
    assert r["consistency"] > 0
    parts = ("sup_loss", "critic", "critic_ul", "penalty", "consistency")
    assert r["d_loss"] == pytest.approx(sum(r[k] for k in parts))


def test_every_epoch_draws_from_its_own_stream_even_after_a_resume(tiny, tmp_path, monkeypatch):
    seeds = []
    draws = T._Draws

    def spy(cfg, *a):
        seeds.append(a[4].initial_seed())             # the batch/noise generator `gen`
        return draws(cfg, *a)

    monkeypatch.setattr(T, "_Draws", spy)
    _run(tiny, out=tmp_path / "a", epochs=3)
    _run(tiny, out=tmp_path / "b", epochs=1)
    _run(tiny, out=tmp_path / "b", epochs=3, resume=True)
    assert len(set(seeds[:3])) == 3 and seeds[3:] == seeds[:3]


def test_the_sample_grids_are_reproduced_from_the_seed(tiny, tmp_path):
    _run(tiny, out=tmp_path / "a", epochs=1)
    _run(tiny, out=tmp_path / "b", epochs=1)
    assert (tmp_path / "a" / "samples.png").read_bytes() == \
        (tmp_path / "b" / "samples.png").read_bytes()


def test_initial_weights_follow_the_training_seed_not_the_data_seed(tiny):
    def weights(**kw):
        return build_model(TrainConfig(**{**FAST, **kw}).resolved(), tiny).state_dict()

    a, b, c = weights(seed=0), weights(seed=1), weights(seed=0, data_seed=5)
    assert not all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_a_target_outside_the_classes_is_refused_before_training(tiny):
    from ganaug.data import ImageSet

    for wrong in (-1, 4):                             # tiny has 4 classes
        bad = ImageSet(tiny.images, tiny.targets.clone(), tiny.classes)
        bad.targets[5] = wrong
        with pytest.raises(ValueError, match=r"the labeled set must be non-empty and every "
                                             r"target in \[0, 4\)"):
            train(build_model(TrainConfig(**FAST).resolved(), tiny), bad, None,
                  TrainConfig(**FAST), progress=False)


def test_unlabeled_and_test_sets_that_cannot_be_used_are_refused_before_any_file(tiny,
                                                                                   tmp_path):
    """Before, an unlabeled set of another shape failed inside the first step, a test set of
    another shape after the first epoch (each leaving config.json behind), and test targets
    outside the classes were scored without a word."""
    from ganaug.data import ImageSet

    cfg = TrainConfig(**FAST)
    lab, unl = split_labeled(tiny, 4)
    small = ImageSet(torch.zeros(6, 1, 6, 6), torch.arange(6) % 4, tiny.classes)
    shifted = ImageSet(tiny.images, tiny.targets + 5, list("abcdefghi"))    # 9 classes
    for u, t, match in ((small, tiny, r"unlabeled images \(1, 6, 6\) do not match the "
                                      r"model's \(1, 8, 8\)"),
                        (unl, small, r"the test set \(images \(1, 6, 6\)\) must hold"),
                        (unl, shifted, r"every target in \[0, 4\): pass the test split"),
                        (unl, tiny.subset(torch.arange(0)), r"the test set .* at least one")):
        with pytest.raises(ValueError, match=match):
            train(build_model(cfg.resolved(), tiny), lab, u, cfg, test=t, out=tmp_path / "r",
                  progress=False)
        assert not (tmp_path / "r").exists()


def test_atomic_writes_replace_the_file_and_never_rewrite_it(tmp_path):
    from ganaug._io import atomic_write_text

    path = atomic_write_text(tmp_path / "m.json", "old")
    with open(path) as reader:                         # a reader of the old file
        atomic_write_text(path, "new")
        assert reader.read() == "old"                  # sees the old file whole
    assert path.read_text() == "new"


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    from ganaug._io import _atomic, atomic_write_bytes, atomic_write_text

    path = atomic_write_text(tmp_path / "m.json", "old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")
    def interrupted(f):                                # Ctrl-C in the middle of a write
        f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _atomic(path, interrupted, "w")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_a_file_system_that_refuses_chmod_still_gets_its_file(tmp_path, monkeypatch):
    """fchmod failing (some FUSE / SMB mounts) keeps mkstemp's mode and writes the file; it
    leaks no file descriptor."""
    import os

    from ganaug._io import atomic_write_text

    def refuse(fd, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for i in range(3):
        assert atomic_write_text(tmp_path / "m.json", str(i)).read_text() == str(i)
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_temporaries_of_a_killed_write_are_deleted_when_the_run_resumes(tiny, tmp_path):
    """A run killed while writing its checkpoint (kill -9) leaves a checkpoint-sized
    temporary file; training in that folder again deletes it, and only it."""
    _run(tiny, out=tmp_path, epochs=1)
    left = [tmp_path / ".checkpoint.pt.k2x9abcd.tmp", tmp_path / ".best.pt.q1w2e3r4.tmp"]
    other = tmp_path / ".eval.json.a1b2c3d4.tmp"          # another command's live write
    for p in (*left, other):
        p.write_bytes(b"half a checkpoint")
    lines = []
    _run(tiny, out=tmp_path, epochs=2, resume=True, log=lines.append)
    assert not any(p.exists() for p in left) and other.exists()
    assert any("deleted .checkpoint.pt.k2x9abcd.tmp" in line for line in lines)


def test_the_lazy_penalty_starts_on_the_first_step(tiny):
    r = _run(tiny, epochs=1, penalty_every=7).history[0]    # 6 steps: the 1st is penalised
    assert r["step"] == 6 and r["penalty"] > 0


def test_a_short_epochs_bar_leaves_nothing_in_a_redirected_log(capsys):
    from ganaug.progress import progress_bar
    bar = progress_bar(22, "epoch 1/100", True)      # stderr is captured: not a terminal
    for _ in range(22):
        bar.update(1)
    bar.close()
    assert capsys.readouterr().err == ""


def test_a_long_epochs_progress_in_a_redirected_log_is_whole_lines(capsys):
    """Redirected to a file, a long epoch's progress is a whole line every 30 s (no carriage
    return that would put the epoch's own line on the bar's), none once it is done."""
    from ganaug.progress import LogBar
    now = [0.0]
    bar = LogBar(100, "epoch 2/20", clock=lambda: now[0])
    for _ in range(99):
        now[0] += 0.5                                   # 0.5 s a step: a line at 30 s
        bar.update(1)
    now[0] += 30
    bar.update(1)                                       # the last step: no line
    bar.close()
    err = capsys.readouterr().err
    assert err == "epoch 2/20: step 60/100 (30 s, about 20 s left)\n" and "\r" not in err


def test_resume_on_other_data_is_refused_and_old_checkpoints_resume_unchecked(tiny, tmp_path):
    """The checkpoint records the data's fingerprint (split sizes, hashes of the labeled
    images and labels; plain values, weights_only loads them); a resume on other data is
    refused before anything is written, a checkpoint saved before fingerprints is not
    checked."""
    from ganaug.data import ImageSet
    _run(tiny, out=tmp_path, epochs=1)
    path = tmp_path / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    data = ckpt["data"]
    assert (data["labeled"], data["unlabeled"], data["test"]) == (16, 32, 48)
    assert all(isinstance(v, (int, str)) for v in data.values())
    more = ImageSet(torch.cat([tiny.images, tiny.images[:4]]),
                    torch.cat([tiny.targets, tiny.targets[:4]]), tiny.classes)
    relabeled = ImageSet(tiny.images, (tiny.targets + 1) % 4, tiny.classes)
    brighter = ImageSet((tiny.images + 0.01).clamp(-1, 1), tiny.targets, tiny.classes)
    stamp = path.stat().st_mtime_ns
    for other, message in ((more, r"unlabeled images 32 -> 36, test images 48 -> 52"),
                           (relabeled, r"the labels of the labeled images differ"),
                           (brighter, r"the labeled images differ")):
        with pytest.raises(ValueError, match=rf"cannot resume .*: this is not the data it "
                                             rf"trained on \({message}\); point --data-root"):
            _run(other, out=tmp_path, resume=True, epochs=2)
    assert path.stat().st_mtime_ns == stamp
    del ckpt["data"]                                  # as saved before fingerprints
    torch.save(ckpt, path)
    assert len(_run(more, out=tmp_path, resume=True, epochs=2).history) == 2
    assert torch.load(path, weights_only=True)["data"]["unlabeled"] == 36


def test_out_that_is_a_file_or_a_multi_seed_folder_is_refused_up_front(tiny, tmp_path):
    from ganaug.train import check_run_folder
    cfg = TrainConfig(**FAST)
    (tmp_path / "file").write_text("hi")
    for out, message in ((tmp_path / "file", "is a file: name a folder"),
                         (tmp_path / "file" / "run", "is under .*file, a file")):
        with pytest.raises(ValueError, match=message):
            check_run_folder(out, cfg, False)
    (tmp_path / "multi" / "seed-3").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds a multi-seed run .* pass --seeds 3 "):
        _run(tiny, out=tmp_path / "multi")
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == ["seed-3"]


def _noise(model):
    return [m.std for m in model.loss_net.modules() if type(m).__name__ == "GaussianNoise"]


def test_the_semi_supervised_objective_builds_the_mlp_loss_network_without_noise_layers(tiny):
    """build_model leaves the MLP loss network's noise layers off for sscls unless the config
    sets them; the other objectives keep the builder's 0.15 / 0.3; the conv pair is left to
    its builder; a checkpoint's options (a resumed run) go over the objective's default."""
    def model(objective="sscls", saved=None, **net):
        cfg = TrainConfig(objective=objective, net_options={"d_hidden": [8, 8], **net})
        return build_model(cfg.resolved(), tiny, saved)

    m = model()
    assert _noise(m) == [0.0, 0.0, 0.0] and m.net_options["input_noise"] == 0.0
    assert _noise(model("cls")) == [0.15, 0.3, 0.3]
    assert _noise(model("supervised")) == [0.15, 0.3, 0.3]
    assert _noise(model(input_noise=0.2)) == [0.2, 0.0, 0.0]          # set: kept
    assert _noise(model(hidden_noise=0.5)) == [0.0, 0.5, 0.5]
    old = {"net_options": {"input_noise": 0.15, "hidden_noise": 0.3}}   # begun before the change
    assert _noise(model(saved=old)) == [0.15, 0.3, 0.3]
    conv = build_model(TrainConfig(arch="conv", net_options={"g_width": 8, "d_width": 4})
                       .resolved(), tiny)
    assert conv.net_options["input_noise"] == 0.0 and "hidden_noise" not in conv.net_options


def test_the_decayed_learning_rate_reaches_both_optimisers(tiny, tmp_path):
    """The recorded lr is the one the optimisers step with (checkpointed param groups), and
    a decay changes the training from its first decayed epoch on."""
    st = _run(tiny, out=tmp_path / "d", epochs=2, lr_decay=0.5, lr_decay_every=1)
    assert [r["lr"] for r in st.history] == [st.config.lr, st.config.lr * 0.5]
    ck = torch.load(tmp_path / "d" / "checkpoint.pt", weights_only=True)
    for opt in ("opt_d", "opt_g"):
        assert [g["lr"] for g in ck[opt]["param_groups"]] == \
            [st.config.lr * 0.5] * len(ck[opt]["param_groups"])
    plain = _run(tiny, epochs=2)
    assert plain.history[0]["d_loss"] == st.history[0]["d_loss"]
    assert plain.history[1]["d_loss"] != st.history[1]["d_loss"]


def test_noise_layers_and_batches_draw_from_their_own_stream_per_epoch(tiny, tmp_path,
                                                                      monkeypatch):
    """The global RNG (noise layers, dropout) is re-seeded from (seed, epoch) too: another
    seed every epoch, never the batch generator's, and the same ones after a resume."""
    seen = []
    draws = T._Draws

    def spy(cfg, *a):
        seen.append((torch.initial_seed(), a[4].initial_seed()))   # (global, `gen`)
        return draws(cfg, *a)

    monkeypatch.setattr(T, "_Draws", spy)
    _run(tiny, out=tmp_path / "a", epochs=3)
    _run(tiny, out=tmp_path / "b", epochs=1)
    _run(tiny, out=tmp_path / "b", epochs=3, resume=True)
    glob, gen = [s for s, _ in seen[:3]], [g for _, g in seen[:3]]
    assert len(set(glob)) == 3 and not set(glob) & set(gen)
    assert seen[3:] == seen[:3]
    other = []
    monkeypatch.setattr(T, "_Draws", lambda cfg, *a: other.append(torch.initial_seed())
                        or draws(cfg, *a))
    _run(tiny, epochs=1, seed=1)
    assert other[0] != glob[0]                                     # the seed counts too


def test_each_epochs_recalibration_shuffles_by_its_own_seed(tiny, tmp_path, monkeypatch):
    """recalibrate_bn's pass is seeded by (seed, epoch): another shuffle every epoch, the
    same ones after a resume."""
    seeds = []
    real = T.recalibrate_batchnorm
    monkeypatch.setattr(T, "recalibrate_batchnorm",
                        lambda net, parts, bs, seed:
                        seeds.append(seed) or real(net, parts, bs, seed))
    _run(tiny, out=tmp_path / "a", epochs=3, recalibrate_bn=True)
    _run(tiny, out=tmp_path / "b", epochs=1, recalibrate_bn=True)
    _run(tiny, out=tmp_path / "b", epochs=3, recalibrate_bn=True, resume=True)
    assert len(set(seeds[:3])) == 3 and seeds[3:] == seeds[:3]


def test_an_epochs_losses_average_over_their_own_steps(tiny, monkeypatch):
    """With d_steps 2 the loss network's losses average over every step of the epoch, the
    generator's over its own steps alone; an epoch is ceil(images / batch) steps."""
    per_step = []

    class Spy(T.TrainStep):
        def __call__(self, *a, **k):
            out = super().__call__(*a, **k)
            per_step.append(out.clone())
            return out

    monkeypatch.setattr(T, "TrainStep", Spy)
    st = _run(tiny, epochs=1, d_steps=2, batch_size=10)          # 48 images: 5 steps
    steps = math.ceil(len(tiny) / 10)
    assert st.history[0]["step"] == len(per_step) == steps
    sums = torch.stack(per_step)
    g = [i for i in range(steps) if step_kind(i + 1, st.config, True)[1]]
    assert 0 < len(g) < steps
    r = st.history[0]
    assert r["sup_loss"] == pytest.approx(float(sums[:, 0].mean()), rel=1e-5)
    assert r["g_loss"] == pytest.approx(float(sums[g, 5].mean()), rel=1e-5)
    assert r["g_cond"] == pytest.approx(float(sums[g, 6].mean()), rel=1e-5, abs=1e-7)


def test_a_diverged_epoch_stops_training_and_writes_nothing_of_it(tiny, tmp_path):
    """An epoch whose losses are NaN (its weights are then too, and every later epoch's)
    stops training with an error that names the epoch, the terms and the fixes; the run
    folder keeps the last finite epoch: its checkpoint and metrics are not overwritten."""
    def poison(rec, model):
        if rec["epoch"] == 1:
            with torch.no_grad():
                for p in model.loss_net.parameters():
                    p.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"diverged in epoch 2 of 3 \(step \d+\): "
                       r"non-finite losses \(sup_loss nan.*keeps epoch 1 .*lower --lr \(now "):
        _run(tiny, tmp_path, epochs=3, on_epoch=poison)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["state"].values()
                                      if v.is_floating_point())
    with pytest.raises(FloatingPointError, match=r"diverged in epoch 2 of 3 .*\. Start a new"):
        _run(tiny, None, epochs=3, on_epoch=poison)              # no run folder: nothing kept


def test_cli_reports_a_diverged_run_in_one_line(tmp_path, capsys):
    from ganaug.cli import main
    assert main(["train", "--epochs", "2", "--lr", "1e12", "--out", str(tmp_path / "run"),
                 "--quiet", "--no-tensorboard"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ganaug: error: training diverged in epoch ") and "--lr (now 1e+12)" in last
    assert "Traceback" not in err and not (tmp_path / "run" / "summary.json").exists()


def test_a_batch_larger_than_the_training_set_is_warned_about(tiny):
    lines = []
    _run(tiny, epochs=1, batch_size=len(tiny) + 1, log=lines.append)
    assert any(f"batch_size {len(tiny) + 1} (--batch-size) is more than the {len(tiny)} "
               f"training images" in line for line in lines)
    lines.clear()
    _run(tiny, epochs=1, batch_size=len(tiny), log=lines.append)
    assert lines and not any("batch_size" in line for line in lines)


def test_a_class_without_labels_and_images_in_0_1_are_warned_about(tiny):
    """Training runs, but the log says which class has no labeled image, and that no image
    below 0 looks like [0, 1] images not rescaled to [-1, 1]; the tiny set (in [-1, 1],
    every class labeled) gets neither warning."""
    cfg = TrainConfig(**{**FAST, "epochs": 1, "objective": "cls"})
    lines = []
    for data in (tiny, tiny.subset(tiny.targets != 2)):
        for images in (data.images, (data.images + 1) / 2):
            lines.clear()
            lab = ImageSet(images, data.targets, data.classes)
            train(build_model(cfg.resolved(), tiny), lab, None, cfg, progress=False,
                  log=lines.append)
            empty = [line for line in lines if "no labeled images" in line]
            scale = [line for line in lines if "no training image has a value below 0" in line]
            assert len(empty) == (len(data) < len(tiny)) and len(scale) == (images.min() >= 0)
    assert empty == ["warning: class 'c' has no labeled images: the classifier never learns it "
                     "and the generator has no real image of it to imitate; add labeled images "
                     "of every class (or drop the empty ones)"]
    assert "(the lowest is 0.05" in scale[0] and "x * 2 - 1" in scale[0]


T = importlib.import_module("ganaug.train")


@pytest.mark.parametrize("col,name", [(5, "g_loss"), (6, "g_cond")])
def test_a_non_finite_generator_loss_alone_stops_training(tiny, tmp_path, monkeypatch, col, name):
    """A non-finite generator loss alone (g_loss / g_cond, sums[5:7]) stops training."""
    class Spy(T.TrainStep):
        def __call__(self, *a, **k):
            out = super().__call__(*a, **k).clone()
            out[col] = float("inf")
            return out

    monkeypatch.setattr(T, "TrainStep", Spy)
    with pytest.raises(FloatingPointError, match=rf"non-finite losses \({name} inf\)"):
        _run(tiny, tmp_path, epochs=1)
    assert not (tmp_path / "checkpoint.pt").exists()


T = importlib.import_module("ganaug.train")


def test_the_ema_decay_warms_up_over_the_runs_steps(tiny, tmp_path, monkeypatch):
    """The averaged networks' decay warms up, min(ema_decay, (1 + step) / (10 + step)),
    counted over the run's steps (also across a resume)."""
    decays = []

    class Spy(T.TrainStep):
        def __call__(self, b, nz, gamma, decay, penalize=True):
            decays.append(decay)
            return super().__call__(b, nz, gamma, decay, penalize)

    monkeypatch.setattr(T, "TrainStep", Spy)
    _run(tiny, tmp_path, epochs=1)
    st = _run(tiny, tmp_path, epochs=2, resume=True)
    n = st.history[-1]["step"]
    assert len(decays) == n > 2
    ema = st.config.ema_decay
    assert decays == [min(ema, (1 + s) / (10 + s)) for s in range(1, n + 1)]
    assert decays[0] < decays[-1] <= ema


def test_an_objective_without_a_generator_records_no_diversity(tiny):
    """An objective that trains no generator records no sample diversity (its
    generator's samples are noise)."""
    lines = []
    st = _run(tiny, epochs=1, objective="supervised", log=lines.append)
    assert all("diversity" not in r for r in st.history)
    assert not any(" div=" in s or s.startswith("warning: within their classes") for s in lines)
    adv = _run(tiny, epochs=1)                       # the control: sscls records it
    assert "diversity" in adv.history[0]


def test_gamma_rampup_is_named_as_without_effect_without_unlabeled_images(tiny):
    """Without unlabeled images, a set --gamma-rampup is named among the settings that
    have no effect (it only ramps the unlabeled term's weight)."""
    lines = []
    cfg = TrainConfig(**{**FAST, "epochs": 1, "gamma_rampup": 3})
    lab, _ = split_labeled(tiny, cfg.labels_per_class, cfg.data_seed)
    train(build_model(cfg.resolved(), tiny), lab, None, cfg, progress=False, log=lines.append)
    assert ("no unlabeled images: sscls's unlabeled terms are off, it trains on the labeled "
            "images alone; --gamma-rampup 3 therefore has no effect") in lines


def test_a_class_with_a_single_labeled_image_is_not_warned_about(tiny):
    """A class with one labeled image is not called a class without labeled images."""
    keep = (tiny.targets != 2) | (torch.arange(len(tiny)) == 2)     # one image of class 'c'
    lab = tiny.subset(keep)
    assert lab.class_counts() == [12, 12, 1, 12]
    cfg = TrainConfig(**{**FAST, "epochs": 1, "objective": "cls"})
    lines = []
    train(build_model(cfg.resolved(), tiny), lab, None, cfg, progress=False, log=lines.append)
    assert not [line for line in lines if "no labeled images" in line]


def test_images_from_exactly_0_are_warned_about(tiny):
    """[0, 1] training images whose lowest value is exactly 0 get the scale warning."""
    images = (tiny.images + 1) / 2
    images[0, 0, 0, 0] = 0.0
    cfg = TrainConfig(**{**FAST, "epochs": 1, "objective": "cls"})
    lines = []
    train(build_model(cfg.resolved(), tiny), ImageSet(images, tiny.targets, tiny.classes), None,
          cfg, progress=False, log=lines.append)
    scale = [line for line in lines if "no training image has a value below 0" in line]
    assert len(scale) == 1 and "(the lowest is 0)" in scale[0]


def test_unlabeled_images_below_0_count(tiny):
    """The scale warning looks at the unlabeled images too: [-1, 1] unlabeled ones beside [0, 1]
    labeled ones (an odd but not [0, 1] set) do not make it."""
    lab = ImageSet((tiny.images[:24] + 1) / 2, tiny.targets[:24], tiny.classes)
    unl = ImageSet(tiny.images[24:], tiny.targets[24:] * 0 - 1, tiny.classes)
    cfg = TrainConfig(**{**FAST, "epochs": 1, "objective": "sscls"})
    lines = []
    train(build_model(cfg.resolved(), tiny), lab, unl, cfg, progress=False, log=lines.append)
    assert not [line for line in lines if "no training image has a value below 0" in line]


def test_unused_unlabeled_images_are_not_looked_at(tiny):
    """Unlabeled images that an objective does not use (cls) do not hide the scale warning."""
    lab = ImageSet((tiny.images[:24] + 1) / 2, tiny.targets[:24], tiny.classes)
    unl = ImageSet(tiny.images[24:], tiny.targets[24:] * 0 - 1, tiny.classes)
    cfg = TrainConfig(**{**FAST, "epochs": 1, "objective": "cls"})
    lines = []
    train(build_model(cfg.resolved(), tiny), lab, unl, cfg, progress=False, log=lines.append)
    assert len([line for line in lines if "no training image has a value below 0" in line]) == 1


def test_a_killed_writes_temporaries_of_checkpoint_and_best_are_deleted(tiny, tmp_path):
    """train(): deletes the stale temporary files of its checkpoint and best.pt, and says
    which file each was left by."""
    out = tmp_path / "run"
    out.mkdir()
    stale = [out / ".checkpoint.pt.ab12.tmp", out / ".best.pt.cd34.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    logs = []
    _run(tiny, out, epochs=1, log=logs.append)
    assert not any(p.exists() for p in stale)
    for p, name in zip(stale, ("checkpoint.pt", "best.pt")):
        assert f"deleted {p.name}, left by a run killed while writing {name}" in logs


def _held(folder) -> bool:
    fcntl = pytest.importorskip("fcntl")
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_train_holds_the_lock_of_the_new_run_folder_it_makes(tiny, tmp_path):
    pytest.importorskip("fcntl")
    out, seen = tmp_path / "new", []
    _run(tiny, out, epochs=1, on_epoch=lambda rec, model: seen.append(_held(out)))
    assert seen == [True] and not _held(out)


def test_a_busy_folder_s_resume_stops_before_it_says_it_resumes(tiny, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    from ganaug._io import RunFolderBusy
    out = tmp_path / "run"
    _run(tiny, out, epochs=1)
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    logs = []
    try:
        with pytest.raises(RunFolderBusy):
            _run(tiny, out, resume=True, epochs=2, log=logs.append)
    finally:
        os.close(fd)
    assert not any("resuming" in s for s in logs), logs


def test_a_notebook_keeps_tqdm_and_a_redirected_log_gets_whole_lines(monkeypatch):
    """progress_bar: output redirected to a file gets LogBar's whole lines; in a notebook (ipykernel
    loaded; its stderr is no tty) tqdm's widget, not log lines."""
    monkeypatch.setattr(sys, "stderr", open("/dev/null", "w"))     # no tty
    try:
        assert isinstance(progress_bar(10, "epoch 1/2", True), LogBar)
        monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
        bar = progress_bar(10, "epoch 1/2", True)
        try:
            assert not isinstance(bar, LogBar)
        finally:
            bar.close()
    finally:
        sys.stderr.close()


def test_a_generator_whose_loss_fell_to_zero_is_warned_about():
    """The last epoch's generator loss (the critic's loss of the fakes, never negative) under
    GENERATOR_STALL: the critic saturated and the generator stopped learning. Not for
    objectives without a generator, nor for feature matching (a distance), nor for the
    unconditional LS and WGAN critics, whose loss (-logsumexp a) has no floor."""
    T = importlib.import_module("ganaug.train")
    rec = {"epoch": 30, "g_loss": 4.5e-10}
    for objective in ("cls", "gan", "cgan", "cwgan-div"):
        cfg = TrainConfig(objective=objective).resolved()
        note = T._generator_stalled(rec, cfg, get_objective(objective))
        assert note.startswith("the generator's loss fell to 4.5e-10 (epoch 30, the last)")
        assert "stopped learning" in note and "benchmarks/README.md" in note
    cfg = TrainConfig(objective="cls").resolved()
    for g in (T.GENERATOR_STALL, 0.3, -1e-9):              # learning, or a signed loss
        assert T._generator_stalled({"epoch": 3, "g_loss": g}, cfg, get_objective("cls")) is None
    for objective in ("ls", "gls", "wgan", "wgan-gp", "wgan-div"):     # the logit: no floor
        cfg = TrainConfig(objective=objective).resolved()
        assert T._generator_stalled(rec, cfg, get_objective(objective)) is None
    fm = TrainConfig(objective="sscls").resolved()          # feature matching: a distance
    assert fm.g_loss == "feature-matching"
    assert T._generator_stalled(rec, fm, get_objective("sscls")) is None
    sup = TrainConfig(objective="supervised").resolved()
    assert T._generator_stalled(rec, sup, get_objective("supervised")) is None


def test_the_unconditional_ls_generator_keeps_learning(tmp_path):
    """The unconditional LS-GAN critic compares -logsumexp a (before, softplus of it, which
    saturated within three epochs on digits: generator loss 4e-8, then the stall warning):
    three epochs end with the generator's loss far from 0 and without the warning."""
    from ganaug.cli import main
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["train", "--objective", "ls", "--epochs", "3", "--quiet",
                     "--no-tensorboard", "--out", str(tmp_path / "ls")]) == 0
    assert "generator's loss fell to" not in err.getvalue()
    g = [json.loads(line)["g_loss"] for line in
         (tmp_path / "ls" / "metrics.jsonl").read_text().splitlines()]
    assert len(g) == 3 and all(abs(v) > 1e-3 for v in g), g


def test_a_generator_loss_of_exactly_zero_is_warned_about():
    """A generator loss of exactly 0.0 (a saturated critic's loss underflows to 0 in float32)
    is the most stalled generator there is."""
    T = importlib.import_module("ganaug.train")
    cfg = TrainConfig(objective="cls").resolved()
    note = T._generator_stalled({"epoch": 3, "g_loss": 0.0}, cfg, get_objective("cls"))
    assert note is not None and note.startswith("the generator's loss fell to 0.0e+00 (epoch 3")


def test_a_small_but_not_vanishing_generator_loss_is_not_warned_about():
    """1e-4 and 1e-5 are a learning generator's loss, not a saturated critic's about 0."""
    T = importlib.import_module("ganaug.train")
    cfg = TrainConfig(objective="cls").resolved()
    for g in (1e-4, 1e-5):
        assert T._generator_stalled({"epoch": 3, "g_loss": g}, cfg, get_objective("cls")) is None
    assert T._generator_stalled({"epoch": 3, "g_loss": 1e-7}, cfg, get_objective("cls"))


def test_a_last_epoch_without_a_generator_step_is_not_taken_for_a_stalled_generator(tiny):
    """d_steps larger than an epoch's steps: the last epoch may hold no generator step, and
    its g_loss of 0 is no reading; the generator trained (step 10) and nothing saturated."""
    lines = []
    state = _run(tiny, objective="gan", d_steps=10, epochs=3, log=lines.append)  # 6 steps/epoch
    assert [r["step"] for r in state.history] == [6, 12, 18]   # generator steps: 10 only
    assert state.history[-1]["g_loss"] == 0.0
    assert not [s for s in lines if "generator's loss fell to" in s], lines[-1]


def test_ninety_seconds_is_told_in_minutes():
    from ganaug.progress import duration
    assert duration(89.4) == "89 s"
    assert duration(90) == "2 min" and duration(119) == "2 min"
