import copy
import json

import pytest
import torch

from ganaug import CLSGAN, CheckpointError
from ganaug.model import _concrete, as_labels, pick_device


class Evil:
    """Any class: unpickling it would run arbitrary code paths."""


def test_predict_is_argmin_of_the_loss():
    torch.manual_seed(0)
    m = CLSGAN((1, 8, 8), 4, "mlp")
    x = torch.rand(10, 1, 8, 8) * 2 - 1
    losses = torch.stack([m.loss(x, torch.full((10,), c)) for c in range(4)], dim=1)
    assert torch.equal(m.predict(x), losses.argmin(dim=1))


def test_sampling_is_reproducible_labelled_and_in_range():
    m = CLSGAN((1, 8, 8), 4, "mlp")
    a, la = m.sample_per_class(3, seed=1)
    b, _ = m.sample_per_class(3, seed=1)
    c, _ = m.sample_per_class(3, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (12, 1, 8, 8) and la.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert a.min() >= -1 and a.max() <= 1
    z = m.noise(1000, torch.Generator().manual_seed(0))          # uniform in [-1, 1]
    assert z.shape == (1000, m.noise_dim) and -1 <= z.min() < -0.99 and 0.99 < z.max() <= 1
    assert m(torch.tensor([1, 2])).shape == (2, 1, 8, 8)   # the model is a labels -> images sampler
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        m.sample(torch.tensor([4]))


def test_save_load_round_trip(tmp_path):
    m = CLSGAN((1, 8, 8), 4, "mlp", ["w", "x", "y", "z"], d_hidden=[16], g_hidden=[16])
    torch.manual_seed(1)
    with torch.no_grad():                      # every weight and buffer away from its default
        for t in [*m.parameters(), *m.buffers()]:
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5)
    m.save(tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["model"]["classes"] == ["w", "x", "y", "z"]
    m2 = CLSGAN.load(tmp_path / "m.pt")
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(m.activations(x), m2.activations(x))
    assert torch.equal(m.sample_per_class(2)[0], m2.sample_per_class(2)[0])
    a, b = m.state_dict(), m2.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any("running_mean" in k for k in a)   # the generator's BatchNorm statistics too


def test_bad_checkpoints(tmp_path):
    good = tmp_path / "good.pt"
    CLSGAN((1, 8, 8), 4, "mlp").save(good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        CLSGAN.load(cut)

    evil = tmp_path / "evil.pt"
    torch.save({"format": "ganaug", "x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="arbitrary Python objects"):
        CLSGAN.load(evil)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a ganaug checkpoint"):
        CLSGAN.load(other)


def test_a_checkpoint_in_torchs_legacy_format_loads(tmp_path):
    """torch.save's format before 1.6 (no zip, so no CRCs to check) is read, not called
    corrupted; cut short, it is."""
    m = CLSGAN((1, 8, 8), 4, "mlp")
    m.save(tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    old = tmp_path / "old.pt"
    torch.save(raw, old, _use_new_zipfile_serialization=False)
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(CLSGAN.load(old).activations(x), m.activations(x))
    old.write_bytes(old.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        CLSGAN.load(old)


def test_the_saved_spec_holds_every_builder_default(tmp_path):
    """A later change of a builder default must not change a saved model."""
    m = CLSGAN((1, 8, 8), 4, "mlp", input_noise=0.2)
    opts = m.spec()["net_options"]
    assert opts["input_noise"] == 0.2 and opts["hidden_noise"] == 0.3 and opts["norm"] == "weight"
    assert json.loads(json.dumps(m.spec())) == m.spec()          # primitives: tuples as lists
    assert m.spec()["classes"] == ["0", "1", "2", "3"]           # no names given: the class ids
    m.save(tmp_path / "m.pt")
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    ckpt["model"]["net_options"] = {"input_noise": 0.2}     # as saved before defaults were
    assert CLSGAN.from_checkpoint(ckpt).spec() == m.spec()


def test_checkpoints_whose_weights_do_not_fit_are_one_line(tmp_path):
    m = CLSGAN((1, 8, 8), 4, "mlp", g_out_norm="weight")
    ckpt = {"format": "ganaug", "model": CLSGAN((1, 8, 8), 4, "mlp").spec(),
            "state": m.state_dict()}
    with pytest.raises(CheckpointError, match=r"do not fit .* missing .* unexpected") as e:
        CLSGAN.from_checkpoint(ckpt)
    assert "\n" not in str(e.value)
    other = CLSGAN((1, 8, 8), 4, "mlp", d_hidden=[32])       # same keys, other shapes
    ckpt = {"format": "ganaug", "model": CLSGAN((1, 8, 8), 4, "mlp").spec(),
            "state": other.state_dict()}
    with pytest.raises(CheckpointError, match=r"do not fit .* tensors of another shape") as e:
        CLSGAN.from_checkpoint(ckpt)
    assert "\n" not in str(e.value)
    ckpt["model"]["arch"] = "resnet"
    with pytest.raises(CheckpointError, match="does not describe a ganaug model"):
        CLSGAN.from_checkpoint(ckpt)
    ckpt["model"].update(arch="mlp", classes=list("abcde"))       # 5 names for 4 classes
    with pytest.raises(CheckpointError, match="5 class names for 4 classes"):
        CLSGAN.from_checkpoint(ckpt)
    ckpt = {"format": "ganaug", "model": CLSGAN((1, 8, 8), 4, "mlp").spec()}   # no weights
    with pytest.raises(CheckpointError, match="holds no model weights"):
        CLSGAN.from_checkpoint(ckpt)


def _member_data_offset(path, name):
    import struct
    import zipfile
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        n, extra = struct.unpack("<HH", f.read(4))
    return info.header_offset + 30 + n + extra, info.file_size


def test_damaged_text_and_gpu_checkpoints_get_their_own_message(tmp_path, monkeypatch):
    import zipfile
    good = tmp_path / "good.pt"
    CLSGAN((1, 8, 8), 4, "mlp").save(good)
    with zipfile.ZipFile(good) as z:
        name = max((i for i in z.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size).filename
    start, size = _member_data_offset(good, name)
    raw = bytearray(good.read_bytes())
    raw[start + size // 2: start + size // 2 + 64] = bytes(64)    # torch.load would not notice
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="fails its CRC check; delete it"):
        CLSGAN.load(bad)
    text = tmp_path / "config.json"
    text.write_text('{"objective": "sscls"}')
    with pytest.raises(CheckpointError, match=r"not a checkpoint \(a text file\)"):
        CLSGAN.load(text)
    gpu = tmp_path / "gpu.pt"                # a checkpoint written on a GPU, read without one
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        CLSGAN((1, 8, 8), 4, "mlp").save(gpu)
    assert CLSGAN.load(gpu).device.type == "cpu"              # the default map_location
    with pytest.raises(CheckpointError, match="saved on a GPU .* map_location='cpu'"):
        CLSGAN.load(gpu, map_location=None)


@pytest.mark.parametrize("call,match", [
    (lambda m: m.sample(torch.tensor([2.9, 0.5])), "integer class ids, got dtype torch.float32"),
    (lambda m: m.sample(torch.tensor([True, False])), "integer class ids, got dtype torch.bool"),
    (lambda m: m.sample(torch.zeros(2, 2, dtype=torch.long)), "1-D"),
    (lambda m: m.sample(torch.tensor([0, -1])), r"labels must lie in \[0, 4\), got \[-1, 0\]"),
    (lambda m: m.sample(torch.tensor([0, 1]), batch_size=0), "batch_size must be a positive"),
    (lambda m: m.sample_per_class(-1), "per_class must be a non-negative integer"),
    (lambda m: m.sample_per_class(2.5), "per_class must be a non-negative integer"),
    (lambda m: m.sample_per_class(2, seed=1.5), "seed must be an integer"),
    (lambda m: m.activations(torch.zeros(2, 1, 8, 8), batch_size=-1), "batch_size")])
def test_bad_sampling_arguments_are_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(CLSGAN((1, 8, 8), 4, "mlp"))


def test_samples_do_not_depend_on_the_chunking():
    m = CLSGAN((1, 8, 8), 4, "mlp")
    y = torch.arange(4).repeat(5)
    whole = m.sample(y, torch.Generator().manual_seed(0))
    chunked = m.sample(y, torch.Generator().manual_seed(0), batch_size=3)
    torch.testing.assert_close(whole, chunked)
    assert m.sample([]).shape == (0, 1, 8, 8) and m.sample([1, 3]).shape == (2, 1, 8, 8)
    images, labels = m.sample_per_class(0)                  # none of each class is no error
    assert images.shape == (0, 1, 8, 8) and labels.shape == (0,)


def test_classify_and_sample_use_the_ema_networks_in_eval_mode():
    """activations() and sample() run the EMA networks (ema=False: the trained ones) in eval
    mode, without noise or batch statistics, even on a model in training mode, and leave
    that mode as it was."""
    torch.manual_seed(0)
    m = CLSGAN((1, 8, 8), 4, "mlp", d_hidden=[16], g_hidden=[16])
    with torch.no_grad():                        # the trained nets move away from their EMAs
        for p in [*m.loss_net.parameters(), *m.generator.parameters()]:
            p.add_(torch.randn_like(p))
    m.train()
    x, y = torch.rand(6, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 3, 0, 1])
    z = m.noise(6, torch.Generator().manual_seed(3))
    for ema, d, g in ((True, m.loss_net_ema, m.generator_ema), (False, m.loss_net, m.generator)):
        d_ref, g_ref = copy.deepcopy(d).eval(), copy.deepcopy(g).eval()
        torch.testing.assert_close(m.activations(x, ema=ema), d_ref(x), rtol=0, atol=0)
        torch.testing.assert_close(m.sample(y, torch.Generator().manual_seed(3), ema=ema),
                                   g_ref(z, y), rtol=0, atol=0)
        assert d.training and g.training                 # the mode is given back


def test_a_run_without_a_generator_is_refused_for_sampling(tmp_path):
    from ganaug.sampling import Sampler
    path = tmp_path / "sup.pt"
    CLSGAN((1, 8, 8), 4, "mlp").save(path, extra={"config": {"objective": "supervised"}})
    CLSGAN.load(path)                                          # fine as a classifier
    for load in (lambda: CLSGAN.load(path, need_generator=True), lambda: Sampler(path)):
        with pytest.raises(CheckpointError, match="trains no generator"):
            load()


def test_sampler_devices_are_checked_before_any_work():
    from ganaug.sampling import Sampler
    m = CLSGAN((1, 8, 8), 4, "mlp")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        Sampler(m, device="gpu")
    with pytest.raises(ValueError, match="no CUDA GPU is available"):    # none, as the
        Sampler(m, device="cuda")                   # tests not marked gpu see none
    for other in ("xpu", "mps", "meta", torch.device("meta")):   # torch's, not ganaug's
        with pytest.raises(ValueError, match=r"unknown device '(xpu|mps|meta)'; use auto, cpu, "
                                             r"cuda or cuda:N \(ganaug runs on the CPU and"):
            Sampler(m, device=other)


def test_load_checks_a_device_map_location_first_and_takes_auto(tmp_path):
    """A bad device is named as such, not taken for a corrupted checkpoint."""
    path = tmp_path / "m.pt"
    CLSGAN((1, 8, 8), 4, "mlp").save(path)
    for bad in ("gpu", "xpu"):
        with pytest.raises(ValueError, match=f"unknown device '{bad}'"):
            CLSGAN.load(path, map_location=bad)
    assert CLSGAN.load(path, map_location="auto").device == pick_device("auto")
    assert CLSGAN.load(path, map_location=lambda s, loc: s).device.type == "cpu"   # torch's own


@pytest.mark.gpu
def test_sampling_with_labels_already_on_the_gpu(tmp_path):
    """A CPU checkpoint loads onto the GPU with map_location, and samples labels given there."""
    CLSGAN((1, 8, 8), 4, "mlp").save(tmp_path / "m.pt")
    m = CLSGAN.load(tmp_path / "m.pt", map_location="cuda")
    assert all(t.is_cuda for t in (*m.parameters(), *m.buffers()))
    y = torch.tensor([0, 3, 3], device="cuda")
    x = m.sample(y, torch.Generator().manual_seed(0))
    assert x.device.type == "cuda"
    assert torch.equal(x, m.sample(y.cpu(), torch.Generator().manual_seed(0)))
    conf = m.activations(x).softmax(1).gather(1, y[:, None])     # docs/mixing.md's gate check
    assert conf.shape == (3, 1)


def test_the_classifier_takes_images_as_users_hold_them_and_names_what_it_cannot():
    """float64 (numpy's), numpy arrays and grey images without a channel are read as the
    model's images; integer pixels, another shape and channels-last images are a ValueError
    that says what to change; loss() takes integer labels, one per image."""
    m = CLSGAN((1, 8, 8), 4, "mlp")
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    want = m.predict(x)
    for same in (x.double(), x.numpy(), x[:, 0], x.tolist()):
        assert torch.equal(m.predict(same), want)
    for bad, message in ((x.to(torch.uint8), r"floating-point, in \[-1, 1\], got dtype "
                                             r"torch.uint8; for 8-bit pixels use x.float"),
                         (torch.zeros(5, 1, 28, 28), r"\(N, 1, 8, 8\) .* got shape \(5, 1, 28, 28\)$"),
                         (torch.zeros(5, 8, 8, 1), r"channels-last images need x.permute")):
        with pytest.raises(ValueError, match=message):
            m.predict(bad)
    rgb = CLSGAN((3, 16, 16), 4, "mlp")               # channels-last RGB was read silently
    with pytest.raises(ValueError, match=r"channels-last images need x.permute\(0, 3, 1, 2\)"):
        rgb.predict(torch.zeros(2, 16, 16, 3))
    y = torch.tensor([0, 1, 2, 3, 0])
    assert torch.equal(m.loss(x, y.numpy()), m.loss(x, y))
    with pytest.raises(ValueError, match="labels must be integer class ids"):
        m.loss(x, torch.tensor([2.9, 0.5, 1.0, 1.0, 1.0]))      # was read as [2, 0, 1, 1, 1]
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        m.loss(x, torch.tensor([0, 1, 2, 3, 12]))
    with pytest.raises(ValueError, match="one label per image: 5 images, 2 labels"):
        m.loss(x, torch.tensor([1, 2]))


def test_a_colour_model_names_a_three_dimensional_batch_as_given():
    """A 3-D batch for a colour model is refused naming the shape as given (only grey models
    take images without a channel dimension)."""
    rgb = CLSGAN((3, 16, 16), 4, "mlp")
    with pytest.raises(ValueError, match=r"\(N, 3, 16, 16\) .* got shape \(2, 16, 16\)$"):
        rgb.predict(torch.zeros(2, 16, 16))


def test_an_empty_batch_classifies_to_nothing():
    """No images: activations are (0, C) and predictions (0,), as for any other count."""
    m = CLSGAN((1, 8, 8), 4, "mlp")
    empty = torch.zeros(0, 1, 8, 8)
    assert m.activations(empty).shape == (0, 4)
    assert m.predict(empty).shape == (0,)
    assert m.loss(empty, torch.zeros(0, dtype=torch.long)).shape == (0,)


def test_loss_takes_its_form():
    """CLSGAN.loss(form=...): "softmax" is the plain -log softmax(a)_y, "semi" the paper's L."""
    torch.manual_seed(0)
    m = CLSGAN((1, 8, 8), 4, "mlp")
    x, y = torch.rand(6, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 3, 0, 1])
    a = m.activations(x)
    soft = m.loss(x, y, form="softmax")
    torch.testing.assert_close(soft, -torch.log_softmax(a, 1).gather(1, y[:, None]).squeeze(1))
    semi = m.loss(x, y)
    torch.testing.assert_close(semi, -a.gather(1, y[:, None]).squeeze(1)
                               + torch.nn.functional.softplus(torch.logsumexp(a, 1)))
    assert not torch.allclose(soft, semi)


def test_predict_honours_ema():
    """predict(ema=False) classifies with the trained loss network, not its EMA."""
    torch.manual_seed(0)
    m = CLSGAN((1, 8, 8), 4, "mlp", d_hidden=[16])
    with torch.no_grad():                        # the trained net moves away from its EMA
        for p in m.loss_net.parameters():
            p.add_(torch.randn_like(p) * 3)
    x = torch.rand(64, 1, 8, 8) * 2 - 1
    ema, raw = m.predict(x), m.predict(x, ema=False)
    assert torch.equal(ema, m.activations(x).argmax(1))
    assert torch.equal(raw, m.activations(x, ema=False).argmax(1))
    assert not torch.equal(ema, raw)


def test_a_gpu_number_one_past_the_last_is_refused(monkeypatch):
    """pick_device: cuda:N with N the GPU count (one past the last GPU) is refused by name."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'cuda:2' was asked for but this machine has 2 GPU"):
        pick_device("cuda:2")


def test_empty_labels_must_be_one_dimensional():
    """as_labels: an empty batch of labels of another shape than 1-D is the 1-D error too."""
    assert as_labels([]).dtype == torch.long and as_labels([]).shape == (0,)
    with pytest.raises(ValueError, match="1-D"):
        as_labels(torch.zeros(0, 2, dtype=torch.long))


def test_a_tensor_of_another_shape_but_the_same_size_does_not_fit():
    """A checkpoint tensor reshaped to another shape of the same size is a CheckpointError
    naming it, not torch's size-mismatch RuntimeError."""
    m = CLSGAN((1, 8, 8), 4, "mlp", d_hidden=[16], g_hidden=[16])
    state = m.state_dict()
    key = next(k for k, v in state.items() if v.dim() == 2 and v.shape[0] != v.shape[1])
    state[key] = state[key].t().contiguous()                 # same numel, other shape
    ckpt = {"format": "ganaug", "model": m.spec(), "state": state}
    with pytest.raises(CheckpointError, match=r"do not fit .* 1 tensors of another shape"):
        CLSGAN.from_checkpoint(ckpt)


def test_cuda_and_cuda_current_compare_equal(monkeypatch):
    """_concrete: "cuda" names the current GPU, so the two spellings of one GPU compare equal
    (the Sampler and evaluate_quality then use the model where it is, without a copy)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert _concrete("cuda") == torch.device("cuda", 1) == _concrete(torch.device("cuda:1"))
    assert _concrete("cpu") == torch.device("cpu")


def test_a_device_object_is_checked_first(tmp_path, monkeypatch):
    """CLSGAN.load checks a torch.device map_location as it checks a string one."""
    path = tmp_path / "m.pt"
    CLSGAN((1, 8, 8), 4, "mlp").save(path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)     # on a GPU machine too
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        CLSGAN.load(path, map_location=torch.device("cuda"))
    with pytest.raises(ValueError, match="unknown device 'meta'"):
        CLSGAN.load(path, map_location=torch.device("meta"))
    assert CLSGAN.load(path, map_location=torch.device("cpu")).device.type == "cpu"


@pytest.mark.parametrize("where", ["cpu:0", torch.device("cpu", 0)], ids=["str", "device"])
def test_the_cpu_with_an_index_loads_a_checkpoint(tmp_path, where):
    """cpu:0 is the CPU: a good checkpoint loads (torch.load refuses an indexed CPU, which
    read as a corrupted file)."""
    path = tmp_path / "m.pt"
    CLSGAN((1, 8, 8), 4, "mlp").save(path)
    assert pick_device(where) == torch.device("cpu")
    assert CLSGAN.load(path, map_location=where).device == torch.device("cpu")


def test_loading_leaves_the_global_rng_as_it_was(tmp_path):
    """Building the networks to load into draws initial weights; the caller's random numbers
    are the same whether a model was loaded or not."""
    path = tmp_path / "m.pt"
    CLSGAN((1, 8, 8), 4, "mlp").save(path)
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    CLSGAN.load(path)
    assert torch.equal(torch.rand(4), expected)


def test_load_keeps_the_objective_of_a_run(tmp_path):
    """A run's checkpoint says its objective (the mixers refuse one that trains no
    generator); a file of model.save has none."""
    path = tmp_path / "m.pt"
    CLSGAN((1, 8, 8), 4, "mlp").save(path, extra={"config": {"objective": "supervised"}})
    assert CLSGAN.load(path).objective == "supervised"
    with pytest.raises(CheckpointError, match="trains no generator"):
        CLSGAN.load(path, need_generator=True)
    CLSGAN((1, 8, 8), 4, "mlp").save(path)
    assert CLSGAN.load(path).objective is None


def test_training_records_the_objective_and_save_keeps_it(tiny, tmp_path):
    """The objective a model was trained with (not the one it was built for) is what the
    mixers read; model.save keeps it, so a supervised model saved and loaded is no sampler."""
    from ganaug import SyntheticMix, TrainConfig, build_model, train
    model = build_model(TrainConfig().resolved(), tiny)             # built for sscls
    cfg = TrainConfig(objective="supervised", epochs=1, batch_size=16)
    train(model, tiny, None, cfg, progress=False, log=lambda s: None)
    assert model.objective == "supervised"
    model.save(tmp_path / "sup.pt")
    assert CLSGAN.load(tmp_path / "sup.pt").objective == "supervised"
    with pytest.raises(CheckpointError, match="trains no generator"):
        SyntheticMix(tiny, str(tmp_path / "sup.pt"), fraction=0.5)
    old = CLSGAN((1, 8, 8), 4, "mlp")
    del old.objective                                # a model pickled by an older ganaug
    from ganaug.sampling import Sampler
    assert Sampler(old).model is old
