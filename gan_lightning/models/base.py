"""What every GAN variant shares: a discriminator step every batch and a generator step every `d_steps` batches.

`GAN` is the alternation under Lightning's manual optimization, with the recipe around it: the loss (BCE, hinge,
WGAN-GP), gradient clipping, the learning-rate decay, an exponential moving average of G's weights that sampling and
export use, the differentiable augmentation of D's inputs, the NaN guard and the logs (losses, D(x), D(G(z))).
A variant subclasses it and overrides the hooks under "What a variant changes": what G is fed, what D is told,
extra loss terms, what the sample grid shows and which labels the quality metrics may read. The quality metrics
themselves are a callback (`gan_lightning.callbacks.ValidationQuality`), which asks the module for samples.
"""

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer
from torch import nn
from torch.optim import Optimizer

from gan_lightning import options
from gan_lightning.errors import TrainingDiverged
from gan_lightning.models import rng
from gan_lightning.models.divergence import DivergenceWatch
from gan_lightning.models.ema import update_ema
from gan_lightning.models.losses import GANObjective
from gan_lightning.networks.spec import network_spec

NetworkFactory = Callable[..., nn.Module]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]


def lr_decay_factor(budget_done: float, share: float) -> float:
    """The learning rates' factor when `budget_done` (0 to 1) of the training is done: 1, then linearly down to 0
    over the last `share` of it (0: always 1)."""
    return min(1.0, (1.0 - budget_done) / share) if share else 1.0


def set_learning_rates(optimizers: Sequence, base_lrs: Sequence[Sequence[float]], factor: float) -> None:
    """Each parameter group's learning rate at its base rate times `factor` (optimizers, or Lightning's wrappers)."""
    for optimizer, rates in zip(optimizers, base_lrs, strict=True):
        for group, base_lr in zip(getattr(optimizer, "optimizer", optimizer).param_groups, rates, strict=True):
            group["lr"] = base_lr * factor


class GAN(L.LightningModule):
    """An unconditional GAN: G draws images from noise z ~ N(0, I), D tells them from real ones.

    `generator` and `discriminator` are network classes (or partials, as Hydra builds them with `_partial_: true`);
    the sizes that come from the data (`image_shape`, `num_classes`) are filled in here, with the name of the
    `dataset` and its `class_names`, which checkpoints record so that the tools judge and name the samples by them. `optimizer` maps
    "generator" and "discriminator" to optimizer factories. The recipe: `loss` ("bce", "hinge", "wgan-gp" with
    `gp_weight`); `d_steps` D steps per G step; `gradient_clip_val` clips each network's gradients before its step;
    `ema_decay` > 0 keeps `generator_ema`, which samples, is evaluated and exported; `augment` names DiffAugment's
    transformations for every training input of D, real and fake, in both steps; `lr_decay_share` > 0 decays both
    learning rates linearly to 0 over that last share of the training budget (`trainer.max_epochs`, or
    `trainer.max_time` where that ends training first), `lr_decay_epochs` > 0 over that many last epochs of
    `trainer.max_epochs` (the same share of the time budget); `compile` and `channels_last` make the networks faster.
    """

    name: ClassVar[str]  # the registered name (`options.VARIANTS`) that checkpoints record

    def __init__(self, generator: NetworkFactory, discriminator: NetworkFactory,
                 optimizer: Mapping[str, OptimizerFactory], image_shape: Sequence[int] = (1, 28, 28),
                 num_classes: int = 10, noise_dim: int = 100, grid_cols: int = 8, sample_seed: int = 0,
                 loss: str = "bce", gp_weight: float = 10.0, d_steps: int = 1, ema_decay: float = 0.0,
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 augment: str | Sequence[str] | None = None, compile: bool = False, channels_last: bool = False,
                 lr_decay_epochs: int = 0, lr_decay_share: float = 0.0, dataset: str = "mnist", class_names: Sequence[str] | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "discriminator", "optimizer"], logger=False)
        self.automatic_optimization = False
        # the values come checked from the config (`gan_lightning.config.validate`)
        assert 0.0 <= ema_decay < 1.0 and d_steps >= 1, (ema_decay, d_steps)
        assert lr_decay_epochs >= 0 and 0.0 <= lr_decay_share <= 1.0 and not (lr_decay_epochs and lr_decay_share), (
            lr_decay_epochs, lr_decay_share)
        assert gradient_clip_val is None or gradient_clip_val > 0, gradient_clip_val
        assert gradient_clip_algorithm in options.CLIP_ALGORITHMS, gradient_clip_algorithm
        self.objective = GANObjective(loss, gp_weight, options.parse_policy(augment))
        self.optimizer_factories = {name: optimizer[name] for name in ("generator", "discriminator")}
        g_inputs, d_inputs = self.network_inputs()
        self.networks = {"generator": network_spec(generator, **g_inputs),
                         "discriminator": network_spec(discriminator, **d_inputs)}
        self.generator, self.discriminator = generator(**g_inputs), discriminator(**d_inputs)
        assert not (loss == "wgan-gp" and any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                              for m in self.discriminator.modules())), "WGAN-GP with BatchNorm in D"
        # the moving average of G's weights: never trained, only blended towards G after each G step
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval() if ema_decay else None
        if ema_decay:
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        # fixed noise, so that the grids of successive epochs are comparable
        fixed_z, fixed_code = self.fixed_latent(torch.Generator().manual_seed(sample_seed))
        self.register_buffer("fixed_z", fixed_z)  # (rows * cols, noise_dim)
        if fixed_code is not None:
            self.register_buffer("fixed_code", fixed_code)
        self._divergence = DivergenceWatch()  # NaN/inf losses, checked without a host sync per step on a GPU
        self._epoch_totals: dict[str, tuple[torch.Tensor, int]] = {}  # the losses' sums over the epoch, on the device

    # ---- What a variant changes -------------------------------------------------------------------------------

    def network_inputs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The sizes G and D are built with: no label input (num_classes=0)."""
        shape = self.hparams.image_shape
        return {"noise_dim": self.hparams.noise_dim, "image_shape": shape, "num_classes": 0}, \
            {"image_shape": shape, "num_classes": 0}

    def draw_latent(self, n: int, rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What G is fed for n images: z (n, noise_dim), and the variant's code (None: nothing but noise)."""
        return torch.randn(n, self.hparams.noise_dim, device=self.device, generator=rng), None

    def generate(self, z: torch.Tensor, code: torch.Tensor | None, generator: nn.Module | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] from `generator` (G by default) given a `draw_latent`."""
        return (generator or self.generator)(z, code)

    def condition(self, labels_or_code: torch.Tensor | None) -> torch.Tensor | None:
        """What D is told about an image besides its pixels, from a real image's label or a fake's code: nothing."""
        return None

    def discriminator_loss(self, real: torch.Tensor, labels: torch.Tensor, fake: torch.Tensor,
                           code: torch.Tensor | None) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
        """D's loss, what to log, and D's logits on the real and the fake images."""
        d_loss, logs, d_real, d_fake, _ = self.objective.discriminator_step(
            self.discriminator, real, self.condition(labels), fake, self.condition(code))
        return d_loss, logs, d_real, d_fake

    def generator_loss(self, fake: torch.Tensor, code: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        """G's loss on its images, and what to log."""
        g_loss, logs, _ = self.objective.generator_step(self.discriminator, fake, self.condition(code))
        return g_loss, logs

    def fixed_latent(self, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The sample grid's latent: grid_cols x grid_cols independent noises."""
        cols = self.hparams.grid_cols
        return torch.randn(cols * cols, self.hparams.noise_dim, generator=rng), None

    def evaluation_samples(self, first: int, n: int, rng: torch.Generator
                           ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Samples `first` to `first + n` of the quality metrics' draw, from the sampling generator; the labels they
        were asked to show (None: no label accuracy); and the categorical codes they were drawn with, which the
        metrics match to classes after the fact (None: no code accuracy)."""
        z, code = self.draw_latent(n, rng)
        return self.sample(z, code), None, None

    # ---- Shared by every variant ------------------------------------------------------------------------------

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that samples, is evaluated and is exported: the EMA one when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample(self, z: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        """Images from the sampling generator in eval mode (BatchNorm uses its running statistics)."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        try:
            return self.generate(z, code, generator)
        finally:
            generator.train(was_training)

    def fixed_samples(self) -> tuple[torch.Tensor, int]:
        """The fixed-noise samples and the number of columns to lay them out in."""
        return self.sample(self.fixed_z, getattr(self, "fixed_code", None)), self.hparams.grid_cols

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, labels = batch  # (B, C, H, W) in [-1, 1], (B,)
        opt_g, opt_d = self.optimizers()
        if self.hparams.lr_decay_epochs or self.hparams.lr_decay_share:
            self._decay_learning_rates(batch_idx, (opt_g, opt_d))
        g_step = (batch_idx + 1) % self.hparams.d_steps == 0
        z, code = self.draw_latent(real.shape[0])
        with torch.set_grad_enabled(g_step):  # the graph through G is only needed for a G step
            fake = self.generate(z, code)  # (B, C, H, W)

        # D step: real vs detached fake
        self.toggle_optimizer(opt_d)
        d_loss, logs, d_real, d_fake = self.discriminator_loss(real, labels, fake.detach(), code)
        self._step(opt_d, d_loss, "d_loss", batch_idx)
        self.untoggle_optimizer(opt_d)

        if g_step:  # G step against the updated D
            self.toggle_optimizer(opt_g)
            g_loss, g_logs = self.generator_loss(fake, code)
            logs |= g_logs
            self._step(opt_g, g_loss, "g_loss", batch_idx)
            self.untoggle_optimizer(opt_g)
            self._update_ema()

        # D(x), D(G(z)): probabilities for BCE, raw critic scores for hinge and WGAN-GP
        scores = {"train/d_real": self._score(d_real.detach()), "train/d_fake": self._score(d_fake.detach())}
        for name, value in (logs | scores).items():  # for the epoch means (an addition on the device, no read)
            total, count = self._epoch_totals.get(name, (0.0, 0))
            # in fp32: a bf16 sum (the hinge loss under autocast) stops growing after a few hundred steps
            self._epoch_totals[name] = (total + value.float(), count + 1)
        if self._logs_this_step():
            self._check_finite()  # on a GPU: here, where the logs read the device anyway
            self.log_dict(logs, prog_bar=True)
            self.log_dict(scores)

    def _step(self, optimizer, loss: torch.Tensor, name: str, batch_idx: int) -> None:
        """Backward and step, once `loss` is known finite (on a CPU, where reading it costs nothing; on a GPU the
        check runs at log steps, epoch ends and checkpoints)."""
        self._divergence.watch(loss, name, self.current_epoch, batch_idx, self.global_step)
        if loss.device.type == "cpu":
            self._check_finite()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()  # clipped in on_before_optimizer_step

    def on_before_optimizer_step(self, optimizer) -> None:
        """Clip the gradients of the network about to step (Lightning calls this inside `optimizer.step()`, after
        unscaling 16-mixed gradients): with a loss scaler by Lightning's `clip_gradients`, else as they are, which
        also works for a fused Adam (`clip_gradients` refuses one under any mixed precision)."""
        clip_val, algorithm = self.hparams.gradient_clip_val, self.hparams.gradient_clip_algorithm
        if clip_val is None:
            return
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip_val, gradient_clip_algorithm=algorithm)
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        clip = nn.utils.clip_grad_value_ if algorithm == "value" else nn.utils.clip_grad_norm_
        clip(params, clip_val)

    def _logs_this_step(self) -> bool:
        """Whether Lightning writes this batch's training logs (every `trainer.log_every_n_steps` batches, and when
        training stops); only then are they logged, since each `self.log` costs about a millisecond of CPU. The
        batches done b come from `global_step`, which counts D and G steps: g = b + b // d_steps."""
        every = self.trainer.log_every_n_steps
        if not every:
            return False
        d_steps = self.hparams.d_steps
        batches_done = (self.global_step * d_steps + d_steps) // (d_steps + 1)
        return batches_done % every == 0 or self.trainer.should_stop

    def _score(self, logits: torch.Tensor) -> torch.Tensor:
        """D's mean output, in fp32 like the losses' epoch sums."""
        logits = logits.float()
        return torch.sigmoid(logits).mean() if self.hparams.loss == "bce" else logits.mean()

    def _update_ema(self) -> None:
        if self.generator_ema is not None:
            update_ema(self.generator_ema, self.generator, self.ema_updates, self.hparams.ema_decay)

    def _check_finite(self) -> None:
        """Stop training at the first NaN or inf loss watched since the last check, naming its step."""
        divergence = self._divergence.check(
            lambda finite: self.trainer.strategy.reduce_boolean_decision(finite, all=True))
        if divergence is not None:
            where = None if divergence.batch < 0 else (divergence.name, divergence.epoch, divergence.global_step,
                                                         divergence.value)  # unknown: on another process
            raise TrainingDiverged(str(divergence), where)

    def on_train_epoch_start(self) -> None:
        # a run validated every n-th epoch (a budget's trainer.check_val_every_n_epoch) still validates its last
        # epoch, whatever n: its final weights are scored, and checkpointed as the best when they are
        trainer = self.trainer
        if trainer.check_val_every_n_epoch is not None and trainer.current_epoch == (trainer.max_epochs or 0) - 1:
            trainer.check_val_every_n_epoch = 1

    def on_train_epoch_end(self) -> None:
        self._check_finite()
        # every run shows its losses and D(x), D(G(z)) as epoch means (`train/d_loss_epoch`, ...), also one shorter
        # than trainer.log_every_n_steps batches; the training watchman (`callbacks.health`) reads them
        # the same means on every rank (one reduction per epoch), so that the watchman's decisions agree under DDP
        self.log_dict({f"{name}_epoch": total / count for name, (total, count) in self._epoch_totals.items()},
                      sync_dist=True)
        self._epoch_totals = {}

    def on_validation_epoch_start(self) -> None:
        # validation noise has its own seeded stream (one per rank), so validating never shifts the training noise
        self.val_rng = torch.Generator(device=self.device).manual_seed(self.hparams.sample_seed + self.global_rank)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, labels = batch
        z, code = self.draw_latent(real.shape[0], self.val_rng)
        d_real = self.discriminator(real, self.condition(labels))
        d_fake = self.discriminator(self.generate(z, code), self.condition(code))
        self.log_dict({"val/d_real": self._score(d_real), "val/d_fake": self._score(d_fake)}, sync_dist=True)

    def configure_model(self) -> None:
        if self.hparams.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            for network in (self.generator, self.discriminator, self.generator_ema):
                if network is not None:
                    network.compile()

    def configure_optimizers(self) -> list[Optimizer]:
        optimizers = [self.optimizer_factories["generator"](self.generator.parameters()),
                      self.optimizer_factories["discriminator"](self.discriminator.parameters())]
        # the configured learning rates, which the decay scales (a resumed optimizer's state holds decayed ones)
        self._base_lrs = [[group["lr"] for group in optimizer.param_groups] for optimizer in optimizers]
        return optimizers

    def budget_done(self, batch_idx: int) -> float:
        """The share of the training budget done before this batch, 0 to 1: the epochs done over
        `trainer.max_epochs`, or, where a time budget (`trainer.max_time`) is nearer its end, the training time
        elapsed over it (Lightning's `Timer`, which a resumed run restores)."""
        epochs_done = self.current_epoch + batch_idx / self.trainer.num_training_batches
        done = epochs_done / self.trainer.max_epochs if self.trainer.max_epochs > 0 else 0.0
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        remaining = timer.time_remaining() if timer is not None else None
        if remaining is not None:
            elapsed = timer.time_elapsed()
            done = max(done, elapsed / max(elapsed + remaining, 1e-9))
        return min(done, 1.0)

    def _decay_learning_rates(self, batch_idx: int, optimizers: Sequence) -> None:
        """Each learning rate at its configured value times the linear decay, from 1 to 0 over the last
        `lr_decay_share` of the budget, or the last `lr_decay_epochs` of `trainer.max_epochs` (checked to be at least
        as many): over that share of the budget, so that under a time budget the decay ends with
        `trainer.max_time`."""
        if self.hparams.lr_decay_epochs:
            share = self.hparams.lr_decay_epochs / self.trainer.max_epochs
        else:
            share = self.hparams.lr_decay_share
        set_learning_rates(optimizers, self._base_lrs, lr_decay_factor(self.budget_done(batch_idx), share))

    def on_fit_start(self) -> None:
        rng.split_per_rank(self)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_finite()  # never save the weights of a diverged step
        # what `gan_lightning.checkpoint` needs to rebuild the generator without unpickling objects, by name
        checkpoint["variant"], checkpoint["networks"] = self.name, self.networks
        checkpoint["dataset"] = self.hparams.dataset
        if self.hparams.class_names is not None:
            checkpoint["class_names"] = list(self.hparams.class_names)
        checkpoint["rng"] = rng.state(self)  # the training noise streams, so a resumed run draws the same

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng.restore(self, checkpoint.get("rng") or {})  # before training resumes
