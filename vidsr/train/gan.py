"""Adversarial training: a spectral-normalised patch discriminator and the GAN losses.

As in ESRGAN / Real-ESRGAN, the generator's loss becomes ``pixel + weight * adversarial``: the
discriminator scores every patch of an HR image as real (a photograph) or fake (the network's
output) and the generator is pushed towards outputs it scores real. With a high enough weight the
network stops averaging plausible details into blur and invents texture instead; that is the look
people train GAN models for, and what makes it bad on smooth bokeh.

The discriminator is a VGG-style PatchGAN (pix2pix's "N-layer" shape): strided 4x4 convolutions,
LeakyReLU 0.2, spectral norm on every convolution but the first (as Real-ESRGAN's U-Net
discriminator does), one logit per patch. The loss is the vanilla (binary cross-entropy) GAN loss
that Real-ESRGAN uses. No perceptual (VGG) loss: it needs ImageNet weights that vidsr does not ship.

By default the discriminator sees a high-pass of its input (``highpass``): photo and network output
differ almost only in fine detail, which a plain discriminator starts from the raw pixels and, on a
CPU budget of a few thousand steps, never isolates (its loss stays at ln 2). Given the detail
directly, the same network separates photos from their bicubic copies in ~100 steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from vidsr.errors import InputError


@dataclass(frozen=True, kw_only=True)
class GanConfig:
    """The adversarial part of the training loss.

    Args:
        weight: weight of the generator's adversarial loss next to the pixel loss (0 = no GAN).
        num_feat: channels of the discriminator's first layer (doubled at each downsampling).
        num_down: strided (x1/2) convolutions of the discriminator.
        lr: learning rate of the discriminator (Adam, betas 0.5/0.999, constant).
        spectral: spectral norm on the discriminator's convolutions (but the first), as Real-ESRGAN.
        highpass: feed the discriminator ``(x - blur(x)) * 8`` (see :func:`detail`) instead of ``x``.
    """

    weight: float = 0.0
    num_feat: int = 32
    num_down: int = 3
    lr: float = 1e-4
    spectral: bool = True
    highpass: bool = True

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise InputError(f"GAN weight must be >= 0, got {self.weight}")
        if self.num_feat < 1 or not 1 <= self.num_down <= 5:
            raise InputError(f"discriminator needs num_feat >= 1 and 1 <= num_down <= 5, got "
                             f"{self.num_feat}, {self.num_down}")
        if self.lr <= 0:
            raise InputError(f"discriminator lr must be > 0, got {self.lr}")

    @property
    def enabled(self) -> bool:
        return self.weight > 0


DETAIL_GAIN = 8.0  # brings the high-pass of a photo to roughly the range of its pixels


def detail(x: torch.Tensor) -> torch.Tensor:
    """High-pass of an image batch: ``(x - binomial_5x5_blur(x)) * 8``, reflect padding.

    Args:
        x: (B, C, H, W), H and W >= 3.

    Returns:
        (B, C, H, W).
    """
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device) / 16.0
    c = x.shape[1]
    kernel = (k1[:, None] * k1[None, :]).expand(c, 1, 5, 5)
    blur = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=c)
    return (x - blur) * DETAIL_GAIN


class PatchDiscriminator(nn.Module):
    """Spectral-normalised PatchGAN.

    Args:
        num_feat: channels after the first convolution.
        num_down: strided 4x4 convolutions; each patch logit sees ~``2**(num_down + 2)`` pixels.
        spectral: spectral norm on every convolution but the first.
        highpass: score :func:`detail` of the input rather than the pixels (see the module docstring).

    Input (B, 3, H, W) in [0, 1]; output (B, 1, H / 2**num_down, W / 2**num_down) logits.
    """

    def __init__(self, *, num_feat: int = 32, num_down: int = 3, spectral: bool = True,
                 highpass: bool = True) -> None:
        super().__init__()
        self.highpass = highpass
        sn = spectral_norm if spectral else (lambda conv: conv)
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        c = num_feat
        for i in range(num_down):
            c_out = num_feat * 2 ** min(i + 1, 3)
            layers += [sn(nn.Conv2d(c, c_out, 4, stride=2, padding=1, bias=not spectral)),
                       nn.LeakyReLU(0.2, inplace=True)]
            c = c_out
        layers += [sn(nn.Conv2d(c, c, 3, padding=1, bias=not spectral)), nn.LeakyReLU(0.2, inplace=True),
                   sn(nn.Conv2d(c, 1, 3, padding=1))]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(detail(x) if self.highpass else x * 2.0 - 1.0)


def gan_loss(logits: torch.Tensor, *, real: bool) -> torch.Tensor:
    """Vanilla GAN loss: binary cross-entropy of the logits against all-real or all-fake."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


class Adversary:
    """The discriminator and its optimiser, with the two halves of a GAN step.

    A training step calls :meth:`generator_loss` on the network's output (added to the pixel loss
    with ``config.weight``), steps the generator, then :meth:`step` with the detached output and
    the HR batch.
    """

    def __init__(self, config: GanConfig) -> None:
        self.config = config
        self.net = PatchDiscriminator(num_feat=config.num_feat, num_down=config.num_down,
                                      spectral=config.spectral, highpass=config.highpass)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr, betas=(0.5, 0.999))

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """Adversarial loss of the generator's output (B, 3, H, W), unweighted; no gradient reaches D."""
        self.net.requires_grad_(False)
        try:
            return gan_loss(self.net(fake), real=True)
        finally:
            self.net.requires_grad_(True)

    def step(self, fake: torch.Tensor, real: torch.Tensor) -> float:
        """One discriminator update on a detached fake batch and a real batch; returns its loss."""
        loss = 0.5 * (gan_loss(self.net(real), real=True) + gan_loss(self.net(fake.detach()), real=False))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.item()

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
