"""InfoGAN (Chen et al., 2016, "InfoGAN: Interpretable Representation Learning by Information Maximizing GANs").

Trained without labels, it finds the digit, the slant and the width. What it adds to the shared alternation, all of
it here:
- G is fed latent codes beside the noise: one `categorical` code (10 values, drawn uniformly, one-hot) and
  `continuous` codes drawn from Uniform(-1, 1), as one input vector [z, one-hot(c), c'].
- Q, a linear head on D's shared body (`head_outputs` of the conv discriminator), reads the codes back from G's
  images: logits for the categorical code and a mean for each continuous one.
- The mutual-information lower bound is maximised by G and by Q (and D's body) alike: `info_weight` x (the
  cross-entropy of the categorical code, plus `continuous_weight` x the Gaussian negative log-likelihood of the
  continuous ones at a fixed unit variance, half the squared error). Q learns it in the D step, on G's detached
  images; G in the G step. Q reads the images as G drew them, never through D's augmentation.
- The sample grid has one row per categorical code, one style (noise) per column, the continuous codes at 0. The
  quality metrics read no labels: a code is not a label. Which code draws which class is found after the fact, at
  every validation (`val/code_accuracy`: the best one-to-one matching of codes to the classifier's classes).
"""

import torch
import torch.nn.functional as F

from gan_lightning.models.base import GAN

# the noise z: N(0, I) as every GAN of the project, or Uniform(-1, 1) per coordinate as the InfoGAN authors' code
NOISES = ("normal", "uniform")


class InfoGAN(GAN):
    name = "infogan"

    def __init__(self, generator, discriminator, optimizer, categorical: int = 10, continuous: int = 2,
                 info_weight: float = 1.0, continuous_weight: float = 0.1, noise: str = "normal", **kwargs):
        assert categorical >= 2 and continuous >= 0 and info_weight > 0 and continuous_weight >= 0  # config-checked
        assert noise in NOISES, noise
        # before the networks are built: the codes widen G's input and give D its Q head
        self.categorical, self.continuous, self.noise = categorical, continuous, noise
        super().__init__(generator, discriminator, optimizer, **kwargs)

    @property
    def codes(self) -> dict:
        """The layout of G's input after the noise (and the noise's distribution), which a checkpoint records for
        sampling."""
        return {"categorical": self.categorical, "continuous": self.continuous, "noise": self.noise}

    def network_inputs(self):
        g_inputs, d_inputs = super().network_inputs()
        width = self.categorical + self.continuous
        return g_inputs | {"noise_dim": self.hparams.noise_dim + width}, d_inputs | {"head_outputs": width}

    def draw_latent(self, n, rng=None):
        """z, and the codes (n, categorical + continuous): a one-hot categorical code, continuous ones in [-1, 1]."""
        z, _ = super().draw_latent(n, rng)
        if self.noise == "uniform":  # the official code's Uniform(-1, 1) noise: erf(x / sqrt(2)) of a normal draw
            z = torch.erf(z / 2**0.5)
        categorical = torch.randint(0, self.categorical, (n,), device=self.device, generator=rng)
        continuous = torch.rand(n, self.continuous, device=self.device, generator=rng) * 2 - 1
        return z, torch.cat([F.one_hot(categorical, self.categorical).to(z), continuous], dim=1)

    def generate(self, z, code, generator=None):
        return (generator or self.generator)(torch.cat([z, code.to(z)], dim=1), None)  # [z, one-hot(c), c']

    def information_loss(self, q: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The negative of the mutual-information lower bound (up to constants), from Q's outputs (B, K + C) on
        images drawn with `code` (B, K + C), in fp32."""
        q, code = q.float(), code.float()
        k = self.categorical
        categorical = F.cross_entropy(q[:, :k], code[:, :k].argmax(1))
        continuous = 0.5 * (q[:, k:] - code[:, k:]).pow(2).sum(1).mean() if self.continuous else q.new_zeros(())
        loss = self.hparams.info_weight * (categorical + self.hparams.continuous_weight * continuous)
        return loss, {"categorical": categorical.detach(), "continuous": continuous.detach()}

    def _q(self, fake: torch.Tensor, head: torch.Tensor | None) -> torch.Tensor:
        """Q on G's images as G drew them: the head D computed, unless D saw them augmented."""
        return head if not self.objective.augment else self.discriminator(fake, None, with_classes=True)[1]

    def discriminator_loss(self, real, labels, fake, code):
        d_loss, logs, d_real, d_fake, head = self.objective.discriminator_step(
            self.discriminator, real, None, fake, None, head_on="fake")
        info_loss, parts = self.information_loss(self._q(fake.detach(), head), code)  # Q (and D's body) learn
        logs |= {"train/q_categorical_loss": parts["categorical"], "train/q_continuous_loss": parts["continuous"]}
        return d_loss + info_loss, logs, d_real, d_fake

    def generator_loss(self, fake, code):
        g_loss, logs, head = self.objective.generator_step(self.discriminator, fake, None, with_head=True)
        info_loss, _ = self.information_loss(self._q(fake, head), code)  # G learns to draw its codes
        logs |= {"train/info_loss": info_loss.detach()}
        return g_loss + info_loss, logs

    def evaluation_samples(self, first, n, rng):
        """Every categorical code equally often over the whole draw (sample i gets code i mod K, as `evaluate.py`
        draws them), the continuous codes drawn; the codes go to the metrics as codes, never as labels."""
        z, code = self.draw_latent(n, rng)
        categorical = torch.arange(first, first + n, device=self.device) % self.categorical
        code[:, : self.categorical] = F.one_hot(categorical, self.categorical).to(code)
        return self.sample(z, code), None, categorical

    def fixed_latent(self, rng):
        """One row per categorical code, the same z down each column, the continuous codes at 0."""
        cols, k = self.hparams.grid_cols, self.categorical
        z = torch.randn(cols, self.hparams.noise_dim, generator=rng).repeat(k, 1)  # (k * cols, noise_dim)
        z = torch.erf(z / 2**0.5) if self.noise == "uniform" else z
        categorical = F.one_hot(torch.arange(k).repeat_interleave(cols), k).float()
        return z, torch.cat([categorical, torch.zeros(k * cols, self.continuous)], dim=1)

    def on_save_checkpoint(self, checkpoint):
        super().on_save_checkpoint(checkpoint)
        checkpoint["codes"] = self.codes
