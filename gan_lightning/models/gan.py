"""The GAN training logic: one discriminator step and one generator step per batch.

The three models differ only in their networks (config); the conditional GAN additionally feeds the digit
labels to both networks: `_noise` draws the digits asked of the generator, and both networks take labels.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer

from gan_lightning.callbacks import LastCheckpoint
from gan_lightning.errors import UserError
from gan_lightning.metrics import GANQuality
from gan_lightning.networks.spec import network_spec

NetworkFactory = Callable[..., nn.Module]


class TrainingDiverged(UserError):
    """A loss became NaN or infinite: training further would only train on garbage."""


class GAN(L.LightningModule):
    """A GAN trained with Lightning's manual optimization (two optimizers: generator first, then discriminator).

    `generator` and `discriminator` are network classes (or partials of them, as Hydra builds them with
    `_partial_: true`); the sizes that come from the data (`image_shape`, `num_classes`) are filled in here.
    """

    def __init__(
        self,
        generator: NetworkFactory,
        discriminator: NetworkFactory,
        optimizer: Callable[[Iterable[nn.Parameter]], Optimizer],
        noise_dim: int = 100,
        conditional: bool = False,
        image_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        grid_cols: int = 8,
        sample_seed: int = 0,
        quality: GANQuality | None = None,
        eval_samples: int = 2000,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "discriminator", "optimizer", "quality"], logger=False)
        self.automatic_optimization = False
        self.optimizer_factory = optimizer
        # the label input of both networks: 0 classes makes them unconditional
        label_classes = num_classes if conditional else 0
        self.networks = {
            "generator": network_spec(generator, noise_dim=noise_dim, image_shape=image_shape, num_classes=label_classes),
            "discriminator": network_spec(discriminator, image_shape=image_shape, num_classes=label_classes),
        }
        self.generator = generator(noise_dim=noise_dim, image_shape=image_shape, num_classes=label_classes)
        self.discriminator = discriminator(image_shape=image_shape, num_classes=label_classes)
        # FID, KID, MNIST score, class balance (and label accuracy) of `eval_samples` fakes at each validation
        self.quality = quality

        # Fixed noise, so the grids of successive epochs are comparable. Conditional: one row per digit,
        # the same z down each column (one style per column).
        rng = torch.Generator().manual_seed(sample_seed)
        rows = num_classes if conditional else grid_cols
        z = torch.randn(grid_cols, noise_dim, generator=rng).repeat(rows, 1) if conditional else (
            torch.randn(rows * grid_cols, noise_dim, generator=rng)
        )
        self.register_buffer("fixed_z", z)  # (rows * cols, noise_dim)
        self.register_buffer("fixed_labels", torch.arange(rows).repeat_interleave(grid_cols))  # (rows * cols,)

    @property
    def conditional(self) -> bool:
        return self.hparams.conditional

    def _noise(self, batch_size: int, rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z (B, noise_dim) and, for the conditional GAN, the digits asked for: uniform over the classes."""
        z = torch.randn(batch_size, self.hparams.noise_dim, device=self.device, generator=rng)
        if not self.conditional:
            return z, None
        return z, torch.randint(0, self.hparams.num_classes, (batch_size,), device=self.device, generator=rng)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, labels if self.conditional else None)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] from the generator in eval mode (BatchNorm uses running statistics)."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self(z, labels)
        finally:
            self.generator.train(was_training)

    def fixed_samples(self) -> tuple[torch.Tensor, int]:
        """The fixed-noise samples and the number of columns to lay them out in."""
        return self.sample(self.fixed_z, self.fixed_labels), self.hparams.grid_cols

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, real_labels = batch  # (B, C, H, W) in [-1, 1], (B,)
        real_labels = real_labels if self.conditional else None
        opt_g, opt_d = self.optimizers()
        batch_size = real.shape[0]
        z, fake_labels = self._noise(batch_size)
        fake = self.generator(z, fake_labels)  # (B, C, H, W)
        ones = torch.ones(batch_size, device=self.device)
        zeros = torch.zeros(batch_size, device=self.device)

        # D step: maximise log D(x) + log(1 - D(G(z)))
        self.toggle_optimizer(opt_d)
        d_real = self.discriminator(real, real_labels)  # (B,) logits
        d_fake = self.discriminator(fake.detach(), fake_labels)
        d_loss = F.binary_cross_entropy_with_logits(d_real, ones) + F.binary_cross_entropy_with_logits(d_fake, zeros)
        self._check_finite("d_loss", d_loss, batch_idx)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        # G step, non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z)))
        self.toggle_optimizer(opt_g)
        g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake, fake_labels), ones)
        self._check_finite("g_loss", g_loss, batch_idx)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.log_dict({"train/d_loss": d_loss.detach(), "train/g_loss": g_loss.detach()}, prog_bar=True)
        self.log_dict({"train/d_real": torch.sigmoid(d_real.detach()).mean(), "train/d_fake": torch.sigmoid(d_fake.detach()).mean()})

    def _check_finite(self, name: str, loss: torch.Tensor, batch_idx: int) -> None:
        """Stop before a NaN or inf loss reaches the weights, naming the step and the last good checkpoint."""
        if torch.isfinite(loss):
            return
        last = next((cb.saved for cb in self.trainer.callbacks if isinstance(cb, LastCheckpoint) and cb.saved), None)
        resume = f"last good checkpoint: {last}" if last else "no checkpoint was saved yet"
        raise TrainingDiverged(
            f"training diverged: {name} = {loss.item()} at epoch {self.current_epoch}, batch {batch_idx} "
            f"(global step {self.global_step}); {resume}; try a lower optimizer.lr"
        )

    def on_validation_epoch_start(self) -> None:
        # validation noise has its own seeded stream, so validating never shifts the training noise
        self.val_rng = torch.Generator(device=self.device).manual_seed(self.hparams.sample_seed)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, real_labels = batch
        z, fake_labels = self._noise(real.shape[0], self.val_rng)
        d_real = self.discriminator(real, real_labels if self.conditional else None)
        d_fake = self.discriminator(self.generator(z, fake_labels), fake_labels)
        self.log_dict({"val/d_real": torch.sigmoid(d_real).mean(), "val/d_fake": torch.sigmoid(d_fake).mean()})

    def on_validation_epoch_end(self) -> None:
        if self.quality is None or self.trainer.sanity_checking:
            return
        batch_size = self.quality.batch_size
        for start in range(0, self.hparams.eval_samples, batch_size):
            n = min(batch_size, self.hparams.eval_samples - start)
            z, _ = self._noise(n, self.val_rng)
            # conditional: every digit asked for equally often
            labels = torch.arange(start, start + n, device=self.device) % self.hparams.num_classes if self.conditional else None
            self.quality.update(self.generator(z, labels), labels)
        metrics = self.quality.compute()
        self.quality.reset()
        logged = {"fid", "kid_mean", "mnist_score", "min_class_share", "label_accuracy"}
        self.log_dict({f"val/{k}": float(v) for k, v in metrics.items() if k in logged})

    def configure_optimizers(self) -> list[Optimizer]:
        return [self.optimizer_factory(self.generator.parameters()), self.optimizer_factory(self.discriminator.parameters())]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # what `gan_lightning.checkpoint` needs to rebuild the networks without unpickling objects
        checkpoint["networks"] = self.networks
        # the state of the training noise (and rotation) stream, so a resumed run draws what this one would have
        checkpoint["rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # called before training resumes (the sanity check runs with the RNG isolated)
        rng = checkpoint.get("rng") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"].cpu())
        if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([state.cpu() for state in rng["cuda"]])
