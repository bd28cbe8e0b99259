"""Training throughput of the project's Lightning loop against bare PyTorch loops, side by side.

Three loops train the same networks (built from the same config, same initial weights) on the same pre-cut
batches with the same losses:
- the plain loop: what a user writes by hand, PyTorch's defaults (fp32, `torch.optim.Adam` as it comes, the
  default memory format): the speed-up column is the project's loop against it;
- the bare loop: the same loop with the project's settings (precision, fused Adam, channels-last convolutions,
  compilation): the loop ratio column is the project's loop against it, the cost of Lightning's machinery;
- the project's loop: the configured Trainer, logger and callbacks.
On a GPU the loops
run as `trainer=gpu` does: the batches lie on the GPU as uint8 before timing starts (the data module keeps the
whole data set there) and are scaled there, under the precision that `trainer=gpu` sets;
`--compile` compiles the networks in both. Timing skips the first `warmup` batches of each run, and the two
loops alternate over `repeats` rounds so machine noise hits both alike; the table reports medians.
"""

import argparse
import contextlib
import copy
import cProfile
import io
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_lightning.config import compose_config
from gan_lightning.data import ImageDataModule
from gan_lightning.data.scaling import to_model_range
from gan_lightning.models.base import lr_decay_factor, set_learning_rates

# Lightning's `precision` values that the bare loop reproduces: autocast dtype (None: fp32), loss scaling
PRECISIONS = {"32-true": (None, False), "32": (None, False), "bf16-mixed": (torch.bfloat16, False),
              "16-mixed": (torch.float16, True)}


class BatchList:
    """An iterable of batches (Lightning would read a bare list as a list of data loaders)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


class FixedBatches(ImageDataModule):
    """The data module with its training batches replaced by a fixed list (no validation)."""

    def __init__(self, batches, **kwargs):
        super().__init__(**kwargs)
        self.batches = batches

    def setup(self, stage: str | None = None) -> None:  # the batches are given: nothing to load
        pass

    def train_dataloader(self):
        return BatchList(self.batches)

    def val_dataloader(self):
        return []


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on a GPU, so that a clock reading means the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BatchTimer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            synchronize(pl_module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == trainer.num_training_batches - 1:
            synchronize(pl_module.device)
        self.end = time.perf_counter()


class SyncCounter(L.Callback):
    """Counts the host syncs of the timed batches (CUDA's sync debug mode: every operation that makes the host wait
    for the GPU warns), by the line of the project or of Lightning that asked for them. The epoch's end (the
    checkpoint, the sample grid), which reads the device once an epoch, is not counted."""

    def __init__(self, warmup: int):
        self.warmup, self.batches, self.sites = warmup, 0, Counter()
        self._recording: warnings.catch_warnings | None = None

    def _record(self, message, category, filename, lineno, file=None, line=None) -> None:
        if "synchroniz" not in str(message):
            return
        frames = [f for f in traceback.extract_stack()[:-1] if "/warnings.py" not in f.filename]
        ours = [f for f in frames if "lightning" in f.filename and f.filename != __file__]
        frame = (ours or frames)[-1]
        self.sites[f"{'/'.join(Path(frame.filename).parts[-3:])}:{frame.lineno} ({frame.name})"] += 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup and pl_module.device.type == "cuda":
            self._recording = warnings.catch_warnings()
            self._recording.__enter__()
            warnings.simplefilter("always")
            warnings.showwarning = self._record
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._recording is not None:
            self.batches += 1
        if batch_idx == trainer.num_training_batches - 1:
            self.on_train_end(trainer, pl_module)  # what the epoch's end does (checkpoint, grid) is not a step's

    def on_train_end(self, trainer, pl_module):
        if self._recording is not None:
            torch.cuda.set_sync_debug_mode("default")
            self._recording.__exit__(None, None, None)
            self._recording = None


def plain_optimizers(gan) -> list[torch.optim.Optimizer]:
    """The project's optimizers as a user would create them: the same class and hyper-parameters, PyTorch's
    defaults for how they run (no fused kernel)."""
    optimizers = []
    for factory, network in zip(gan.optimizer_factories.values(), (gan.generator, gan.discriminator)):
        settings = {k: v for k, v in factory.keywords.items() if k not in ("fused", "foreach")}
        optimizers.append(factory.func(network.parameters(), *factory.args, **settings))
    return optimizers


def bare_loop(gan, batches, warmup: int, device: torch.device, precision: str = "32-true", compile: bool = False,
              log_every_n_steps: int = 50, plain: bool = False) -> float:
    """The same D and G steps as `GAN.training_step` (the variant's losses), in plain PyTorch, under the same `precision` (Lightning's
    names), with the model's memory format and optimizers; `plain`: with PyTorch's defaults instead (fp32 unless
    `precision` says otherwise, the default memory format, `plain_optimizers`). Returns seconds after warm-up."""
    autocast_dtype, scaling = PRECISIONS[str(precision)]
    gan.to(device)
    if gan.hparams.get("channels_last") and not plain:
        gan.to(memory_format=torch.channels_last)
    generator, discriminator = gan.generator.train(), gan.discriminator.train()
    if compile:
        generator.compile(), discriminator.compile()
    opt_g, opt_d = plain_optimizers(gan) if plain else gan.configure_optimizers()
    # as Lightning's MixedPrecision: one scaler for both optimizers, updated after each step
    scaler = torch.amp.GradScaler(device.type, enabled=scaling)
    d_steps = gan.hparams.d_steps
    # the variant's learning-rate decay over the last share of the batches, as the project's loop over one epoch
    assert not gan.hparams.get("lr_decay_epochs"), "the benchmark trains one epoch: give model.lr_decay_share"
    decay_share = gan.hparams.get("lr_decay_share", 0.0)
    base_lrs = [[group["lr"] for group in optimizer.param_groups] for optimizer in (opt_g, opt_d)]
    clip_val, clip_algorithm = gan.hparams.get("gradient_clip_val"), gan.hparams.get("gradient_clip_algorithm")

    def clip(optimizer):  # as GAN.on_before_optimizer_step does through Lightning's clip_gradients
        if clip_val is None:
            return
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, clip_val)
    for i, (images, labels) in enumerate(batches):
        if i == warmup:
            synchronize(device)
            start = time.perf_counter()
        autocast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
                    else contextlib.nullcontext())
        g_step = (i + 1) % d_steps == 0
        if decay_share:
            set_learning_rates((opt_g, opt_d), base_lrs, lr_decay_factor(i / len(batches), decay_share))
        with autocast:  # Lightning runs the whole training_step, backward included, under autocast
            real, labels = to_model_range(images.to(device)), labels.to(device)
            z, code = gan.draw_latent(real.shape[0])  # the variant's latent: noise, and the digits asked for (cGAN)
            with torch.set_grad_enabled(g_step):
                fake = gan.generate(z, code, generator)

            for p in generator.parameters():
                p.requires_grad_(False)
            d_loss, _, _, _ = gan.discriminator_loss(real, labels, fake.detach(), code)  # the variant's D loss
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(d_loss).backward()
            clip(opt_d)
            scaler.step(opt_d)
            scaler.update()
            for p in generator.parameters():
                p.requires_grad_(True)

            if g_step:
                for p in discriminator.parameters():
                    p.requires_grad_(False)
                g_loss, _ = gan.generator_loss(fake, code)
                opt_g.zero_grad(set_to_none=True)
                scaler.scale(g_loss).backward()
                clip(opt_g)
                scaler.step(opt_g)
                scaler.update()
                for p in discriminator.parameters():
                    p.requires_grad_(True)
                gan._update_ema()  # the generator EMA, when the recipe keeps one
        # the project's loop checks the losses for NaN/inf at every step on a CPU and every log_every_n_steps
        # batches on a GPU (`GAN._check_finite`); the bare loop reads them as often, as a loop printing them would
        if device.type != "cuda" or (i + 1) % log_every_n_steps == 0:
            d_loss.item()
            if g_step:
                g_loss.item()
    synchronize(device)
    return time.perf_counter() - start


def settings(cfg) -> str:
    """What the project's loop does differently from the plain one, in a few words."""
    words = [str(cfg.trainer.precision)]
    if OmegaConf.select(cfg, "optimizer.fused"):
        words.append("fused Adam")
    if OmegaConf.select(cfg, "model.channels_last"):
        words.append("channels-last")
    if OmegaConf.select(cfg, "model.compile"):
        words.append("compiled")
    return ", ".join(words)


def lightning_loop(gan, cfg, batches, warmup: int, extra_callbacks=()) -> float:
    """The project's loop: the configured Trainer, logger and callbacks, on the given batches."""
    timer = BatchTimer(warmup)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()] + [timer, *extra_callbacks]
    loggers = [instantiate(c) for c in cfg.logger.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, enable_progress_bar=True)
    trainer.fit(gan, datamodule=FixedBatches(batches, batch_size=cfg.data.batch_size))
    return timer.end - timer.start


def benchmark(models, batch_size: int | None, num_batches: int, warmup: int, repeats: int, device: str = "cpu",
              compile: bool = False, count_syncs: bool = False, profile: bool = False) -> list[dict]:
    """images/s of both loops for each model on `device` ("cpu": `trainer=cpu`; "cuda": `trainer=gpu`), at
    `batch_size`, or None: each model's own (its config's data.batch_size, which its budget may set);
    `count_syncs` (CUDA): one more run of the project's loop counts its host syncs per batch."""
    device = torch.device(device)
    rows = []
    for model in models:
        size = batch_size or int(compose_config([f"model={model}"]).data.batch_size)
        dm = ImageDataModule(batch_size=size)
        dm.setup()
        loader = iter(dm.train_dataloader())
        # on a GPU the data already lies there, as the data module keeps it under trainer=gpu
        batches = [tuple(t.to(device) for t in next(loader)) for _ in range(num_batches)]
        timed_images = (num_batches - warmup) * size
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose_config([
                f"model={model}", f"data.batch_size={size}", f"paths.output_dir={tmp}",
                "trainer=gpu" if device.type == "cuda" else "trainer=cpu",
                "trainer.max_epochs=1", f"trainer.limit_train_batches={num_batches}", "trainer.limit_val_batches=0",
                "~callbacks.best_checkpoint", "trainer.enable_model_summary=false",
                # every loop runs with the threads the benchmark started with (the project adapts them to the load)
                "~callbacks.cpu_threads",
                *(["model.compile=true"] if compile else []),
            ])
            precision = str(cfg.trainer.precision)
            if precision not in PRECISIONS:
                raise SystemExit(f"error: trainer.precision={precision}: the bare loop knows {', '.join(PRECISIONS)}")
            if device.type == "cuda":  # what the Trainer sets from trainer.benchmark, for the bare loop too
                torch.backends.cudnn.benchmark = bool(cfg.trainer.benchmark)
            torch.manual_seed(0)
            initial = instantiate(cfg.model, image_shape=dm.image_shape, num_classes=dm.num_classes)
            plain, bare, project = [], [], []
            log_every = int(cfg.trainer.log_every_n_steps)
            for _ in range(repeats):
                plain.append(bare_loop(copy.deepcopy(initial), batches, warmup, device, "32-true", False, log_every,
                                       plain=True))
                bare.append(bare_loop(copy.deepcopy(initial), batches, warmup, device, precision, compile, log_every))
                project.append(lightning_loop(copy.deepcopy(initial), cfg, batches, warmup))
            syncs = None
            if count_syncs and device.type == "cuda":
                syncs = SyncCounter(warmup)
                lightning_loop(copy.deepcopy(initial), cfg, batches, warmup, [syncs])
            profile_text = None
            if profile:
                profiler = cProfile.Profile()
                profiler.enable()
                lightning_loop(copy.deepcopy(initial), cfg, batches, warmup)
                profiler.disable()
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
                profile_text = text.getvalue()
        plain_rate, bare_rate, project_rate = (timed_images / statistics.median(t) for t in (plain, bare, project))
        rows.append({"model": model, "batch": size, "plain": plain_rate, "bare": bare_rate, "lightning": project_rate,
                     "ratio": project_rate / bare_rate, "speedup": project_rate / plain_rate,
                     "precision": precision, "syncs": syncs, "settings": settings(cfg),
                     "profile": profile_text})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vanilla", "dcgan", "cgan"])
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: each model's own (its config's data.batch_size, as it trains)")
    parser.add_argument("--batches", type=int, default=40, help="batches per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--device", nargs="+", choices=["cpu", "cuda"], default=default_devices,
                        help="where to train: cpu as trainer=cpu, cuda as trainer=gpu (default: %(default)s)")
    parser.add_argument("--compile", action="store_true", help="compile the networks (model.compile=true)")
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: as started)")
    parser.add_argument("--busy", type=int, default=0,
                        help="keep this many other processes spinning on the CPU meanwhile (a busy machine)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one more run of the project's loop per model (cProfile, the top functions "
                             "by own time): where the host spends a step")
    parser.add_argument("--syncs", action="store_true",
                        help="on a GPU, also count the project loop's host syncs per batch, and where they happen")
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be positive, got {args.batch_size}")
    if not 0 <= args.warmup < args.batches:
        parser.error("--warmup must be smaller than --batches")
    if "cuda" in args.device and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU here")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    if not 0 <= args.busy <= 64:
        parser.error(f"--busy must be from 0 to 64, got {args.busy}")
    spin = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit())\nwhile True: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(args.busy)]
    try:
        _report(args)
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.wait()


def _report(args) -> None:
    for device in args.device:
        rows = benchmark(args.models, args.batch_size, args.batches, args.warmup, args.repeats, device, args.compile,
                         args.syncs, args.profile)
        name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        if args.busy:
            name += f", {args.busy} other process{'es' if args.busy > 1 else ''} spinning"
        print(f"\nTraining throughput, images/s ({name}; "
              f"median of {args.repeats} runs of {args.batches - args.warmup} timed batches)\n")
        print("| model | batch | project settings | plain PyTorch loop | bare loop, project settings | gan-lightning loop "
              "| loop ratio | speed-up over plain |")
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        for row in rows:
            print(f"| {row['model']} | {row['batch']} | {row['settings']} | {row['plain']:.0f} | {row['bare']:.0f} | "
                  f"{row['lightning']:.0f} | {row['ratio']:.2f} | {row['speedup']:.2f}x |")
        for row in rows:
            if row["syncs"] is not None:
                counter = row["syncs"]
                total = sum(counter.sites.values())
                print(f"\nhost syncs, {row['model']}: {total} in {counter.batches} timed batches "
                      f"({total / max(counter.batches, 1):.2f} per batch)")
                for site, n in counter.sites.most_common():
                    print(f"  {n:5d}  {site}")
            if row["profile"] is not None:
                print(f"\nprofile of the project's loop, {row['model']} (whole run, set-up included):\n{row['profile']}")
