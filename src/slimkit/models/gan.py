"""Small GANs for 28x28 images, the architectures GAN Slimming is shown on (:func:`slimkit.gan_slim`).

- ``dcgan_g``: conditional DCGAN generator, ``(noise (B, Z), labels (B,)) -> images (B, C, 28, 28)`` in [-1, 1]:
  class embedding concatenated with the noise, a linear projection to 7x7, two upsample+conv (or transposed conv)
  stages with BatchNorm and ReLU, a conv and tanh.
- ``dcgan_d``: conditional projection discriminator (Miyato & Koyama 2018), ``(images, labels) -> logits (B,)``.
- ``resnet_g``: CycleGAN-style image-to-image generator (Zhu et al. 2017) with InstanceNorm(affine=True):
  ``images (B, C, H, W) -> images (B, C, H, W)``, two stride-2 downsamplings, residual blocks, two upsamplings.
- ``patch_d``: PatchGAN discriminator (Isola et al. 2017), ``images -> patch logits (B, 1, h, w)``.

``FeatureClassifier`` (not registered) is the small Fashion-MNIST CNN whose features :mod:`slimkit.gan.fid` uses.

They are registered with ``task="gan"``: ``list_models("gan")`` names them, ``list_models()`` (classifiers) does not.
Every one takes ``width`` (channel multiplier, the thin-from-scratch baseline of a slimmed generator).
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.models._registry import register_model
from slimkit.models._scaling import check_width, scale_channels

TASK = "gan"


def _init(model: nn.Module) -> nn.Module:
    """DCGAN init (Radford et al. 2016): conv weights N(0, 0.02), norm scales N(1, 0.02), zero shifts and biases."""
    for m in model.modules():
        # a spectrally normalized layer's weight is computed: initialize the parameter behind it
        weight = (m.parametrizations.weight.original if nn.utils.parametrize.is_parametrized(m, "weight")
                  else getattr(m, "weight", None))
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(weight, 0.0, 1.0)
    return model


def _up_block(in_channels: int, out_channels: int, upsample: str) -> list[nn.Module]:
    if upsample == "transpose":
        return [nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)]


class DCGANGenerator(nn.Module):
    """Conditional DCGAN generator: noise and class label to a ``size x size`` image (size = 4 * ``base``)."""

    def __init__(self, noise_dim: int, num_classes: int, image_channels: int, channels: tuple[int, int, int],
                 base: int = 7, upsample: str = "nearest") -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.noise_dim = noise_dim
        self.num_classes = num_classes
        self.base = base
        self.embed = nn.Embedding(num_classes, noise_dim)
        self.project = nn.Linear(2 * noise_dim, c0 * base * base, bias=False)
        self.bn0 = nn.BatchNorm2d(c0)
        self.relu0 = nn.ReLU()
        self.up1 = nn.Sequential(*_up_block(c0, c1, upsample), nn.BatchNorm2d(c1), nn.ReLU())
        self.up2 = nn.Sequential(*_up_block(c1, c2, upsample), nn.BatchNorm2d(c2), nn.ReLU())
        self.out = nn.Conv2d(c2, image_channels, 3, padding=1)
        self.tanh = nn.Tanh()

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = torch.cat([noise, self.embed(labels)], dim=1)  # (B, 2Z)
        h = self.project(h)  # (B, C0 * base * base)
        h = h.view(h.shape[0], -1, self.base, self.base)  # (B, C0, 7, 7)
        h = self.relu0(self.bn0(h))
        h = self.up2(self.up1(h))  # (B, C2, 28, 28)
        return self.tanh(self.out(h))  # (B, C, 28, 28) in [-1, 1]


class DCGANDiscriminator(nn.Module):
    """Conditional projection discriminator: ``linear(h) + <embed(y), h>`` on conv features average-pooled to a
    ``pool x pool`` grid and flattened (``pool=1``: global mean, which discards where the features are)."""

    def __init__(self, image_channels: int, num_classes: int, channels: tuple[int, int], pool: int = 1,
                 spectral_norm: bool = False) -> None:
        super().__init__()
        d0, d1 = channels
        self.features = nn.Sequential(
            nn.Conv2d(image_channels, d0, 4, stride=2, padding=1),  # (B, D0, 14, 14)
            nn.LeakyReLU(0.2),
            nn.Conv2d(d0, d1, 4, stride=2, padding=1, bias=spectral_norm),  # (B, D1, 7, 7)
            nn.Identity() if spectral_norm else nn.BatchNorm2d(d1),
            nn.LeakyReLU(0.2),
        )
        self.pool = nn.AdaptiveAvgPool2d(pool)  # (B, D1, pool, pool)
        self.linear = nn.Linear(d1 * pool * pool, 1)
        self.embed = nn.Embedding(num_classes, d1 * pool * pool)
        if spectral_norm:  # SNGAN's projection discriminator: every weight layer 1-Lipschitz, no BatchNorm
            for m in (self.features[0], self.features[2], self.linear, self.embed):
                nn.utils.parametrizations.spectral_norm(m)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.features(images)).flatten(1)  # (B, D1 * pool * pool)
        return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)  # (B,)


class ResnetBlock(nn.Module):
    """x + (conv3x3-IN-ReLU-conv3x3-IN)(x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm2(self.conv2(self.relu(self.norm1(self.conv1(x)))))  # (B, C, H, W)


def _conv_in_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.InstanceNorm2d(out_channels, affine=True), nn.ReLU()]


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator, small: c7s1-k, d2k, d4k, R4k x blocks, u2k, uk, c7s1-C, tanh."""

    def __init__(self, in_channels: int, out_channels: int, ngf: tuple[int, int, int], blocks: int) -> None:
        super().__init__()
        k1, k2, k4 = ngf
        self.stem = nn.Sequential(*_conv_in_relu(in_channels, k1, 7))
        self.down = nn.Sequential(*_conv_in_relu(k1, k2, 3, stride=2), *_conv_in_relu(k2, k4, 3, stride=2))
        self.blocks = nn.Sequential(*[ResnetBlock(k4) for _ in range(blocks)])
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), *_conv_in_relu(k4, k2, 3),
                                nn.Upsample(scale_factor=2, mode="nearest"), *_conv_in_relu(k2, k1, 3))
        self.out = nn.Conv2d(k1, out_channels, 7, padding=3)
        self.tanh = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(self.stem(x))  # (B, 4k, H/4, W/4)
        h = self.up(self.blocks(h))  # (B, k, H, W)
        return self.tanh(self.out(h))  # (B, C, H, W) in [-1, 1]


class PatchDiscriminator(nn.Module):
    """PatchGAN: a logit per overlapping patch, ``(B, C, H, W) -> (B, 1, h, w)``."""

    def __init__(self, in_channels: int, channels: tuple[int, int]) -> None:
        super().__init__()
        d0, d1 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, d0, 4, stride=2, padding=1),  # (B, D0, H/2, W/2)
            nn.LeakyReLU(0.2),
            nn.Conv2d(d0, d1, 4, stride=2, padding=1, bias=False),  # (B, D1, H/4, W/4)
            nn.InstanceNorm2d(d1, affine=True),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Conv2d(d1, 1, 4, stride=1, padding=1)  # (B, 1, H/4 - 1, W/4 - 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class FeatureClassifier(nn.Module):
    """conv3x3-BN-ReLU-pool x2, a ``feature_dim`` penultimate layer, a linear classifier: the feature network of
    :mod:`slimkit.gan.fid` (not in the zoo registry; trained and cached there)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: float = 1.0, feature_dim: int = 128,
                 image_size: int = 28) -> None:
        super().__init__()
        c1, c2 = max(1, round(32 * width)), max(1, round(64 * width))
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * (image_size // 4) ** 2, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)  # (B, feature_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))  # (B, classes)


def _check_upsample(upsample: str) -> str:
    if upsample not in ("nearest", "transpose"):
        from slimkit.core.errors import ConfigError

        raise ConfigError(f"upsample: must be 'nearest' (upsample + conv) or 'transpose', got {upsample!r}")
    return upsample


@register_model("dcgan_g", task=TASK)
def dcgan_g(*, noise_dim: int = 64, num_classes: int = 10, image_channels: int = 1, width: float = 1.0,
            image_size: int = 28, upsample: str = "nearest") -> DCGANGenerator:
    """Conditional DCGAN generator (channels 128, 64, 32 at width 1; about 30M MACs per 28x28 image).

    Args:
        noise_dim: length of the noise vector (and of the class embedding).
        num_classes: classes it conditions on.
        image_channels: channels of the generated image.
        width: multiplier on the hidden channels.
        image_size: output side; a multiple of 4 (the projection is ``image_size // 4`` square).
        upsample: ``nearest`` (upsample + 3x3 conv, quantizable) or ``transpose`` (4x4 stride-2 transposed conv).
    """
    width = check_width(width)
    channels = (scale_channels(128, width), scale_channels(64, width), scale_channels(32, width))
    return _init(DCGANGenerator(noise_dim, num_classes, image_channels, channels, image_size // 4,
                                _check_upsample(upsample)))


@register_model("dcgan_d", task=TASK)
def dcgan_d(*, num_classes: int = 10, image_channels: int = 1, width: float = 1.0,
            pool: int = 7, spectral_norm: bool = False, embed_std: float = 0.02) -> DCGANDiscriminator:
    """Conditional DCGAN discriminator (channels 64, 128 at width 1), ``(images, labels) -> logits (B,)``.

    Args:
        pool: the final features are average-pooled to a ``pool x pool`` grid and flattened into the linear and
            projection heads; 7 (default) keeps the whole 7x7 grid of 28 px images, 1 is a global mean. The
            global mean discards where features are, and a conditional teacher trained against it made
            recognizable samples far less often (docs/gan_slimming.md: class accuracy 0.57 vs 0.80-0.82).
        spectral_norm: spectral normalization of every weight layer (and no BatchNorm), as SNGAN's projection
            discriminator (Miyato & Koyama 2018): bounded logits, steadier adversarial training.
        embed_std: init std of the class embedding of the projection term ``<embed(y), h>``. 0.02 (the default)
            puts that term's logit on the linear head's scale (DCGAN init N(0, 0.02)); at 1.0 (the default until
            2026-12-05, the same draw as then) its logit std is about 36 at ``pool=7`` (``h`` has 49 x 128 x width
            dimensions) and the benchmark's teachers came out worse on both seeds (docs/gan_slimming.md Results).
    """
    width = check_width(width)
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        raise ConfigError(f"pool: must be an int >= 1, got {pool!r}")
    if not isinstance(spectral_norm, bool):
        raise ConfigError(f"spectral_norm: must be true or false, got {spectral_norm!r}")
    if isinstance(embed_std, bool) or not isinstance(embed_std, (int, float)) or not embed_std > 0:
        raise ConfigError(f"embed_std: must be a number > 0, got {embed_std!r}")
    model = _init(DCGANDiscriminator(image_channels, num_classes, (scale_channels(64, width),
                                                                   scale_channels(128, width)), pool, spectral_norm))
    if embed_std != 1.0:  # 1.0 keeps nn.Embedding's N(0, 1) draw: the old default's weights for the same seed
        embed = model.embed
        nn.init.normal_(embed.parametrizations.weight.original if spectral_norm else embed.weight, 0.0, embed_std)
    return model


@register_model("resnet_g", task=TASK)
def resnet_g(*, in_channels: int = 1, out_channels: int | None = None, width: float = 1.0,
             blocks: int = 3) -> ResnetGenerator:
    """Small CycleGAN ResNet generator (channels 16, 32, 64 at width 1; ``blocks`` residual blocks at H/4).

    Args:
        in_channels: input image channels.
        out_channels: output image channels (default: ``in_channels``).
        width: multiplier on the hidden channels.
        blocks: residual blocks (CycleGAN uses 6 or 9 on 128-256 px images).
    """
    width = check_width(width)
    ngf = (scale_channels(16, width), scale_channels(32, width), scale_channels(64, width))
    out = in_channels if out_channels is None else out_channels
    return _init(ResnetGenerator(in_channels, out, ngf, blocks))


@register_model("patch_d", task=TASK)
def patch_d(*, in_channels: int = 1, width: float = 1.0) -> PatchDiscriminator:
    """PatchGAN discriminator (channels 32, 64 at width 1), ``images -> (B, 1, h, w)`` logits."""
    width = check_width(width)
    return _init(PatchDiscriminator(in_channels, (scale_channels(32, width), scale_channels(64, width))))
