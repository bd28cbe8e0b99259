"""GAN losses on discriminator logits, as the strong GAN libraries (StudioGAN, mimicry) write them.

- `bce`: the original minimax loss for D, with the non-saturating loss for G (Goodfellow et al., 2014).
- `hinge`: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G maximises D(G(z)) (Lim & Ye 2017; Miyato et al.
  2018, the SNGAN/BigGAN loss).
- `wgan-gp`: the Wasserstein critic loss with a gradient penalty on random interpolates (Gulrajani et al.,
  2017). The penalty is computed in fp32, outside autocast: second-order gradients in half precision
  overflow and underflow.

`GANObjective` puts them together with AC-GAN's class loss and the augmentation of D's inputs: D's and G's loss
on one batch, what every training loop of the project calls.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gan_lightning.models.augment import diff_augment

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


@dataclass(frozen=True)
class GANObjective:
    """What D and G minimise on one batch, from the networks and the images: the one definition that the
    LightningModule's training step and the throughput benchmark's bare loop both call (stepping the optimizers is
    the loop's job). `loss` names the GAN loss; `gp_weight` weighs WGAN-GP's penalty; `class_loss_weight` > 0 adds
    AC-GAN's auxiliary class loss (D's `with_classes` head); `augment` names the differentiable augmentations that
    every input of D passes through, each image with its own draw (DiffAugment)."""

    loss: str = "bce"
    gp_weight: float = 10.0
    class_loss_weight: float = 0.0
    augment: tuple[str, ...] = ()

    def discriminator_step(self, discriminator: Callable[..., torch.Tensor], real: torch.Tensor,
                           real_labels: torch.Tensor | None, fake: torch.Tensor,
                           fake_labels: torch.Tensor | None
                           ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """D's loss on real images (B, C, H, W) against G's (detached here), each through its own draw of the
        augmentation; the detached parts to log; D's logits on the real and the fake images (B,) (B,)."""
        real, fake = diff_augment(real, self.augment), diff_augment(fake.detach(), self.augment)
        if self.class_loss_weight:  # AC-GAN: D also learns to classify the real digits
            d_real, real_classes = discriminator(real, real_labels, with_classes=True)  # (B,), (B, K)
        else:
            d_real = discriminator(real, real_labels)  # (B,) logits
        d_fake = discriminator(fake, fake_labels)
        d_loss = discriminator_loss(self.loss, d_real, d_fake)
        logs = {"train/d_loss": d_loss.detach()}
        if self.class_loss_weight:
            d_class_loss = class_loss(real_classes, real_labels)
            d_loss = d_loss + self.class_loss_weight * d_class_loss
            logs["train/d_class_loss"] = d_class_loss.detach()
        if self.loss == "wgan-gp":  # between the images D saw
            penalty = gradient_penalty(discriminator, real, fake, real_labels)
            d_loss = d_loss + self.gp_weight * penalty
            logs["train/gradient_penalty"] = penalty.detach()
        return d_loss, logs, d_real, d_fake

    def generator_step(self, discriminator: Callable[..., torch.Tensor], fake: torch.Tensor,
                       fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """G's loss on its images (B, C, H, W), whose gradient flows back through a new draw of the augmentation,
        and the detached parts to log."""
        fake = diff_augment(fake, self.augment)
        logs = {}
        if self.class_loss_weight:  # AC-GAN: G is also scored on D's reading of the digit it was asked for
            g_fake, fake_classes = discriminator(fake, fake_labels, with_classes=True)
            g_class_loss = class_loss(fake_classes, fake_labels)
            logs["train/g_class_loss"] = g_class_loss.detach()
        else:
            g_fake = discriminator(fake, fake_labels)
        g_loss = generator_loss(self.loss, g_fake)
        logs["train/g_loss"] = g_loss.detach()
        if self.class_loss_weight:
            g_loss = g_loss + self.class_loss_weight * g_class_loss
        return g_loss, logs
