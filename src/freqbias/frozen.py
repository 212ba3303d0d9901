"""The frozen copy of a trained net that masks are fitted (and PGD images crafted) against: the same function,
about twice as fast on a CPU. Its own module so that a stage using it (evaluate) does not depend on the mask
fitting code."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse as fuse_conv_bn

from . import runtime


def fitting_copy(net: nn.Module, fast: bool) -> nn.Module:
    """A frozen copy of ``net`` to fit masks against: eval mode, no weight gradients. With ``fast``,
    every ReLU directly followed by a max-pool runs after it instead (:func:`pool_before_relu`: the same
    outputs and gradients, bit for bit), eval-mode BatchNorm is folded into the preceding convolutions
    (when ``torch.fx`` can trace the net) and the copy runs in :func:`freqbias.runtime.fast_layout` of
    its device (channels-last on a CPU): the same function up to float rounding, about twice as fast on
    CPU. The caller's net is left untouched."""
    net = copy.deepcopy(net).eval()
    if fast:
        pool_before_relu(net)
        try:
            net = fuse_conv_bn(net, inplace=True)
        except Exception:  # noqa: BLE001 - untraceable nets (shape-dependent control flow) stay unfused
            pass
        net = net.to(memory_format=runtime.fast_layout(next(net.parameters(), torch.empty(0)).device))
    return net.requires_grad_(False)


def pool_before_relu(net: nn.Module) -> nn.Module:
    """Swap, in place, every ``nn.ReLU`` directly followed by an ``nn.MaxPool2d`` in an ``nn.Sequential``
    of ``net`` (small_cnn's and VGG's blocks). ReLU is monotone, so ``relu(maxpool(x)) == maxpool(relu(x))``
    exactly, and the gradient reaches the same input either way (0 where the window's maximum is <= 0);
    ReLU, forward and backward, then runs on the pooled tensor, a quarter of the size (about 5 % faster
    mask-fitting steps for small_cnn on a CPU). Returns ``net``."""
    for seq in net.modules():
        if isinstance(seq, nn.Sequential):
            names = list(seq._modules)
            for a, b in zip(names, names[1:]):
                if isinstance(seq._modules[a], nn.ReLU) and isinstance(seq._modules[b], nn.MaxPool2d):
                    seq._modules[a], seq._modules[b] = seq._modules[b], nn.ReLU()
    return net
