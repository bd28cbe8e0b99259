"""GAN losses on discriminator logits, as the strong GAN libraries (StudioGAN, mimicry) write them.

- `bce`: the original minimax loss for D, with the non-saturating loss for G (Goodfellow et al., 2014).
- `hinge`: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G maximises D(G(z)) (Lim & Ye 2017; Miyato et al.
  2018, the SNGAN/BigGAN loss).
- `wgan-gp`: the Wasserstein critic loss with a gradient penalty on random interpolates (Gulrajani et al.,
  2017). The penalty is computed in fp32, outside autocast: second-order gradients in half precision
  overflow and underflow.

`GANObjective` puts them together with the augmentation of D's inputs: D's and G's adversarial loss on one batch,
which every variant's losses start from.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gan_lightning import options
from gan_lightning.models.augment import diff_augment


def discriminator_loss(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """D's loss (to minimise) from its logits on real (B,) and fake (B,) images."""
    if loss == "bce":
        return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    if loss == "hinge":
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    if loss == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    raise ValueError(f"unknown GAN loss {loss!r}; choose one of {', '.join(options.LOSSES)}")


def generator_loss(loss: str, d_fake: torch.Tensor) -> torch.Tensor:
    """G's loss (to minimise) from D's logits on its images (B,)."""
    if loss == "bce":  # non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z)))
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    if loss in ("hinge", "wgan-gp"):
        return -d_fake.mean()
    raise ValueError(f"unknown GAN loss {loss!r}; choose one of {', '.join(options.LOSSES)}")


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


def _scores(discriminator: Callable[..., torch.Tensor], images: torch.Tensor, condition: torch.Tensor | None,
            with_head: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """D's logits on the images (B,), and its auxiliary head (B, K) when asked for (else None)."""
    if with_head:
        return discriminator(images, condition, with_classes=True)
    return discriminator(images, condition), None


@dataclass(frozen=True)
class GANObjective:
    """The adversarial part of what D and G minimise on one batch, from the networks and the images: what every
    variant's losses start from, and what the throughput benchmark's bare loop calls through them (stepping the
    optimizers is the loop's job). `loss` names the GAN loss; `gp_weight` weighs WGAN-GP's penalty; `augment` names
    the differentiable augmentations that every input of D passes through, each image with its own draw
    (DiffAugment). A variant whose D has an auxiliary head (AC-GAN's classes, InfoGAN's Q) asks for its outputs
    (`head_on`, `with_head`) and adds its own terms."""

    loss: str = "bce"
    gp_weight: float = 10.0
    augment: tuple[str, ...] = ()

    def __post_init__(self):
        assert self.loss in options.LOSSES and set(self.augment) <= set(options.AUGMENTATIONS), self

    def discriminator_step(self, discriminator: Callable[..., torch.Tensor], real: torch.Tensor,
                           real_condition: torch.Tensor | None, fake: torch.Tensor,
                           fake_condition: torch.Tensor | None, head_on: str | None = None
                           ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor,
                                      torch.Tensor | None]:
        """D's loss on real images (B, C, H, W) against G's (detached here), each through its own draw of the
        augmentation, each with what D is told of it (None for an unconditional D); the detached parts to log; D's
        logits on the real and the fake images (B,) (B,); and D's auxiliary head (B, K) on the images `head_on`
        names, "real" (AC-GAN's classes) or "fake" (InfoGAN's codes), as D saw them (None: no head)."""
        assert head_on in (None, "real", "fake"), head_on
        real, fake = diff_augment(real, self.augment), diff_augment(fake.detach(), self.augment)
        (d_real, real_head), (d_fake, fake_head) = (_scores(discriminator, real, real_condition, head_on == "real"),
                                                    _scores(discriminator, fake, fake_condition, head_on == "fake"))
        head = real_head if head_on == "real" else fake_head
        d_loss = discriminator_loss(self.loss, d_real, d_fake)
        logs = {"train/d_loss": d_loss.detach()}
        if self.loss == "wgan-gp":  # between the images D saw
            penalty = gradient_penalty(discriminator, real, fake, real_condition)
            d_loss = d_loss + self.gp_weight * penalty
            logs["train/gradient_penalty"] = penalty.detach()
        return d_loss, logs, d_real, d_fake, head

    def generator_step(self, discriminator: Callable[..., torch.Tensor], fake: torch.Tensor,
                       fake_condition: torch.Tensor | None, with_head: bool = False
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
        """G's loss on its images (B, C, H, W), whose gradient flows back through a new draw of the augmentation,
        the detached parts to log, and (`with_head`) D's auxiliary head on the images."""
        g_fake, fake_head = _scores(discriminator, diff_augment(fake, self.augment), fake_condition, with_head)
        g_loss = generator_loss(self.loss, g_fake)
        return g_loss, {"train/g_loss": g_loss.detach()}, fake_head
