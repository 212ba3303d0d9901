"""Model registry.

Every model is a :class:`Classifier`: a ``Normalize`` layer followed by the network proper, so that

- the model takes pixels in [0, 1] (where PGD works and its eps is measured), and
- ``model.net`` takes the *normalised* image, the tensor the study masks (``model.normalize(x)``).

Add an architecture with one entry in :data:`ARCHITECTURES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .config import ParamError
from .io import bad_file_error, load_torch

MIN_IMAGE_SIZE = 28


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel. Input (B, C, H, W) in [0, 1]; output normalised."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``forward(x)``: pixels (B, C, H, W) in [0, 1] -> logits (B, classes).

    ``net`` maps the normalised image to logits; Fourier masks act between the two."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def small_cnn(in_channels: int, num_classes: int) -> nn.Module:
    """The CPU default (~0.1M params): three 3x3 conv-BN-ReLU blocks (32, 64, 128 channels) with
    max-pooling between them, adaptive average pooling to 3 x 3 and a linear layer. Any input size >= 28."""
    return nn.Sequential(
        *_conv_bn(in_channels, 32), nn.MaxPool2d(2),
        *_conv_bn(32, 64), nn.MaxPool2d(2),
        *_conv_bn(64, 128),
        nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(128 * 9, num_classes),
    )


def resnet18(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision ResNet-18 (random init) with a first conv taking ``in_channels`` channels."""
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def vgg11_bn(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision VGG11-BN (random init) with a first conv taking ``in_channels`` channels.

    Its adaptive pool makes it accept any size >= 32; smaller inputs are padded up to 32."""
    from torchvision.models import vgg11_bn as tv_vgg11_bn

    net = tv_vgg11_bn(weights=None, num_classes=num_classes)
    net.features[0] = nn.Conv2d(in_channels, 64, kernel_size=3, padding=1)
    return nn.Sequential(_PadTo(32), net)


class _PadTo(nn.Module):
    """Zero-pad (B, C, H, W) symmetrically up to ``size`` x ``size`` (no-op when already large)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = max(0, self.size - x.shape[-2]), max(0, self.size - x.shape[-1])
        if ph == 0 and pw == 0:
            return x
        return nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


ARCHITECTURES: dict[str, Callable[[int, int], nn.Module]] = {
    "small_cnn": small_cnn,
    "resnet18": resnet18,
    "vgg11_bn": vgg11_bn,
}


def build_model(arch: str, in_channels: int, num_classes: int, image_size: int,
                mean: list[float], std: list[float]) -> Classifier:
    """Build a :class:`Classifier` from the registry; raise :class:`ParamError` on bad arguments."""
    if arch not in ARCHITECTURES:
        raise ParamError(f"model.arch: unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
    if image_size < MIN_IMAGE_SIZE:
        raise ParamError(f"data.image_size: must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    return Classifier(ARCHITECTURES[arch](in_channels, num_classes), mean, std)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def checkpoint_dict(model: Classifier, meta: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint file holds: ``meta`` (arch, in_channels, num_classes, image_size, mean, std,
    plus anything else) and the ``state_dict``."""
    required = {"arch", "in_channels", "num_classes", "image_size", "mean", "std"}
    missing = required - meta.keys()
    if missing:
        raise ValueError(f"checkpoint meta lacks {sorted(missing)}")
    return {"format": "freqbias-checkpoint-v1", "meta": dict(meta), "state_dict": model.state_dict()}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Classifier, dict[str, Any]]:
    """Load a checkpoint written by :func:`checkpoint_dict`; return the model in eval mode and its meta.

    Raise :class:`DataError` (one line, :mod:`freqbias.io`) when the file is missing or is not such a checkpoint."""
    path = Path(path)
    ckpt = load_torch(path, "checkpoint", expected=None, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "freqbias-checkpoint-v1":
        raise bad_file_error(path, "not a freqbias checkpoint (expected a dict with format 'freqbias-checkpoint-v1')")
    meta = ckpt["meta"]
    with torch.device("meta"):  # no random init of weights about to be replaced (VGG11-BN: 1.4 s per load)
        model = build_model(meta["arch"], meta["in_channels"], meta["num_classes"], meta["image_size"],
                            meta["mean"], meta["std"])
    try:
        model.load_state_dict(ckpt["state_dict"], assign=True)  # the loaded tensors, on map_location
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise bad_file_error(path, f"weights do not fit architecture {meta['arch']!r}: {first}") from None
    return model.eval(), meta
