"""The conditional GAN (Mirza & Osindero, 2014, "Conditional Generative Adversarial Nets"): ask for a 7, get a 7.

What it adds to the shared alternation, all of it here:
- G is fed the digit it is asked for beside the noise (a one-hot vector), and D is told each image's digit: a real
  image's label, a fake's digit asked for (by projection, Miyato & Koyama 2018, or as one-hot maps; the networks'
  `conditioning`).
- `class_loss_weight` > 0 adds AC-GAN's auxiliary classification loss (Odena et al., 2017): D gets a class head,
  learnt on real digits only, and G is scored on D's reading of the digit it was asked for.
- The sample grid has one row per digit, one style (noise) per column; the quality metrics ask for every digit
  equally often and read back which digit each sample shows (the label accuracy).
"""

import torch
import torch.nn.functional as F

from gan_lightning.models.base import GAN


def class_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """AC-GAN's auxiliary classification loss: cross-entropy of D's class logits (B, K) with the labels (B,), in
    fp32. D learns it on real images only, G on its images with the digits asked for, so G is pushed to draw each
    digit as D's classifier of real digits reads it (D never learns G's mistakes as labels)."""
    return F.cross_entropy(class_logits.float(), labels)


class ConditionalGAN(GAN):
    name = "cgan"

    def __init__(self, generator, discriminator, optimizer, class_loss_weight: float = 1.0, **kwargs):
        assert class_loss_weight >= 0, class_loss_weight  # checked in the config
        self.class_loss_weight = class_loss_weight  # before the networks are built: it gives D its class head
        super().__init__(generator, discriminator, optimizer, **kwargs)

    def network_inputs(self):
        g_inputs, d_inputs = super().network_inputs()
        head = {"class_head": True} if self.class_loss_weight else {}
        return g_inputs | {"num_classes": self.hparams.num_classes}, d_inputs | {"num_classes": self.hparams.num_classes, **head}

    def draw_latent(self, n, rng=None):
        """z and the digits asked for, uniform over the classes."""
        z, _ = super().draw_latent(n, rng)
        return z, torch.randint(0, self.hparams.num_classes, (n,), device=self.device, generator=rng)

    def condition(self, labels_or_code):
        return labels_or_code  # the digit, of a real image or asked of G

    def discriminator_loss(self, real, labels, fake, code):
        d_loss, logs, d_real, d_fake, real_classes = self.objective.discriminator_step(
            self.discriminator, real, labels, fake, code, head_on="real" if self.class_loss_weight else None)
        if self.class_loss_weight:  # AC-GAN: D also learns to classify the real digits
            d_class_loss = class_loss(real_classes, labels)
            d_loss = d_loss + self.class_loss_weight * d_class_loss
            logs["train/d_class_loss"] = d_class_loss.detach()
        return d_loss, logs, d_real, d_fake

    def generator_loss(self, fake, code):
        g_loss, logs, fake_classes = self.objective.generator_step(
            self.discriminator, fake, code, with_head=bool(self.class_loss_weight))
        if self.class_loss_weight:  # AC-GAN: G is also scored on D's reading of the digit it was asked for
            g_class_loss = class_loss(fake_classes, code)
            g_loss = g_loss + self.class_loss_weight * g_class_loss
            logs = {"train/g_class_loss": g_class_loss.detach(), **logs}
        return g_loss, logs

    def fixed_latent(self, rng):
        """One row per digit, the same z down each column (one style per column)."""
        cols, classes = self.hparams.grid_cols, self.hparams.num_classes
        z = torch.randn(cols, self.hparams.noise_dim, generator=rng).repeat(classes, 1)  # (classes * cols, noise_dim)
        return z, torch.arange(classes).repeat_interleave(cols)  # (classes * cols,)

    def evaluation_samples(self, first, n, rng):
        """Every digit asked for equally often over the whole draw (all ranks together)."""
        z, _ = self.draw_latent(n, rng)
        labels = torch.arange(first, first + n, device=self.device) % self.hparams.num_classes
        return self.sample(z, labels), labels, None
