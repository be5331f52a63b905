"""The loss network's BatchNorm inside the training step (the conv pair has it; the MLP pair
does not): the generator's step sees its fakes normalised together with the batch's reals,
as the loss network's own update does, and only that update gathers running statistics."""
import pytest
import torch

from ganaug import TrainConfig, build_model
from ganaug import step as S
from _tiny import CONV, FAST, colour, first_draw


def _step(data, **kw):
    cfg = TrainConfig(**{**CONV, **kw}).resolved()
    model = build_model(cfg, data)
    return cfg, model, S.TrainStep(model, cfg, torch.device("cpu"))


def _tracked(net: torch.nn.Module) -> list[int]:
    return [int(m.num_batches_tracked) for m in net.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("kw", [
    dict(objective="sscls", lipschitz="zero-gp"),                       # feature matching
    dict(objective="sscls", fm_layers="all", fm_real="unlabeled"),
    dict(objective="cls", lipschitz="gp"),                              # L(G(z, y), y)
    dict(objective="sscls", lipschitz="div", consistency=1.0, consistency_teacher="net"),
])
def test_only_the_loss_networks_update_pass_gathers_running_statistics(kw):
    data = colour()
    torch.manual_seed(0)
    cfg, model, step = _step(data, **kw)
    before = _tracked(model.loss_net)
    assert before and step.nets.batch_stats
    b, nz = first_draw(data, cfg)
    step(b, nz, gamma=1.0, decay=0.0)
    assert nz.z is not None and (nz.eps is not None or cfg.lipschitz == "div")
    # one pass counted: reals and fakes together; not the penalty's interpolates, the
    # generator's passes or the "net" teacher's
    assert _tracked(model.loss_net) == [n + 1 for n in before]
    assert all(m.track_running_stats for m in model.loss_net.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))


def test_feature_matching_sees_a_rescaling_of_the_fakes_through_batchnorm():
    data = colour()
    torch.manual_seed(0)
    cfg, model, step = _step(data, objective="sscls", g_cond_weight=0.0,
                             net_options={**CONV["net_options"], "input_noise": 0.0,
                                          "dropout": 0.0})
    b, _ = first_draw(data, cfg)
    ell = S._ell(step.obj, cfg.loss_form)

    def fm(x_g):
        with torch.no_grad(), step.nets.frozen_stats():
            return S._generator_loss(cfg, step.nets, b, x_g, ell, 1).sum().item()

    same, scaled = fm(b.x.clone()), fm(3 * b.x)
    # fakes alone would be normalised by their own statistics: 3 x the reals would match
    # the reals' mean features (about 1e-12); in one pass with the reals they do not
    assert scaled > 1e-3 and scaled > 1e4 * max(same, 1e-12)


def test_nets_without_batchnorm_keep_separate_passes(tiny):
    cfg = TrainConfig(**FAST).resolved()
    model = build_model(cfg, tiny)
    nets = S.TrainStep(model, cfg, torch.device("cpu")).nets
    assert not nets.batch_stats
    with nets.frozen_stats():
        pass


def _bn_step(**kw):
    """A conv (BatchNorm) step without noise layers or dropout: passes are repeatable."""
    data = colour()
    torch.manual_seed(0)
    cfg, model, step = _step(data, net_options={**CONV["net_options"], "input_noise": 0.0,
                                                "dropout": 0.0}, **kw)
    b, nz = first_draw(data, cfg)
    with torch.no_grad():
        x_g = step.nets.g(nz.z, b.y_gen)
    return cfg, step, b, x_g, S._ell(step.obj, cfg.loss_form)


def test_the_generators_loss_reads_the_fakes_rows_of_the_joint_pass():
    """g_loss='loss' with BatchNorm: mean ell(a(G(z)), y) with the fakes normalised together
    with the batch's reals, as in the loss network's own update (not a pass of fakes alone)."""
    cfg, step, b, x_g, ell = _bn_step(objective="cls", lipschitz="gp", g_loss="loss")
    m = len(b.x)
    with torch.no_grad(), step.nets.frozen_stats():
        loss, cond = S._generator_loss(cfg, step.nets, b, x_g, ell, 1).tolist()
        joint = ell(step.nets.d(torch.cat([b.x, x_g]))[m:], b.y_crit).mean().item()
        alone = ell(step.nets.d(x_g), b.y_crit).mean().item()
    assert cond == 0.0
    assert loss == pytest.approx(joint, rel=1e-6)
    assert abs(joint - alone) > 1e-4 * abs(joint)      # the test tells the two passes apart


def test_the_conditional_term_reads_the_fakes_activations_of_the_joint_pass():
    """Feature matching + g_cond_weight with BatchNorm: the conditional term is the weight x
    mean L(a(G(z, y)), y) over the fakes' rows of the joint pass, not the reals' rows."""
    from ganaug import objectives as O
    cfg, step, b, x_g, ell = _bn_step(objective="sscls", g_cond_weight=2.0)
    m = len(b.x)
    with torch.no_grad(), step.nets.frozen_stats():
        _, cond = S._generator_loss(cfg, step.nets, b, x_g, ell, 1).tolist()
        a = step.nets.d(torch.cat([b.x, x_g]))
        want = 2.0 * O.conditional_loss(a[m:], b.y_gen, cfg.loss_form).mean().item()
        reals = 2.0 * O.conditional_loss(a[:m], b.y_gen, cfg.loss_form).mean().item()
    assert cond == pytest.approx(want, rel=1e-6)
    assert abs(want - reals) > 1e-4 * want


def test_feature_matching_holds_the_real_features_fixed_through_batchnorm():
    """In the joint pass the reals' features depend on the fakes through the batch statistics;
    they are still the target: the generator's gradient comes through the fakes' features
    alone (as without BatchNorm, where the reals' pass runs without gradient)."""
    from ganaug import objectives as O
    cfg, step, b, x_g, ell = _bn_step(objective="sscls", g_cond_weight=0.0)
    m, x_g = len(b.x), x_g.clone().requires_grad_(True)
    with step.nets.frozen_stats():
        loss = S._generator_loss(cfg, step.nets, b, x_g, ell, 1).sum()
        (got,) = torch.autograd.grad(loss, x_g)
        _, h = step.nets.d(torch.cat([b.x, x_g]), features=True)
        (both,) = torch.autograd.grad(O.feature_matching(h[:m], h[m:]), x_g, retain_graph=True)
        (want,) = torch.autograd.grad(O.feature_matching(h[:m].detach(), h[m:]), x_g)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(both, want)              # the real side's path is not negligible
