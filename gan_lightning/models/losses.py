"""GAN losses on discriminator logits, as the strong GAN libraries (StudioGAN, mimicry) write them.

- `bce`: the original minimax loss for D, with the non-saturating loss for G (Goodfellow et al., 2014).
- `hinge`: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G maximises D(G(z)) (Lim & Ye 2017; Miyato et al.
  2018, the SNGAN/BigGAN loss).
- `wgan-gp`: the Wasserstein critic loss with a gradient penalty on random interpolates (Gulrajani et al.,
  2017). The penalty is computed in fp32, outside autocast: second-order gradients in half precision
  overflow and underflow.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("bce", "hinge", "wgan-gp")


def class_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """AC-GAN's auxiliary classification loss (Odena et al., 2017): cross-entropy of D's class logits (B, K) with
    the labels (B,), in fp32. D learns it on real images only, G on its images with the digits asked for, so G is
    pushed to draw each digit as D's classifier of real digits reads it (D never learns G's mistakes as labels)."""
    return F.cross_entropy(class_logits.float(), labels)


def discriminator_loss(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """D's loss (to minimise) from its logits on real (B,) and fake (B,) images."""
    if loss == "bce":
        return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    if loss == "hinge":
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    if loss == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    raise ValueError(f"unknown GAN loss {loss!r}; choose one of {', '.join(LOSSES)}")


def generator_loss(loss: str, d_fake: torch.Tensor) -> torch.Tensor:
    """G's loss (to minimise) from D's logits on its images (B,)."""
    if loss == "bce":  # non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z)))
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    if loss in ("hinge", "wgan-gp"):
        return -d_fake.mean()
    raise ValueError(f"unknown GAN loss {loss!r}; choose one of {', '.join(LOSSES)}")


def gradient_penalty(
    discriminator: Callable[..., torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP's E[(||grad_x D(x)||_2 - 1)^2] at x uniformly between real and fake images (both (B, C, H, W)),
    in fp32 whatever the surrounding precision. The conditional GAN pairs each interpolate with the fake's
    labels (as StudioGAN does)."""
    device_type = real.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        real, fake = real.detach().float(), fake.detach().float()
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        scores = discriminator(mixed, labels).float()
        (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
