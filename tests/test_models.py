"""Model registry: output shapes, sizes, errors, checkpoints, and Classifier = Normalize + net."""

from __future__ import annotations

import os

import pytest
import torch

from freqbias.config import DataError, ParamError
from freqbias.models import (
    ARCHITECTURES,
    Classifier,
    Normalize,
    build_model,
    checkpoint_dict,
    count_parameters,
    load_checkpoint,
)

META = {"arch": "small_cnn", "in_channels": 1, "num_classes": 5, "image_size": 28, "mean": [0.449], "std": [0.226]}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_output_shapes(arch, channels):
    """One model per (arch, channels), run at several image sizes (the nets accept any size >= 28)."""
    torch.manual_seed(0)
    sizes = [28, 32, 64] + ([128] if arch == "small_cnn" else [])
    model = build_model(arch, channels, 7, 28, [0.5] * channels, [0.25] * channels).eval()
    with torch.no_grad():
        for size in sizes:
            out = model(torch.rand(2, channels, size, size))
            assert out.shape == (2, 7), (arch, channels, size)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_build_model_uses_the_image_size_check_only(arch):
    """build_model's image_size is validated (the nets themselves are size-agnostic)."""
    with pytest.raises(ParamError, match=r"^data\.image_size: must be >= 28, got 27"):
        build_model(arch, 1, 10, 27, [0.5], [0.25])


def test_small_cnn_is_small():
    n = count_parameters(build_model("small_cnn", 1, 10, 28, [0.5], [0.25]))
    assert 50_000 < n < 200_000


def test_unknown_arch_names_the_key():
    with pytest.raises(ParamError, match=r"^model\.arch: unknown architecture 'vit'; allowed: small_cnn"):
        build_model("vit", 1, 10, 28, [0.5], [0.25])


def test_normalize_then_net_is_the_model():
    torch.manual_seed(0)
    model = build_model("small_cnn", 3, 4, 32, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]).eval()
    x = torch.rand(3, 3, 32, 32)
    z = model.normalize(x)
    expected_z = (x - torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    assert torch.allclose(z, expected_z)
    with torch.no_grad():
        assert torch.equal(model.net(z), model(x))
    assert isinstance(model, Classifier) and isinstance(model.normalize, Normalize)
    # the statistics are buffers (saved in the state dict), not trainable parameters
    assert {"normalize.mean", "normalize.std"} <= set(model.state_dict())
    assert all(not name.startswith("normalize.") for name, _ in model.named_parameters())


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(**{k: META[k] for k in ("arch", "in_channels", "num_classes", "image_size", "mean", "std")})
    model.train()
    x = torch.rand(8, 1, 28, 28)
    model(x)  # move the BatchNorm running statistics away from their initial values
    model.eval()
    with torch.no_grad():
        expected = model(x)
    path = tmp_path / "m.pt"
    torch.save(checkpoint_dict(model, {**META, "variant": "A", "seed": 3}), path)
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    # built on the meta device, then given the file's tensors: nothing is left on meta, all trainable
    assert all(t.device.type == "cpu" for t in loaded.state_dict().values())
    assert all(p.requires_grad for p in loaded.parameters())
    assert meta == {**META, "variant": "A", "seed": 3}
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


def test_checkpoint_dict_needs_the_meta():
    model = build_model("small_cnn", 1, 5, 28, [0.5], [0.25])
    with pytest.raises(ValueError, match="mean"):
        checkpoint_dict(model, {k: v for k, v in META.items() if k != "mean"})


def test_load_checkpoint_missing_file(tmp_path):
    with pytest.raises(DataError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_load_checkpoint_random_bytes(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(os.urandom(1000))
    with pytest.raises(DataError, match=r"junk\.pt: not a readable checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("obj", [
    {"meta": META, "state_dict": {}},
    {"format": "something-else", "meta": META, "state_dict": {}},
    [1, 2, 3],
])
def test_load_checkpoint_without_the_format_key(tmp_path, obj):
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    with pytest.raises(DataError, match=r"other\.pt: not a freqbias checkpoint"):
        load_checkpoint(path)


def test_load_checkpoint_weights_of_another_shape(tmp_path):
    model = build_model("small_cnn", 1, 5, 28, [0.5], [0.25])
    path = tmp_path / "m.pt"
    torch.save(checkpoint_dict(model, {**META, "num_classes": 10}), path)
    with pytest.raises(DataError, match=r"weights do not fit architecture 'small_cnn'"):
        load_checkpoint(path)
