"""The GAN training logic: a discriminator step every batch and a generator step every `d_steps` batches.

The three models differ only in their networks (config); the conditional GAN additionally feeds the digit
labels to both networks: `_noise` draws the digits asked of the generator, and both networks take labels.
The recipe around them is config too: the loss (BCE, hinge, WGAN-GP), the optimizers (two time-scale learning
rates), an exponential moving average of the generator's weights that sampling, evaluation and export use, and the
differentiable augmentation that D's inputs pass through in training (reals and fakes alike).
"""

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.optim import Optimizer

from gan_lightning.errors import TrainingDiverged
from gan_lightning.metrics import GANQuality
from gan_lightning.metrics.quality import draw
from gan_lightning.models import rng
from gan_lightning.models.augment import parse_policy
from gan_lightning.models.divergence import DivergenceWatch
from gan_lightning.models.losses import LOSSES, GANObjective
from gan_lightning.networks.spec import network_spec

# how `gradient_clip_val` clips: the gradients' total norm, or each value (Lightning's names)
CLIP_ALGORITHMS = ("norm", "value")

# the quality metrics logged at every validation (label accuracy for the conditional GAN only)
LOGGED_QUALITY = ("fid", "kid_mean", "precision", "recall", "density", "coverage", "mnist_score", "min_class_share",
                  "label_accuracy")

NetworkFactory = Callable[..., nn.Module]


OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]


class GAN(L.LightningModule):
    """A GAN trained with Lightning's manual optimization (two optimizers: generator first, then discriminator).

    `generator` and `discriminator` are network classes (or partials of them, as Hydra builds them with
    `_partial_: true`); the sizes that come from the data (`image_shape`, `num_classes`) are filled in here.
    `optimizer` maps "generator" and "discriminator" to optimizer factories (partials taking the parameters).

    The recipe: `loss` is "bce" (non-saturating), "hinge" or "wgan-gp" (with `gp_weight`); D takes `d_steps`
    steps per G step; `gradient_clip_val` clips each network's gradients before its step; `ema_decay` > 0 keeps
    an exponential moving average of G's weights (`generator_ema`), which sampling, validation metrics and
    export use; `augment` names the differentiable augmentations (`translation`, `cutout`: a list, or one string
    separated by commas; None = none) that every training input of D goes through, real and fake alike, in the D
    step and in the G step (DiffAugment); `class_loss_weight` > 0 (conditional GAN) gives D a class head and adds
    AC-GAN's auxiliary classification loss, learnt by D on real digits and by G on its own; `compile` compiles both networks with torch.compile; `channels_last` keeps
    the convolutions' weights (and so their activations) in the channels-last memory format.
    """

    def __init__(
        self,
        generator: NetworkFactory,
        discriminator: NetworkFactory,
        optimizer: Mapping[str, OptimizerFactory],
        noise_dim: int = 100,
        conditional: bool = False,
        image_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        grid_cols: int = 8,
        sample_seed: int = 0,
        quality: GANQuality | None = None,
        eval_samples: int = 2000,
        loss: str = "bce",
        gp_weight: float = 10.0,
        d_steps: int = 1,
        ema_decay: float = 0.0,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        augment: str | Sequence[str] | None = None,
        class_loss_weight: float = 0.0,
        compile: bool = False,
        channels_last: bool = False,
        lr_decay_epochs: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "discriminator", "optimizer", "quality"], logger=False)
        self.automatic_optimization = False
        # the values come checked from the config (`gan_lightning.config.validate`)
        assert loss in LOSSES and 0.0 <= ema_decay < 1.0 and d_steps >= 1, (loss, ema_decay, d_steps)
        assert gradient_clip_val is None or gradient_clip_val > 0, gradient_clip_val
        assert gradient_clip_algorithm in CLIP_ALGORITHMS, gradient_clip_algorithm
        assert class_loss_weight >= 0 and (conditional or not class_loss_weight), class_loss_weight
        assert lr_decay_epochs >= 0, lr_decay_epochs
        # D's and G's losses on a batch (the loss, WGAN-GP's penalty, AC-GAN's class loss, DiffAugment)
        self.objective = GANObjective(loss, gp_weight, class_loss_weight, tuple(parse_policy(augment)))
        self.optimizer_factories = {name: optimizer[name] for name in ("generator", "discriminator")}
        # the label input of both networks: 0 classes makes them unconditional
        label_classes = num_classes if conditional else 0
        # AC-GAN: D also classifies the digits (a class head beside its real/fake logit)
        d_extra = {"class_head": True} if class_loss_weight else {}
        self.networks = {
            "generator": network_spec(generator, noise_dim=noise_dim, image_shape=image_shape, num_classes=label_classes),
            "discriminator": network_spec(discriminator, image_shape=image_shape, num_classes=label_classes, **d_extra),
        }
        self.generator = generator(noise_dim=noise_dim, image_shape=image_shape, num_classes=label_classes)
        self.discriminator = discriminator(image_shape=image_shape, num_classes=label_classes, **d_extra)
        assert not (loss == "wgan-gp" and any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                              for m in self.discriminator.modules())), "WGAN-GP with BatchNorm in D"
        # the moving average of G's weights: never trained, only blended towards G after each G step
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval() if ema_decay else None
        if ema_decay:
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        # FID, KID, MNIST score, class balance (and label accuracy) of `eval_samples` fakes at each validation
        self.quality = quality
        self._real_metrics: dict | None = None  # the real-data reference, scored at the first validation
        self._divergence = DivergenceWatch()  # NaN/inf losses, checked without a host sync per step on a GPU
        self._epoch_totals: dict[str, tuple[torch.Tensor, int]] = {}  # the losses' sums over the epoch, on the device

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

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that samples, is evaluated and is exported: the EMA one when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] from the sampling generator in eval mode (BatchNorm uses running
        statistics)."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        try:
            return generator(z, labels if self.conditional else None)
        finally:
            generator.train(was_training)

    def fixed_samples(self) -> tuple[torch.Tensor, int]:
        """The fixed-noise samples and the number of columns to lay them out in."""
        return self.sample(self.fixed_z, self.fixed_labels), self.hparams.grid_cols

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, real_labels = batch  # (B, C, H, W) in [-1, 1], (B,)
        real_labels = real_labels if self.conditional else None
        opt_g, opt_d = self.optimizers()
        if self.hparams.lr_decay_epochs:
            self._decay_learning_rates(batch_idx, (opt_g, opt_d))
        g_step = (batch_idx + 1) % self.hparams.d_steps == 0
        z, fake_labels = self._noise(real.shape[0])
        with torch.set_grad_enabled(g_step):  # the graph through G is only needed for a G step
            fake = self.generator(z, fake_labels)  # (B, C, H, W)

        # D step: real vs detached fake
        self.toggle_optimizer(opt_d)
        d_loss, logs, d_real, d_fake = self.objective.discriminator_step(
            self.discriminator, real, real_labels, fake, fake_labels)
        self._watch_finite("d_loss", d_loss, batch_idx)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        if g_step:  # G step against the updated D
            self.toggle_optimizer(opt_g)
            g_loss, g_logs = self.objective.generator_step(self.discriminator, fake, fake_labels)
            logs |= g_logs
            self._watch_finite("g_loss", g_loss, batch_idx)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            self._update_ema()

        for name, value in logs.items():  # for the epoch means (an addition on the device, no read)
            total, count = self._epoch_totals.get(name, (0.0, 0))
            self._epoch_totals[name] = (total + value, count + 1)
        if self._logs_this_step():
            self._check_finite()  # on a GPU: here, where the logs read the device anyway
            self.log_dict(logs, prog_bar=True)
            # D(x), D(G(z)): probabilities for BCE, raw critic scores for hinge and WGAN-GP
            self.log_dict({"train/d_real": self._score(d_real.detach()), "train/d_fake": self._score(d_fake.detach())})

    def on_before_optimizer_step(self, optimizer) -> None:
        """Clip the gradients of the network about to step. Lightning refuses `Trainer(gradient_clip_val=...)` under
        manual optimization, so the module clips, in this hook: Lightning calls it inside `optimizer.step()`, after
        unscaling 16-mixed gradients, so the clip applies to the true gradients in every precision. Without a loss
        scaler (fp32, bf16) the gradients are clipped as they are, which also works for a fused Adam (Lightning's
        `clip_gradients` refuses one under any mixed precision, since with a scaler it unscales inside its step)."""
        clip_val, algorithm = self.hparams.gradient_clip_val, self.hparams.gradient_clip_algorithm
        if clip_val is None:
            return
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip_val, gradient_clip_algorithm=algorithm)
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if algorithm == "value":
            nn.utils.clip_grad_value_(params, clip_val)
        else:
            nn.utils.clip_grad_norm_(params, clip_val)

    def _logs_this_step(self) -> bool:
        """Whether Lightning writes this batch's training logs: every `trainer.log_every_n_steps` batches counted over
        the whole run, and when training stops. Only then are they logged: each `self.log` call costs about a
        millisecond of CPU, which is a tenth of a small model's training step on a CPU (the progress bar's losses
        are refreshed as often). Called after the batch's steps; the batches done, this one included, come from the
        optimizer steps taken (Lightning's `global_step`): one D step per batch and a G step every `d_steps`
        batches, so g = b + b // d_steps."""
        every = self.trainer.log_every_n_steps
        if not every:
            return False
        d_steps = self.hparams.d_steps
        batches_done = (self.global_step * d_steps + d_steps) // (d_steps + 1)
        return batches_done % every == 0 or self.trainer.should_stop

    def _score(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits).mean() if self.hparams.loss == "bce" else logits.mean()

    @torch.no_grad()
    def _update_ema(self) -> None:
        """Blend the EMA generator towards G: w_ema <- d * w_ema + (1 - d) * w, with the decay warming up as
        d = min(ema_decay, (1 + n) / (10 + n)) after n updates, so the average forgets the random initial
        weights early. Buffers (BatchNorm running statistics) are copied. The decay is computed on the device, so
        the update never waits for the GPU (a `.item()` of the counter would, after every G step)."""
        if self.generator_ema is None:
            return
        n = self.ema_updates.float()
        decay = ((1 + n) / (10 + n)).clamp(max=self.hparams.ema_decay)  # a 0-dim tensor on the device
        ema_params = list(self.generator_ema.parameters())
        steps = torch._foreach_sub([p.detach() for p in self.generator.parameters()], ema_params)  # w - w_ema
        torch._foreach_mul_(steps, 1.0 - decay)
        torch._foreach_add_(ema_params, steps)
        for ema_buffer, buffer in zip(self.generator_ema.buffers(), self.generator.buffers()):
            ema_buffer.copy_(buffer)
        self.ema_updates += 1

    def _watch_finite(self, name: str, loss: torch.Tensor, batch_idx: int) -> None:
        """Note whether `loss` is finite; on a CPU, where reading it costs nothing, check before the step, so a NaN
        or inf never reaches the weights. On a GPU `_check_finite` runs at log steps, epoch ends and checkpoints."""
        self._divergence.watch(loss, name, self.current_epoch, batch_idx, self.global_step)
        if loss.device.type == "cpu":
            self._check_finite()

    def _check_finite(self) -> None:
        """Stop training at the first NaN or inf loss watched since the last check, naming its step."""
        divergence = self._divergence.check(
            lambda finite: self.trainer.strategy.reduce_boolean_decision(finite, all=True))
        if divergence is not None:
            raise TrainingDiverged(str(divergence))

    def on_train_epoch_end(self) -> None:
        self._check_finite()
        # every run shows its losses, also one shorter than trainer.log_every_n_steps batches
        self.log_dict({f"{name}_epoch": total / count for name, (total, count) in self._epoch_totals.items()})
        self._epoch_totals = {}

    def on_fit_start(self) -> None:
        rng.split_per_rank(self)

    def on_validation_epoch_start(self) -> None:
        # validation noise has its own seeded stream (one per rank), so validating never shifts the training noise
        seed = self.hparams.sample_seed + self.global_rank
        self.val_rng = torch.Generator(device=self.device).manual_seed(seed)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, real_labels = batch
        z, fake_labels = self._noise(real.shape[0], self.val_rng)
        d_real = self.discriminator(real, real_labels if self.conditional else None)
        d_fake = self.discriminator(self.generator(z, fake_labels), fake_labels)
        self.log_dict({"val/d_real": self._score(d_real), "val/d_fake": self._score(d_fake)}, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self.quality is None or self.trainer.sanity_checking:
            return
        # each rank scores its share of eval_samples; the metric's states are gathered over ranks in compute()
        world, rank = self.trainer.world_size, self.global_rank
        total = self.hparams.eval_samples
        first, last = total * rank // world, total * (rank + 1) // world
        batch_size = self.quality.batch_size
        generator = self.sampling_generator  # in eval mode, as everything is during validation
        for start in range(first, last, batch_size):
            n = min(batch_size, last - start)
            z, _ = self._noise(n, self.val_rng)
            # conditional: every digit asked for equally often (over all ranks together)
            labels = torch.arange(start, start + n, device=self.device) % self.hparams.num_classes if self.conditional else None
            self.quality.update(generator(z, labels), labels)
        if self._real_metrics is None:  # the first validation of this process
            self.quality.use_reference(*self._validation_images())
        metrics = self.quality.compute()
        self.quality.reset()
        if self._real_metrics is None:
            self._real_metrics = self._score_real_images()
        # the same on every rank already (computed from the gathered states), so no further sync
        self.log_dict({f"val/{k}": float(v) for k, v in metrics.items() if k in LOGGED_QUALITY})
        self.log_dict({f"val/real_{k}": float(v) for k, v in self._real_metrics.items() if k in LOGGED_QUALITY})

    def _validation_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference set of the validation metrics: the data module's validation split, real images the GAN
        never trains on, uint8 (N, 28, 28) on the CPU, with their labels (N,). The test set stays for reporting."""
        val_set = getattr(self.trainer.datamodule, "val_set", None)
        assert val_set is not None, "the validation metrics need a data module with a validation split (val_set)"
        return val_set.images.cpu(), val_set.labels.cpu()

    def _score_real_images(self) -> dict:
        """The real-data row: the same metrics for eval_samples real images the GAN trains on (a seeded draw from
        the training split; true labels asked for) against the same validation split, what a perfect generator
        would score at this sample count. Scored once per run, split over ranks like the fakes."""
        train_set = self.trainer.datamodule.train_set
        n = min(self.hparams.eval_samples, len(train_set.labels))
        first, last = n * self.global_rank // self.trainer.world_size, n * (self.global_rank + 1) // self.trainer.world_size
        images, labels = draw(train_set.images.cpu(), train_set.labels.cpu(), n, seed=self.hparams.sample_seed)
        return self.quality.score_real(images[first:last], labels[first:last] if self.conditional else None)

    def configure_model(self) -> None:
        if self.hparams.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            for network in (self.generator, self.discriminator, self.generator_ema):
                if network is not None:
                    network.compile()

    def configure_optimizers(self) -> list[Optimizer]:
        optimizers = [
            self.optimizer_factories["generator"](self.generator.parameters()),
            self.optimizer_factories["discriminator"](self.discriminator.parameters()),
        ]
        # the configured learning rates, which the decay scales (a resumed optimizer's state holds decayed ones)
        self._base_lrs = [[group["lr"] for group in optimizer.param_groups] for optimizer in optimizers]
        return optimizers

    def _decay_learning_rates(self, batch_idx: int, optimizers: Sequence) -> None:
        """Set each learning rate to its configured value times the linear decay, which falls from 1 to 0 over the
        last `lr_decay_epochs` of `trainer.max_epochs` (checked to be at least as many)."""
        progress = self.current_epoch + batch_idx / self.trainer.num_training_batches  # epochs done
        factor = min(1.0, (self.trainer.max_epochs - progress) / self.hparams.lr_decay_epochs)
        for optimizer, base_lrs in zip(optimizers, self._base_lrs, strict=True):
            for group, base_lr in zip(getattr(optimizer, "optimizer", optimizer).param_groups, base_lrs, strict=True):
                group["lr"] = base_lr * factor

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_finite()  # never save the weights of a diverged step
        # what `gan_lightning.checkpoint` needs to rebuild the networks without unpickling objects
        checkpoint["networks"] = self.networks
        # the training noise streams, so a resumed run draws what this one would have
        checkpoint["rng"] = rng.state(self)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # called before training resumes (the sanity check runs with the RNG isolated)
        rng.restore(self, checkpoint.get("rng") or {})
