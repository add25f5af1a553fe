"""Depth semantic loss: hand-computed values, reduction to plain L1, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vidsr.errors import InputError
from vidsr.train.losses import DepthSemanticLoss, LossConfig, depth_semantic_loss, semantic_weights


def _example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pred = torch.tensor([[[[0.5, 0.0], [1.0, 0.2]]]])  # (1, 1, 2, 2)
    target = torch.zeros_like(pred)
    mask = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]])  # soft: one pixel on the edge
    return pred, target, mask


def test_hand_computed_l1_example() -> None:
    pred, target, mask = _example()
    # weights: 1, 0.1, 0.1 + 0.9 * 0.5 = 0.55, 0.1 -> sum 1.75
    # weighted errors: 0.5 * 1 + 0 * 0.1 + 1.0 * 0.55 + 0.2 * 0.1 = 1.07
    loss = depth_semantic_loss(pred, target, mask, w_fg=1.0, w_bg=0.1)
    assert loss.item() == pytest.approx(1.07 / 1.75, abs=1e-7)
    w = semantic_weights(mask, w_fg=1.0, w_bg=0.1)
    assert torch.allclose(w, torch.tensor([[[1.0, 0.1], [0.55, 0.1]]]))


def test_hand_computed_charbonnier_example() -> None:
    pred, target, mask = _example()
    eps = 0.1
    e = [math.sqrt(0.25 + 0.01), math.sqrt(0.01), math.sqrt(1.0 + 0.01), math.sqrt(0.04 + 0.01)]
    w = [2.0, 0.5, 1.25, 0.5]  # w_bg 0.5, w_fg 2.0; edge pixel halfway
    expected = sum(a * b for a, b in zip(w, e)) / sum(w)
    loss = depth_semantic_loss(pred, target, mask, w_fg=2.0, w_bg=0.5, pixel="charbonnier", eps=eps)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_channels_are_averaged_per_pixel() -> None:
    pred = torch.zeros(1, 3, 1, 2)
    pred[0, :, 0, 0] = torch.tensor([0.3, 0.6, 0.9])  # mean error 0.6 at the fg pixel
    mask = torch.tensor([[[1.0, 0.0]]])
    loss = depth_semantic_loss(pred, torch.zeros_like(pred), mask, w_fg=3.0, w_bg=1.0)
    assert loss.item() == pytest.approx(0.6 * 3.0 / 4.0, abs=1e-6)


def test_equal_weights_and_no_mask_are_plain_l1() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    mask = torch.rand(2, 8, 8, generator=g)
    plain = F.l1_loss(pred, target)
    assert torch.allclose(depth_semantic_loss(pred, target, mask, w_fg=0.7, w_bg=0.7), plain, atol=1e-6)
    assert torch.allclose(depth_semantic_loss(pred, target, None), plain, atol=1e-6)
    assert torch.allclose(depth_semantic_loss(pred, target, mask[:, None], w_fg=0.7, w_bg=0.7), plain, atol=1e-6)
    assert torch.equal(DepthSemanticLoss(LossConfig())(pred, target, mask), plain)


def test_weights_change_smoothly_with_the_soft_mask_and_zero_bg_has_no_gradient() -> None:
    ramp = torch.linspace(0, 1, 11)[None, None]
    w = semantic_weights(ramp, w_fg=1.0, w_bg=0.2)[0, 0]
    assert torch.allclose(w, 0.2 + 0.8 * torch.linspace(0, 1, 11))
    assert torch.all(w[1:] > w[:-1])
    pred = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    mask = torch.zeros(1, 4, 4)
    mask[:, :2] = 1.0
    depth_semantic_loss(pred, torch.zeros(1, 3, 4, 4), mask, w_fg=1.0, w_bg=0.0).backward()
    assert torch.all(pred.grad[..., 2:, :] == 0) and torch.all(pred.grad[..., :2, :] != 0)


def test_config_and_errors() -> None:
    assert not LossConfig().semantic and LossConfig(w_fg=1.0, w_bg=0.1).semantic
    assert LossConfig(w_fg=1.0, w_bg=0.1).label == "semantic-l1(fg 1, bg 0.1)"
    with pytest.raises(InputError, match="pixel loss"):
        LossConfig(pixel="l2")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not both 0"):
        LossConfig(w_fg=0.0, w_bg=0.0)
    with pytest.raises(InputError, match="needs foreground masks"):
        DepthSemanticLoss(LossConfig(w_fg=1.0, w_bg=0.1))(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="does not match"):
        depth_semantic_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 3))
