"""Generative adversarial networks (Goodfellow et al. 2014): a generator and a discriminator.

A GAN is one Block with two children, ``generator`` (noise z -> an image in [-1, 1]) and
``discriminator`` (an image -> one logit, "real"), so that the runner initializes both as it
does any model; the ``gan`` task (``dlrun.runner.tasks.gan``) trains them in turn, each with
its own optimizer. Two families:

* :class:`GANMLP` -- dense layers on flattened images (the seed's GAN notebook);
* :class:`DCGAN` -- Radford et al. 2016: strided Conv2DTranspose + BatchNorm + ReLU up to
  a tanh image, strided Conv2D + BatchNorm + LeakyReLU(0.2) down to one logit.

The classifier that scores the generated samples is the ``gan`` task's setting
(``task.scorer``, ``task.scorer_steps``), not part of the networks.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .. import nn
from ..engine import random as engine_random

DEFAULT_IMAGE_SHAPE = (1, 28, 28)


def _image_shape(image_shape: Sequence[int] | None) -> tuple[int, ...]:
    shape = tuple(int(d) for d in (DEFAULT_IMAGE_SHAPE if image_shape is None else image_shape))
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"image_shape must be positive sizes such as [1, 28, 28], got {list(shape)}")
    return shape


class GAN(nn.Block):
    """The pair: ``generate(z)``, ``discriminate(x)`` (logits, shape (n,)), ``sample_noise(n)``.

    ``forward(z)`` generates (what ``model.npz`` users call to draw samples).
    """

    task = "gan"  # the loop it trains with (its config files pick the gan task)

    def __init__(self, generator: nn.Block, discriminator: nn.Block, latent: int,
                 image_shape: tuple[int, ...]):
        super().__init__()
        if latent <= 0:
            raise ValueError(f"latent (the noise dimension) must be positive, got {latent}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent = int(latent)
        self.image_shape = tuple(image_shape)

    def noise_shape(self, n: int) -> tuple[int, ...]:
        return (n, self.latent)

    def sample_noise(self, n: int, ctx: Any = None) -> Any:
        """``n`` latent codes z ~ N(0, I), from the engine's seeded generator."""
        return engine_random.normal(0.0, 1.0, shape=self.noise_shape(n), ctx=ctx)

    def generate(self, z: Any) -> Any:
        """Images (n, *image_shape) in [-1, 1] from latent codes z."""
        return self.generator(z).reshape((z.shape[0], *self.image_shape))

    def discriminate(self, x: Any) -> Any:
        """One logit per example, shape (n,): large means "real"."""
        return self.discriminator(x).reshape((x.shape[0],))

    def forward(self, z: Any) -> Any:
        return self.generate(z)


class GANMLP(GAN):
    """Generator: Dense(h, relu) per hidden size -> Dense(prod(image_shape), out_activation);
    discriminator: Dense(h) + LeakyReLU(0.2) per hidden size (reversed) -> Dense(1).

    ``image_shape`` null: (1, 28, 28). ``out_activation`` tanh keeps images in [-1, 1];
    null leaves the output unbounded (e.g. for points of a 2-D toy distribution).
    """

    def __init__(self, latent: int = 100, hidden: Sequence[int] = (256, 256),
                 image_shape: Sequence[int] | None = None, out_activation: str | None = "tanh"):
        shape = _image_shape(image_shape)
        hidden = [int(h) for h in hidden]
        if any(h <= 0 for h in hidden):
            raise ValueError(f"hidden sizes must be positive, got {hidden}")
        generator = nn.HybridSequential()
        for h in hidden:
            generator.add(nn.Dense(h, activation="relu"))
        generator.add(nn.Dense(math.prod(shape), activation=out_activation))
        discriminator = nn.HybridSequential()
        discriminator.add(nn.Flatten())
        for h in reversed(hidden):
            discriminator.add(nn.Dense(h), nn.LeakyReLU(0.2))
        discriminator.add(nn.Dense(1))
        super().__init__(generator, discriminator, latent, shape)


def _dcgan_plan(size: int) -> tuple[int, int]:
    """(start size s0, number of x2 upsamplings n) with size = s0 * 2**n and 3 <= s0 <= 7."""
    n, s = 0, size
    while s % 2 == 0 and s // 2 >= 4:
        s //= 2
        n += 1
    if n == 0 or not 3 <= s <= 7:
        raise ValueError(f"DCGAN needs square images of side s0 * 2**n (s0 in 3..7, n >= 1), "
                         f"such as 28 (7 * 4), 32 (4 * 8) or 64; got side {size}")
    return s, n


class DCGAN(GAN):
    """Radford et al. 2016, sized by the image side (28 -> 7x7 start, 32 -> 4x4 start).

    Generator: z (n, latent, 1, 1) -> Conv2DTranspose(c * 2**(k-1), s0) -> k times
    [BatchNorm, ReLU, Conv2DTranspose(4, stride 2, pad 1)] halving the channels, the last one
    to the image channels -> tanh. Discriminator, its mirror: k times [Conv2D(4, stride 2,
    pad 1), BatchNorm (not on the first), LeakyReLU(0.2)] doubling the channels from c ->
    Conv2D(1, s0) = one logit. c is ``base_channels``.
    """

    def __init__(self, latent: int = 100, base_channels: int = 64,
                 image_shape: Sequence[int] | None = None):
        shape = _image_shape(image_shape)
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"DCGAN needs square images (channels, side, side), got {list(shape)}")
        if base_channels <= 0:
            raise ValueError(f"base_channels must be positive, got {base_channels}")
        start, ups = _dcgan_plan(shape[1])
        widths = [base_channels * 2 ** i for i in range(ups)]  # c, 2c, 4c ... (discriminator order)
        generator = nn.HybridSequential()
        generator.add(nn.Conv2DTranspose(widths[-1], kernel_size=start, use_bias=False))
        for out in list(reversed(widths[:-1])) + [shape[0]]:
            generator.add(nn.BatchNorm(), nn.Activation("relu"),
                          nn.Conv2DTranspose(out, kernel_size=4, strides=2, padding=1,
                                             use_bias=out == shape[0]))
        generator.add(nn.Activation("tanh"))
        discriminator = nn.HybridSequential()
        for i, width in enumerate(widths):
            discriminator.add(nn.Conv2D(width, kernel_size=4, strides=2, padding=1, use_bias=i == 0))
            if i > 0:
                discriminator.add(nn.BatchNorm())
            discriminator.add(nn.LeakyReLU(0.2))
        discriminator.add(nn.Conv2D(1, kernel_size=start))
        super().__init__(generator, discriminator, latent, shape)
        self.base_channels = base_channels

    def noise_shape(self, n: int) -> tuple[int, ...]:
        return (n, self.latent, 1, 1)


__all__ = ["GAN", "GANMLP", "DCGAN"]
