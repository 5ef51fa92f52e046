"""Architectures and the checkpoint format, on tiny configs that run in seconds."""

from __future__ import annotations

import json

import pytest
import torch

from fxaug.models import (
    CycleGANGenerators,
    PatchDiscriminator,
    PretrainedModel,
    StarGANGenerator,
    list_models,
    load_model,
)

TINY = dict(image_size=32, width=8, n_down=2, n_res=1)


def _batch(n=3, channels=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g) * 2 - 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("method", ["image", "face", "parts"])
def test_stargan_generator_shapes(channels, method):
    g = StarGANGenerator(**TINY, channels=channels, method=method, domains=("neutral", "happy", "sad"))
    x = _batch(channels=channels)
    parts = ["mouth", "left_eye", "nose"] if method == "parts" else None
    y = g(x, ["happy", "sad", "neutral"], parts=parts)
    assert y.shape == x.shape and y.abs().max() <= 1
    # Different targets give different outputs from the same input.
    assert not torch.allclose(g(x, "happy", parts=parts), g(x, "sad", parts=parts))


def test_generator_refuses_unknown_target_and_missing_parts():
    g = StarGANGenerator(**TINY, domains=("neutral", "happy"), method="parts")
    with pytest.raises(ValueError, match="not a domain of this model; its domains: neutral, happy"):
        g(_batch(), "disgust", parts="mouth")
    with pytest.raises(ValueError, match="needs parts="):
        g(_batch(), "happy")
    with pytest.raises(ValueError, match="unknown part"):
        g(_batch(), "happy", parts="ear")


@pytest.mark.parametrize("cls", [StarGANGenerator, CycleGANGenerators])
def test_residual_generator_starts_as_identity_and_learns_a_change(cls):
    torch.manual_seed(0)
    g = cls(**TINY, domains=("neutral", "happy"), residual=True)
    x = _batch()
    # An untrained residual G returns its input exactly: training starts from the identity.
    assert torch.equal(g(x, "happy"), x)
    # One optimizer step away from the zero init, it changes the image, within [-1, 1].
    opt = torch.optim.SGD(g.parameters(), lr=0.1)
    (g(x, "happy") - 1).abs().mean().backward()
    opt.step()
    y = g(x, "happy")
    assert not torch.equal(y, x) and y.abs().max() <= 1 and y.mean() > x.mean()


@pytest.mark.parametrize("paint", [False, True])
def test_warp_generator_starts_as_identity_and_moves_pixels(paint):
    torch.manual_seed(0)
    g = StarGANGenerator(**TINY, domains=("neutral", "happy"), warp=True, residual=paint, max_flow=0.125, flow_cells=4)
    x = _batch()
    # Zero flow samples every pixel at its own centre: the untrained G is the identity.
    assert torch.allclose(g(x, "happy"), x, atol=1e-5)
    cond = g.condition("happy", 3, "cpu")
    out, flow, change = g.net.decompose(x, cond)
    assert flow.shape == (3, 2, 32, 32) and (change is not None) is paint
    # A flow of half the bound to the right (tanh = 0.5): 0.125 of 32 px = 4 px... times 0.5 = 2 px;
    # each output pixel reads the input 2 px to its right, so the content moves 2 px left.
    with torch.no_grad():
        g.net.flow.bias.copy_(torch.tensor([float(torch.atanh(torch.tensor(0.5))), 0.0]))
    out, flow, _ = g.net.decompose(x, cond)
    assert torch.allclose(flow[:, 0], torch.full_like(flow[:, 0], 0.125 * 2 * 0.5))
    assert torch.allclose(out[..., 4:28], x[..., 6:30], atol=1e-5)
    # However wild the head's output, the flow stays within max_flow and smooth: bilinear
    # upsampling from 4 cells to 32 px splits any jump between cells over 8 pixels.
    with torch.no_grad():
        g.net.flow.weight.normal_(0, 10.0)
    _, flow, _ = g.net.decompose(x, cond)
    bound = 0.125 * 2
    assert flow.abs().max() <= bound + 1e-6 and flow.abs().max() > bound / 2
    for step in (flow[..., 1:, :] - flow[..., :-1, :], flow[..., 1:] - flow[..., :-1]):
        assert step.abs().max() <= 2 * bound / 8 + 1e-6


def test_warp_generator_round_trips_and_is_refused_where_it_does_not_apply(tmp_path):
    g = StarGANGenerator(**TINY, domains=("neutral", "happy"), warp=True, residual=True, flow_cells=8)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = _batch()
    g.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.config.warp and loaded.config.flow_cells == 8
    assert torch.equal(loaded(x, "happy"), g(x, "happy"))
    with pytest.raises(ValueError, match="warp needs"):
        StarGANGenerator(**TINY, warp=True, max_flow=0)
    with pytest.raises(ValueError, match="decompose is for warp generators"):
        StarGANGenerator(**TINY).net.decompose(x, torch.zeros(3, 2))


def test_select_model_covers_every_target(tmp_path, monkeypatch):
    import fxaug.models as M

    monkeypatch.setattr(M, "BUNDLED_DIR", tmp_path)
    StarGANGenerator(**TINY, domains=("neutral", "happy", "sad")).save_pretrained(tmp_path / "a-three")
    StarGANGenerator(**TINY, domains=("neutral", "happy", "sad", "fear")).save_pretrained(tmp_path / "b-four")
    assert M.select_model("happy") == "a-three"  # first by name
    assert M.select_model(["happy", "fear"]) == "b-four"  # the one that reaches both
    assert M.select_model(["contempt", "fear", "sad"]) == "b-four"  # reaches the most of them
    with pytest.raises(FileNotFoundError, match="no shipped model produces contempt, disgust"):
        M.select_model(["disgust", "contempt"])
    with pytest.raises(FileNotFoundError, match="by the parts method"):
        M.select_model("happy", "parts")


def test_cyclegan_pair_directions():
    g = CycleGANGenerators(**TINY, domains=("neutral", "happy"))
    x = _batch()
    assert g.translations() == [("neutral", "happy"), ("happy", "neutral")]
    torch.testing.assert_close(g(x, "happy"), g.a_to_b(x))
    torch.testing.assert_close(g(x, "neutral"), g.b_to_a(x))
    with pytest.raises(ValueError, match="exactly two domains"):
        CycleGANGenerators(**TINY, domains=("neutral", "happy", "sad"))


@pytest.mark.parametrize("n_classes", [0, 3])
def test_patch_discriminator(n_classes):
    d = PatchDiscriminator(image_size=32, width=8, n_layers=3, n_classes=n_classes)
    critic, logits = d(_batch(n=2))
    assert critic.shape == (2, 1, 4, 4)
    assert (logits is None) if n_classes == 0 else logits.shape == (2, 3)
    # Instance noise acts only in training mode, and can be annealed to zero.
    d.eval()
    x = _batch(n=2)
    torch.testing.assert_close(d(x)[0], d(x)[0])
    d.train()
    assert not torch.allclose(d(x)[0], d(x)[0])
    d.set_noise_std(0.0)
    torch.testing.assert_close(d(x)[0], d(x)[0])


@pytest.mark.parametrize("cls", [StarGANGenerator, CycleGANGenerators])
@pytest.mark.parametrize("dtype, tol", [("float32", 0.0), ("float16", 2e-2)])
def test_save_load_round_trip(tmp_path, cls, dtype, tol):
    torch.manual_seed(0)
    g = cls(**TINY, domains=("neutral", "happy"), method="parts").eval()
    x = _batch()
    before = g(x, "happy", parts="mouth")
    g.save_pretrained(tmp_path / "ckpt", dtype=dtype, metadata={"steps": 10})
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["_class_name"] == cls.__name__ and config["domains"] == ["neutral", "happy"]
    loaded = load_model(tmp_path / "ckpt")
    assert type(loaded) is cls and not loaded.training
    assert loaded.config == g.config and loaded.metadata == {"steps": 10}
    after = loaded(x, "happy", parts="mouth")
    if tol == 0.0:
        assert torch.equal(before, after)
    else:
        assert (before - after).abs().max() < tol
    # Loading through a subclass checks the class; the files are never pickles.
    assert isinstance(StarGANGenerator.from_pretrained(tmp_path / "ckpt") if cls is StarGANGenerator else loaded, cls)
    if cls is CycleGANGenerators:
        with pytest.raises(TypeError, match="not a StarGANGenerator"):
            StarGANGenerator.from_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model 'nope'.*shipped models"):
        load_model("nope")
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "Nope"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown model class 'Nope'"):
        PretrainedModel.from_pretrained(tmp_path)


def test_registry_lists_bundled_models():
    names = list_models()
    assert names == sorted(names)
    for name in names:
        assert load_model(name).num_parameters() > 0


def test_twocet_codes_strength_and_references(tmp_path):
    from fxaug.models import TwoCETDiscriminator, TwoCETGAN

    torch.manual_seed(0)
    m = TwoCETGAN(image_size=32, width=8, n_res=1, code_dim=8).eval()
    x = _batch(n=4)
    zero = m(x, torch.zeros(8))
    assert zero.shape == x.shape
    # Strength scales the code: strength 0 is the neutral (code 0) output, whatever the code.
    code = torch.rand(8) - 0.5
    assert torch.equal(m(x, code, strength=0.0), zero)
    assert torch.equal(m(x, "neutral"), zero)
    assert not torch.allclose(m(x, code), zero)
    # Reference-guided: the reference's code, by the encoder (RGB references reduced to gray).
    ref = _batch(n=1, seed=5)
    torch.testing.assert_close(m(x, reference=ref), m(x, m.encode(ref)[0]))
    assert m.encode(_batch(n=2, channels=3)).shape == (2, 8)
    # Named expressions: the mean code of references, persisted by save/load.
    with pytest.raises(ValueError, match="no expression 'disgust'"):
        m(x, "disgust")
    refs = _batch(n=5, seed=7)
    named = m.set_expression("disgust", refs)
    torch.testing.assert_close(named, m.encode(refs).mean(0))
    torch.testing.assert_close(m(x, "disgust"), m(x, named))
    assert m.domains == ("neutral", "disgust") and m.translations() == [(None, "neutral"), ("neutral", "disgust")]
    m.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.config.expressions == ("disgust",)
    assert torch.equal(loaded(x, "disgust"), m(x, "disgust"))
    d = TwoCETDiscriminator(image_size=32, width=8)
    assert d(x, 0).shape == (4,) and d(x, torch.tensor([0, 1, 1, 0])).shape == (4,)


def test_residual_twocet_starts_as_identity_and_learns_a_change(tmp_path):
    from fxaug.models import TwoCETGAN

    torch.manual_seed(0)
    m = TwoCETGAN(image_size=32, width=8, n_res=1, code_dim=8, residual=True)
    x = _batch(n=4)
    code = torch.rand(8) - 0.5
    # Untrained, any code returns the input exactly: training starts from the identity.
    assert torch.equal(m(x, code), x) and torch.equal(m(x, torch.zeros(8)), x)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    (m(x, code) - 1).abs().mean().backward()
    opt.step()
    y = m(x, code)
    assert not torch.equal(y, x) and y.abs().max() <= 1 and y.mean() > x.mean()
    m.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.config.residual and torch.equal(loaded(x, code), y)


def test_twocet_discriminator_on_landmark_features(tmp_path):
    from fxaug.models import TwoCETDiscriminator

    torch.manual_seed(0)
    d = TwoCETDiscriminator(image_size=32, width=8, features="landmarks")
    x = _batch(n=3)
    plain = d.net(x).flatten(1)
    # The feature heads' logits add to the pixel trunk's.
    torch.testing.assert_close(d(x, 1), (plain + d.feature_logits(x))[:, 1])
    assert d.train().landmark_net.training is False  # frozen: always in eval mode
    d.save_pretrained(tmp_path / "d")
    assert torch.equal(load_model(tmp_path / "d")(x, 0), d(x, 0))
    with pytest.raises(ValueError, match="features must be '' or 'landmarks'"):
        TwoCETDiscriminator(image_size=32, features="vgg")
