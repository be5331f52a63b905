"""Every registered architecture: forward shapes, backward to every parameter, no NaNs."""
import pytest
import torch

from torch import nn

from ganaug.nets import create_nets, list_archs, recalibrate_batchnorm, resolve_arch

SHAPES = {"mlp": [(1, 8, 8), (1, 28, 28)], "conv": [(3, 32, 32), (1, 16, 16)]}
CASES = [(arch, shape) for arch in list_archs() for shape in SHAPES.get(arch, [(3, 32, 32)])]


@pytest.mark.parametrize("arch,shape", CASES)
@pytest.mark.parametrize("norm", ["none", "weight", "spectral"])
def test_forward_backward_no_nan(arch, shape, norm):
    torch.manual_seed(0)
    g, d = create_nets(arch, shape, 5, norm=norm)
    z = torch.rand(6, g.noise_dim) * 2 - 1
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    x = g(z, y)
    assert x.shape == (6, *shape)
    assert x.min() >= -1 and x.max() <= 1
    a, h = d(x, features=True)
    assert a.shape == (6, 5) and h.shape[0] == 6
    assert torch.isfinite(a).all() and torch.isfinite(x).all()
    (a.square().mean() + h.mean()).backward()
    for net in (g, d):
        for name, p in net.named_parameters():
            assert p.grad is not None, f"{arch}: {name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{arch}: {name} has a non-finite gradient"


@pytest.mark.parametrize("arch,shape", CASES)
@pytest.mark.parametrize("norm", ["weight", "spectral"])
def test_the_loss_networks_norm_is_applied_to_every_layer(arch, shape, norm):
    from torch.nn.utils import parametrize
    _, d = create_nets(arch, shape, 5, norm=norm)
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    kind = {"weight": "_WeightNorm", "spectral": "_SpectralNorm"}[norm]
    assert all(type(m.parametrizations.weight[0]).__name__ == kind for m in layers)
    if norm == "spectral":            # BatchNorm would undo the Lipschitz bound
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
        d.train()
        for _ in range(20):           # power iterations run in train-mode forwards
            d(torch.rand(4, *shape))
        top = [torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() for m in layers]
        assert max(abs(t - 1) for t in top) < 0.05, top
    _, plain = create_nets(arch, shape, 5, norm="none")
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


@pytest.mark.parametrize("arch,shape", CASES)
def test_the_generator_follows_its_label(arch, shape):
    torch.manual_seed(0)
    g, _ = create_nets(arch, shape, 5)
    g.eval()
    z = (torch.rand(1, g.noise_dim) * 2 - 1).repeat(5, 1)          # one noise, every class
    x = g(z, torch.arange(5))
    assert all((x[i] - x[j]).abs().max() > 1e-3 for i in range(5) for j in range(i))


@pytest.mark.parametrize("shape,classes,match", [
    ((1, 0, 0), 3, "three positive integers"), ((1, 8), 3, "three positive integers"),
    ((1, -8, 8), 3, "three positive integers"), ((1, 8.5, 8), 3, "three positive integers"),
    ((1, 8, 8), 2.5, "integer of at least 2"), ((1, 8, 8), 1, "integer of at least 2")])
def test_bad_image_shapes_and_class_counts_are_refused(shape, classes, match):
    with pytest.raises(ValueError, match=match):
        create_nets("mlp", shape, classes)


@pytest.mark.parametrize("arch", list_archs())
def test_labels_outside_range_are_rejected(arch):
    g, _ = create_nets(arch, SHAPES.get(arch, [(3, 32, 32)])[0], 3)
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 3\)"):
        g(torch.zeros(2, g.noise_dim), torch.tensor([0, 3]))


def test_unknown_arch_and_bad_shapes():
    with pytest.raises(ValueError, match="unknown architecture"):
        create_nets("resnet9000", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="divisible by 8"):
        create_nets("conv", (1, 28, 28), 10)


@pytest.mark.parametrize("arch,shape", CASES)
def test_all_hidden_layers_are_returned_first_to_last(arch, shape):
    torch.manual_seed(0)
    _, d = create_nets(arch, shape, 5)
    d.eval()                                   # no noise / dropout: the passes agree
    x = torch.rand(6, *shape) * 2 - 1
    a_all, hs = d(x, features="all")
    a, h = d(x, features=True)
    torch.testing.assert_close(a_all, a)
    assert isinstance(hs, list) and len(hs) >= 2 and all(t.shape[0] == 6 for t in hs)
    last = hs[-1] if hs[-1].dim() == 2 else hs[-1].mean(dim=(2, 3))   # conv: pooled map
    torch.testing.assert_close(last, h)


def test_mlp_generator_with_a_weight_normalised_output_layer(tmp_path):
    from ganaug import CLSGAN
    torch.manual_seed(0)
    plain, _ = create_nets("mlp", (1, 8, 8), 4)
    torch.manual_seed(0)
    g, _ = create_nets("mlp", (1, 8, 8), 4, g_out_norm="weight")
    out = g.net[-2]
    assert hasattr(out, "parametrizations") and not hasattr(plain.net[-2], "parametrizations")
    z, y = torch.rand(5, 100) * 2 - 1, torch.tensor([0, 1, 2, 3, 0])
    g.eval(), plain.eval()
    # the same function at initialisation (g = ||v|| row by row); only the updates differ
    torch.testing.assert_close(g(z, y), plain(z, y))
    g(z, y).square().mean().backward()
    assert all(p.grad is not None for p in g.parameters())
    with pytest.raises(ValueError, match=r"\(net_options g_out_norm\) must be 'none' or 'weight'"):
        create_nets("mlp", (1, 8, 8), 4, g_out_norm="spectral")
    with pytest.raises(ValueError, match=r"\(net_options g_norm\) must be 'batch' or 'none'"):
        create_nets("mlp", (1, 8, 8), 4, g_norm="layer")
    # the option travels with the model: save, load, same samples
    m = CLSGAN((1, 8, 8), 4, "mlp", g_out_norm="weight")
    m.save(tmp_path / "m.pt")
    same = CLSGAN.load(tmp_path / "m.pt")
    lab = torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(m.sample(lab, torch.Generator().manual_seed(0)),
                               same.sample(lab, torch.Generator().manual_seed(0)))


def test_a_misspelt_net_option_is_named_before_any_work():
    from ganaug import TrainConfig
    with pytest.raises(ValueError, match=r"'g_out_nrm' for arch mlp \(did you mean 'g_out_norm'\?\)"):
        TrainConfig(arch="mlp", net_options={"g_out_nrm": "weight"}).resolved()
    with pytest.raises(ValueError, match="'g_out_norm' for arch conv; its options: conv: "):
        TrainConfig(arch="conv", net_options={"g_out_norm": "weight"}).resolved()
    # auto: a key that one of the pairs takes passes here, and is checked again at build time
    TrainConfig(arch="auto", net_options={"g_out_norm": "weight"}).resolved()
    with pytest.raises(ValueError, match="'g_out_norm' for arch conv"):
        create_nets("auto", (3, 32, 32), 10, g_out_norm="weight")


@pytest.mark.parametrize("arch, shape, options, match", [
    ("mlp", (1, 8, 8), {"d_hidden": [5e2, 250]}, r"d_hidden must be a list of positive whole "
                                                 r"numbers .* got \[500.0, 250\]"),
    ("mlp", (1, 8, 8), {"g_hidden": 5}, "g_hidden must be a list"),
    ("mlp", (1, 8, 8), {"g_hidden": []}, "g_hidden must be a list"),
    ("mlp", (1, 8, 8), {"d_hidden": [64, True]}, "d_hidden must be a list"),
    ("mlp", (1, 8, 8), {"input_noise": -0.1}, "input_noise must be a number >= 0"),
    ("mlp", (1, 8, 8), {"hidden_noise": "abc"}, "hidden_noise must be a number >= 0"),
    ("mlp", (1, 8, 8), {"hidden_noise": float("nan")}, "hidden_noise must be a number >= 0"),
    ("conv", (3, 16, 16), {"dropout": 1.0}, r"dropout must be a rate in \[0, 1\)"),
    ("conv", (3, 16, 16), {"d_width": 8.5}, "d_width must be a positive whole number"),
    ("conv", (3, 16, 16), {"g_width": 0}, "g_width must be a positive whole number"),
    ("mlp", (1, 8, 8), {"noise_dim": -1}, "noise_dim must be a positive whole number, got -1"),
    ("mlp", (1, 8, 8), {"noise_dim": "abc"}, "noise_dim must be a positive whole number"),
    ("conv", (3, 16, 16), {"noise_dim": 0}, "noise_dim must be a positive whole number, got 0"),
])
def test_bad_net_option_values_are_named_before_any_network_is_built(arch, shape, options, match):
    """Before, a float width or a lone number was a TypeError from deep inside torch, and a
    negative noise std silently meant no noise."""
    with pytest.raises(ValueError, match=match):
        create_nets(arch, shape, 10, **options)


def test_good_net_option_values_of_other_types_build_the_same_networks():
    import numpy as np
    torch.manual_seed(0)
    _, a = create_nets("mlp", (1, 8, 8), 10, d_hidden=(64, 32), input_noise=0)
    torch.manual_seed(0)
    _, b = create_nets("mlp", (1, 8, 8), 10, d_hidden=[np.int64(64), 32], input_noise=0.0)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_registered_builder_with_kwargs_takes_any_option():
    from ganaug.nets import check_net_options, register
    from ganaug.nets._registry import ARCHS

    @register("test-anything")
    def build(image_shape, num_classes, **options):
        return create_nets("mlp", image_shape, num_classes)

    try:
        check_net_options("test-anything", {"whatever": 1})
        create_nets("test-anything", (1, 8, 8), 3, whatever=1)
    finally:
        del ARCHS["test-anything"]


def test_the_conv_loss_network_is_designs_nine_convolutions():
    """DESIGN.md: 96, 96, 96 stride 2, 192, 192, 192 stride 2, 192, 192, 1x1 192 (3x3, with
    4x4 for the strided ones), then a global mean pool and a linear layer to C."""
    _, d = create_nets("conv", (3, 32, 32), 10)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (96, 3, 1), (96, 3, 1), (96, 4, 2), (192, 3, 1), (192, 3, 1), (192, 4, 2),
        (192, 3, 1), (192, 3, 1), (192, 1, 1)]
    assert d(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_the_conv_generator_is_designs_transposed_convolutions_and_tanh():
    """DESIGN.md: [z, one_hot(y)] -> 512 x (S/8)^2 -> transposed convolutions 256, 128, C_img
    (4x4, stride 2) -> tanh."""
    g, _ = create_nets("conv", (3, 32, 32), 10)
    assert g.fc[0].in_features == 110 and g.fc[0].out_features == 512 * 4 * 4
    ups = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0]) for m in ups] == [
        (512, 256, 4, 2), (256, 128, 4, 2), (128, 3, 4, 2)]
    assert type(g.net[-1]) is torch.nn.Tanh and type(g.net[-2]) is torch.nn.ConvTranspose2d


def test_both_generators_end_in_tanh():
    for arch, shape in (("mlp", (1, 8, 8)), ("conv", (1, 16, 16))):
        g, _ = create_nets(arch, shape, 3)
        assert type(g.net[-1]) is torch.nn.Tanh, arch
        g.eval()
        z, y = torch.rand(3, g.noise_dim) * 2 - 1, torch.tensor([0, 1, 2])
        pre = g.net[:-1](g.fc(torch.cat([z, torch.eye(3)[y]], 1)).view(3, -1, 2, 2)) \
            if arch == "conv" else g.net[:-1](torch.cat([z, torch.eye(3)[y]], 1))
        torch.testing.assert_close(g(z, y), torch.tanh(pre).view(3, *shape))


def test_the_conv_loss_network_has_batchnorm_and_leakyrelu_0_2_after_every_convolution():
    _, d = create_nets("conv", (3, 32, 32), 10)
    mods = list(d.features)
    convs = [i for i, m in enumerate(mods) if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 9
    for i in convs:
        assert type(mods[i + 1]) is torch.nn.BatchNorm2d and type(mods[i + 2]) is torch.nn.LeakyReLU
        assert mods[i + 2].negative_slope == 0.2
    assert isinstance(mods[-2], torch.nn.AdaptiveAvgPool2d) and d.head.in_features == 192


def test_the_mlp_loss_network_uses_leakyrelu_0_2():
    _, d = create_nets("mlp", (1, 8, 8), 10)
    slopes = [m.negative_slope for m in d.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert slopes == [0.2] * 5


def test_conv_weights_start_normal_0_02():
    """DESIGN.md: weights N(0, 0.02)."""
    torch.manual_seed(0)
    g, d = create_nets("conv", (3, 32, 32), 10)
    for net in (g, d):
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                assert m.weight.std().item() == pytest.approx(0.02, rel=0.2), m
                assert not m.bias.any()


def test_the_conv_options_act():
    g, d = create_nets("conv", (3, 32, 32), 10, g_width=64, d_width=8, dropout=0.3,
                       input_noise=0.2)
    assert [m.in_channels for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)] == \
        [64, 32, 16]
    assert [m.out_channels for m in d.modules() if isinstance(m, torch.nn.Conv2d)] == \
        [8, 8, 8, 16, 16, 16, 16, 16, 16]
    mods = list(d.features)
    drops = [i for i, m in enumerate(mods) if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 2 and all(mods[i - 1].__class__ is torch.nn.LeakyReLU for i in drops)
    assert all(mods[i].p == 0.3 for i in drops)
    assert type(mods[0]).__name__ == "GaussianNoise" and mods[0].std == 0.2


def test_the_mlp_options_act():
    g, d = create_nets("mlp", (1, 8, 8), 3, g_norm="none", input_noise=0.05, hidden_noise=0.4)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in g.modules())
    noise = [m.std for m in d.modules() if type(m).__name__ == "GaussianNoise"]
    assert noise == [0.05] + [0.4] * 5
    _, default = create_nets("mlp", (1, 8, 8), 3)
    assert [m.std for m in default.modules() if type(m).__name__ == "GaussianNoise"] == \
        [0.15] + [0.3] * 5
    d.train()
    x = torch.rand(4, 1, 8, 8)
    assert not torch.equal(d(x), d(x))              # noise in training
    d.eval()
    assert torch.equal(d(x), d(x))                  # none in evaluation


def test_auto_picks_the_mlp_up_to_28x28x1():
    from ganaug.nets import resolve_arch
    assert resolve_arch("auto", (1, 28, 28)) == "mlp" and resolve_arch("auto", (1, 8, 8)) == "mlp"
    assert resolve_arch("auto", (1, 32, 32)) == "conv" and resolve_arch("auto", (3, 16, 16)) == "mlp"
    assert resolve_arch("conv", (1, 8, 8)) == "conv"


def test_a_models_net_options_reach_its_networks_and_defaults_fill_the_rest():
    from ganaug import CLSGAN
    from ganaug.nets import resolved_net_options
    m = CLSGAN((1, 8, 8), 4, "mlp", d_hidden=(16, 8), g_out_norm="weight", noise_dim=7)
    assert m.noise_dim == 7 and hasattr(m.generator.net[-2], "parametrizations")
    assert [l.out_features for l in m.loss_net.modules() if isinstance(l, torch.nn.Linear)] == \
        [16, 8, 4]
    opts = resolved_net_options("mlp", {"d_hidden": (16, 8)})
    assert opts["d_hidden"] == (16, 8) and opts["input_noise"] == 0.15 and opts["g_norm"] == "batch"


# ------------------------------------------------------ from a mutation run of the nets
def test_the_noise_layers_add_noise_of_their_std_in_training_only():
    """GaussianNoise(std) adds N(0, std^2) in training mode (Salimans et al.'s noise layers),
    nothing in eval mode."""
    _, d = create_nets("mlp", (1, 8, 8), 3, input_noise=0.05, hidden_noise=0.4)
    layers = [m for m in d.modules() if type(m).__name__ == "GaussianNoise"]
    torch.manual_seed(0)
    x = torch.zeros(20000, 8)
    for layer, std in zip(layers, [0.05] + [0.4] * 5):
        layer.train()
        noise = layer(x) - x
        assert noise.mean().abs().item() < 0.02 * std + 1e-3
        assert noise.std().item() == pytest.approx(std, rel=0.05), std
        layer.eval()
        assert torch.equal(layer(x), x)


def test_a_trained_nets_statistics_are_replaced_not_averaged_in():
    """A net that trained (BatchNorm's batch count > 0, as an EMA loss network after an
    epoch) gets the images' own statistics: the old ones do not weigh in."""
    net = nn.Sequential(nn.BatchNorm1d(3)).train()
    g = torch.Generator().manual_seed(0)
    for _ in range(50):                                     # training batches elsewhere
        net(torch.randn(8, 3, generator=g) * 4 + 10)
    x = torch.randn(120, 3, generator=g) + torch.tensor([5.0, -1.0, 0.0])
    assert recalibrate_batchnorm(net, [x], batch_size=40, seed=3)
    torch.testing.assert_close(net[0].running_mean, x.mean(0))
    assert net[0].momentum == 0.1


def test_every_hidden_layers_features_carry_the_gradient_to_the_generator():
    """fm_layers="all": the generator is trained through every hidden layer's activations,
    so each must pass the gradient back to the images (and so to the generator)."""
    for arch, shape in (("mlp", (1, 8, 8)), ("conv", (1, 16, 16))):
        torch.manual_seed(0)
        g, d = create_nets(arch, shape, 3)
        z, y = torch.rand(4, g.noise_dim) * 2 - 1, torch.tensor([0, 1, 2, 0])
        _, hs = d(g(z, y), features="all")
        for k, h in enumerate(hs):
            g.zero_grad()
            assert h.requires_grad, (arch, k)
            h.mean().backward(retain_graph=True)
            assert any(p.grad is not None and p.grad.abs().sum() > 0
                       for p in g.parameters()), (arch, k)


def test_the_mlp_generators_hidden_widths_come_from_g_hidden():
    """net_options g_hidden sets the MLP generator's hidden layer widths."""
    g, _ = create_nets("mlp", (1, 8, 8), 3, g_hidden=[32, 16], noise_dim=10)
    assert [(m.in_features, m.out_features) for m in g.modules()
            if isinstance(m, torch.nn.Linear)] == [(13, 32), (32, 16), (16, 64)]
    assert [m.num_features for m in g.modules() if isinstance(m, torch.nn.BatchNorm1d)] == [32, 16]


def test_the_conv_generators_projection_has_batchnorm_and_relu():
    """DESIGN.md/DCGAN: [z, one_hot(y)] -> Linear -> BatchNorm -> ReLU -> 512 x (S/8)^2."""
    g, _ = create_nets("conv", (3, 32, 32), 10)
    assert [type(m) for m in g.fc] == [torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.ReLU]
    assert g.fc[1].num_features == 512 * 4 * 4


def test_conv_batchnorm_scales_start_normal_1_0_02():
    """DESIGN.md: BatchNorm scale N(1, 0.02), shift 0, in both conv networks."""
    torch.manual_seed(0)
    g, d = create_nets("conv", (3, 32, 32), 10)
    for net in (g, d):
        w = torch.cat([m.weight.detach() for m in net.modules()
                       if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))])
        assert w.mean().item() == pytest.approx(1.0, abs=0.01)
        assert w.std().item() == pytest.approx(0.02, rel=0.2)


def test_auto_counts_the_colour_channels():
    """auto: the MLP for at most 784 values C x H x W; 28x28 colour images are 2352 values
    and get the conv pair."""
    assert resolve_arch("auto", (3, 28, 28)) == "conv"
    assert resolve_arch("auto", (3, 24, 24)) == "conv" and resolve_arch("auto", (1, 24, 24)) == "mlp"
    g, _ = create_nets("auto", (3, 24, 24), 4)
    assert type(g).__name__ == "ConvGenerator"
