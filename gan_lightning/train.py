"""The training entry point: `train(cfg)` builds everything from the config and fits; `main()` is the CLI."""

import logging
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, Timer
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.func import functional_call

from gan_lightning.callbacks import LAST, LOGGED_QUALITY, CheckpointOnInterrupt, LastCheckpoint, TrainingHealth
from gan_lightning.checkpoint import check_fits, load_checkpoint
from gan_lightning.config import (
    CONFIG_DIR,
    check_overrides,
    check_run_folders,
    discard_refused_run,
    given_keys,
    override,
)
from gan_lightning.errors import TrainingDiverged, TrainingInterrupted, TrainingStopped, UserError, fail
from gan_lightning.hardware import explain_precision
from gan_lightning.networks.spec import MAX_PARAMETERS
from gan_lightning.sweeps import run_job

log = logging.getLogger(__name__)
# The quality metrics' classifier is frozen in eval mode on purpose; Lightning would warn about it every run.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
# Third-party noise a user cannot act on: Lightning's internal use of a deprecated torch API, its model summary's
# note that it counts bf16 parameters as 32-bit, and its advertisement for a cloud logger.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
warnings.filterwarnings("ignore", message=r"Precision bf16-mixed is not supported by the model summary")


class _NoAdvertisement(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip:")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoAdvertisement())


def build(cfg: DictConfig, key: str, objects: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """`instantiate` of the config node at `key` (e.g. `callbacks.last_checkpoint`), with a failure reported as a
    `UserError` naming the key. `objects` are passed as they are (`kwargs` become config values: no record of a
    dataset survives that)."""
    node = OmegaConf.select(cfg, key)
    try:
        if objects:
            return instantiate(node, _partial_=True, **kwargs)(**objects)
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, UserError | AssertionError):  # an assertion is a bug: it keeps its traceback
            raise cause from None
        if isinstance(cause, MisconfigurationException):  # Lightning's own checks of the trainer's arguments
            raise UserError(f"{key}: {str(cause).strip().splitlines()[0]}") from None
        reason = str(cause or e).strip().splitlines()[0]
        raise UserError(f"cannot build {key} ({node.get('_target_', '?')}): {reason}") from None


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """What a run logs as its hyper-parameters: the resolved config, less paths and Hydra's own settings."""
    params = OmegaConf.to_container(cfg, resolve=True)
    for key in ("paths", "hydra", "logger", "callbacks"):
        params.pop(key, None)
    return params


# what TensorBoard's HPARAMS tab shows beside each run's hyper-parameters: the quality metrics logged at every
# validation (label accuracy for the conditional GAN only)
HPARAM_METRICS = tuple(f"val/{name}" for name in LOGGED_QUALITY)


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params -> {"model/noise_dim": 100, ...} with the scalar types TensorBoard's hparams accept."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{name}/"))
        else:
            flat[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


def log_hyperparameters(logger: Logger, params: dict[str, Any]) -> None:
    """Every logger records the params (TensorBoard: `hparams.yaml`); TensorBoard also gets the hparams summary
    that fills its HPARAMS tab. Lightning writes that summary only when given metric values, which it would log
    as scalars at step 0; here only the metric names are declared, and the values are the ones validation logs."""
    logger.log_hyperparams(params)
    if isinstance(logger, TensorBoardLogger):
        _add_hparams_summary(logger, _flat(params))


@rank_zero_only
def _add_hparams_summary(logger: TensorBoardLogger, params: dict[str, Any]) -> None:
    from torch.utils.tensorboard.summary import hparams

    writer = logger.experiment._get_file_writer()  # as Lightning's own log_hyperparams does
    for summary in hparams(params, dict.fromkeys(HPARAM_METRICS, 0.0)):
        writer.add_summary(summary)


def resolve_ckpt_path(ckpt_path: str | None, runs_dir: str | Path) -> Path | None:
    """`ckpt_path` as a checkpoint file: `last` is the most recently written `<runs_dir>/*/checkpoints/last.ckpt`."""
    if ckpt_path is None:
        return None
    if str(ckpt_path) == "last":
        candidates = list(Path(runs_dir).glob(f"*/checkpoints/{LAST}"))
        if not candidates:
            raise UserError(f"ckpt_path=last: no {runs_dir}/*/checkpoints/{LAST} to resume from; give a checkpoint path")
        return max(candidates, key=lambda p: p.stat().st_mtime_ns)
    path = Path(ckpt_path)
    if not path.is_file():
        raise UserError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    return path


def _runs_dir(cfg: DictConfig) -> str:
    return cfg.get("runs_dir") or f"outputs/{cfg.task_name}"


def check_batch_size(model: L.LightningModule, batch_size: int) -> None:
    """One training-mode pass of G and then D over a batch of `batch_size` on the meta device (shapes only: no
    compute and no memory at any size; the model's own tensors are left alone), so that what torch refuses at that
    size, such as BatchNorm given one value per channel, stops the run before it trains."""
    def on_meta(network: nn.Module) -> dict[str, torch.Tensor]:
        tensors = {**dict(network.named_parameters()), **dict(network.named_buffers())}
        return {name: torch.empty_like(t, device="meta") for name, t in tensors.items()}

    assert model.generator.training and model.discriminator.training, "a model fresh from its config"
    with torch.random.fork_rng(devices=[]):  # a latent of the variant's shapes, without moving the training noise
        z, code = model.draw_latent(1)
    z = z.to("meta").expand(batch_size, -1)  # (B, noise_dim)
    code = None if code is None else code.to("meta").expand(batch_size, *code.shape[1:])
    try:
        generator = on_meta(model.generator)  # fed as the variant feeds G (InfoGAN: noise and codes as one input)
        fake = model.generate(z, code, lambda *inputs: functional_call(model.generator, generator, inputs))
        functional_call(model.discriminator, on_meta(model.discriminator), (fake, model.condition(code)))
    except ValueError as e:
        reason = str(e).strip().splitlines()[0]
        raise UserError(f"data.batch_size={batch_size}: the networks cannot train on batches of this size "
                        f"({reason}); use a larger data.batch_size") from None


def train(cfg: DictConfig) -> dict[str, float]:
    """Train the GAN that `cfg` describes (its values checked by `config.validate`): each object is built once, the
    checks that need it made, then the trainer fits. Returns the final logged metrics."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # said in the run's log, not on stderr
        log.info("Seed set to %d", cfg.seed)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), _runs_dir(cfg))
    datamodule = build(cfg, "data")
    # the callbacks before the model: the quality metrics' classifier is made (its layers initialised) first, so a
    # seed gives the same initial weights as it did when the model held the metrics. They judge the samples with the
    # data's own feature network; data with none yet (an image folder) trains without them, and without the
    # checkpoint ranked by their FID
    dataset, chosen = datamodule.dataset, {name: c for name, c in (cfg.get("callbacks") or {}).items() if c is not None}
    if dataset.classifier_path is None and "quality" in chosen:
        log.info("quality metrics off: %s has no feature network yet; train one with python scripts/train_classifier.py"
                 " data=%s data.data_dir=%s and give it as data.classifier=<the .pt it writes>", dataset.title,
                 dataset.name, cfg.data.data_dir)
        chosen = {name: c for name, c in chosen.items() if name not in ("quality", "best_checkpoint")}
    callbacks = [build(cfg, f"callbacks.{name}", {"dataset": dataset} if name == "quality" else None)
                 for name in chosen]
    if not OmegaConf.select(cfg, "trainer.enable_progress_bar", default=True):  # Lightning refuses a bar it may not show
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    # last.ckpt after the other checkpoint callbacks, at each epoch end: it holds their state of that epoch
    callbacks.sort(key=lambda c: isinstance(c, LastCheckpoint))
    loggers = [build(cfg, f"logger.{name}") for name, c in (cfg.get("logger") or {}).items() if c is not None]
    # the sizes the networks need come from the data; counted first on the meta device (no memory, no random draw)
    sizes = {"image_shape": datamodule.image_shape, "num_classes": datamodule.num_classes,
             "dataset": datamodule.dataset.name, "class_names": list(datamodule.dataset.class_names)}
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        parameters = sum(p.numel() for p in build(cfg, "model", **sizes).parameters())
    if parameters > MAX_PARAMETERS:
        raise UserError(f"the model would have {parameters:,} parameters, more than {MAX_PARAMETERS:,}: check its "
                        "sizes (model.noise_dim, the networks' widths and layers)")
    model = build(cfg, "model", **sizes)
    if ckpt_path is not None:
        check_fits(model, load_checkpoint(ckpt_path), ckpt_path)  # a truncated, unsafe or foreign file is refused
        log.info("Resuming from %s", ckpt_path)
    check_batch_size(model, cfg.data.batch_size)
    trainer = build(cfg, "trainer", callbacks=callbacks, logger=loggers or False)

    # from here on the run writes into its folder
    for logger in loggers:
        log_hyperparameters(logger, hyperparameters(cfg))
    log.info("Run directory: %s", trainer.default_root_dir)
    if isinstance(trainer.accelerator, CPUAccelerator):
        explain_precision(cfg.trainer)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except MisconfigurationException as e:  # Lightning's own checks of the trainer with this model, at fit
        raise UserError(f"trainer: {str(e).splitlines()[0]}") from None
    except TrainingDiverged as e:
        last = next((c.saved for c in callbacks if isinstance(c, LastCheckpoint) and c.saved), None)
        resume = f"last good checkpoint: {last}" if last else "no checkpoint was saved yet"
        raise TrainingDiverged(f"{e}; {resume}; try a lower optimizer.lr", e.where) from None
    except SystemExit:  # Lightning ends a run stopped by SIGTERM or Ctrl-C this way
        stopped = next((c for c in callbacks if isinstance(c, CheckpointOnInterrupt) and c.signal_name), None)
        if stopped is None:
            raise
        raise TrainingInterrupted(stopped.signal_name, stopped.saved) from None
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    log.info(ending(trainer, callbacks, metrics))
    watchman = next((c for c in callbacks if isinstance(c, TrainingHealth) and c.stopped_by), None)
    if watchman is not None:  # callbacks.health.action=stop
        alarm = watchman.stopped_by
        last = next((c.saved for c in callbacks if isinstance(c, LastCheckpoint) and c.saved), None)
        resume = "no checkpoint was saved" if last is None else (
            f"checkpoints kept in {last.parent}; to train on regardless: "
            + resume_command(_overrides(), last, ["callbacks.health.action=warn"]))
        message = f"stopped by the training watchman: {alarm.name} at epoch {alarm.epoch}; {resume}"
        log.warning(message)
        raise TrainingStopped(alarm.name, message, metrics)
    return metrics


def ending(trainer: L.Trainer, callbacks: list[L.Callback], metrics: dict[str, float]) -> str:
    """The one line a run ends with: the final and best validation FID, the checkpoint to use, the run folder, and
    the command that trains on."""
    best = next((c for c in callbacks if isinstance(c, ModelCheckpoint) and c.monitor == "val/fid"), None)
    last = next((c.saved for c in callbacks if isinstance(c, LastCheckpoint) and c.saved), None)
    parts = [f"Done after {trainer.current_epoch} epoch(s)"]
    if "val/fid" in metrics:
        parts.append(f"val/fid {metrics['val/fid']:.4g}")
    if best is not None and best.best_model_path:
        parts.append(f"best {float(best.best_model_score):.4g}: use {best.best_model_path}")
    elif last is not None:
        parts.append(f"use {last}")
    parts.append(f"run folder {trainer.default_root_dir}")
    if last is not None:
        longer = [f"trainer.max_epochs={2 * trainer.max_epochs}"] if trainer.max_epochs > 0 else []
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        if timer is not None and timer.time_remaining() is not None:  # a time budget, which a resumed run restores
            budget = round(timer.time_elapsed() + timer.time_remaining())
            longer.append(f"trainer.max_time={duration(2 * budget)}")
        parts.append("train on: " + resume_command(_overrides(), last, longer))
    return "; ".join(parts)


def duration(seconds: int) -> str:
    """`trainer.max_time`'s DD:HH:MM:SS for a number of seconds."""
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{seconds:02d}"


def _overrides() -> list[str]:
    """The run's command-line overrides (none when `train` is called outside Hydra, e.g. from a test)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        metrics = run_job(cfg, train)  # train(cfg), its outcome written to metrics.json for sweep summaries
    except UserError as e:
        if not isinstance(e, TrainingDiverged) and HydraConfig.get().mode == RunMode.RUN:
            discard_refused_run(cfg.paths.output_dir)  # refused before it trained: as if it never started
        fail(e)
    except TrainingInterrupted as e:
        print(f"{e}: {_resume_hint(e.checkpoint)}", file=sys.stderr)
        sys.exit(e.exit_code)
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


def _resume_hint(checkpoint: Path | None) -> str:
    if checkpoint is None:
        return "no checkpoint saved (stopped mid-batch); resume from the last one with ckpt_path=last"
    command = resume_command(HydraConfig.get().overrides.task, checkpoint)
    return f"checkpoint saved to {checkpoint}; resume with: {command}"


def resume_command(overrides: list[str], checkpoint: Path, extra: list[str] = ()) -> str:
    """The shell command that resumes a run of these overrides from `checkpoint` (with the `extra` overrides, which
    replace those of the same keys): the path is quoted for Hydra's override parser where it needs that
    (`ckpt_path="/my runs (2)/last.ckpt"`), then every argument for the shell."""
    replaced = {"ckpt_path", *(o.split("=", 1)[0] for o in extra)}
    kept = [o for o in overrides if o.split("=", 1)[0] not in replaced]
    arguments = [*kept, *extra, override("ckpt_path", str(checkpoint))]
    return " ".join(["python scripts/train.py", *map(shlex.quote, arguments)])


def check_before_run(overrides: list[str], multirun: bool = False) -> list[DictConfig]:
    """What is checked before Hydra makes a run folder, for every job of a sweep: every value (`config.validate`),
    that the run's folders can be written, that `ckpt_path` names a checkpoint, and that there is a GPU where one
    is asked for. Returns the configs checked (with their `hydra` node). What needs the objects built (the
    checkpoint's fit, the batch size, Lightning's checks of the trainer) is checked by `train`, before it trains."""
    run_dir_given = ("hydra.sweep.dir" if multirun else "hydra.run.dir") in given_keys(overrides)
    configs = check_overrides(overrides, with_hydra=True, multirun=multirun)
    for cfg in configs:
        check_run_folders(cfg, multirun, run_dir_given)
        resolve_ckpt_path(cfg.get("ckpt_path"), _runs_dir(cfg))
        accelerator = OmegaConf.select(cfg, "trainer.accelerator")
        if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            raise UserError(f"trainer.accelerator={accelerator}: there is no CUDA GPU on this machine (or torch was "
                            "built without CUDA); train on the CPU with trainer=cpu")
    return configs


# the flags Hydra's command line takes (hydra/_internal/utils.py); anything else that starts with `-` is a mistake
HYDRA_FLAGS = {"-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "--resolve", "-p", "--package", "-r",
               "--run", "-m", "--multirun", "-sc", "--shell-completion", "-cp", "--config-path", "-cn", "--config-name",
               "-cd", "--config-dir", "--experimental-rerun", "-i", "--info"}


def main() -> None:
    """`python scripts/train.py [overrides]`: bad overrides and values stop here, before Hydra starts a job; Hydra's
    own flags (--help, --cfg, ...) go straight to it."""
    args = sys.argv[1:]
    unknown = [a for a in args if a.startswith("-") and a.split("=", 1)[0] not in HYDRA_FLAGS]
    if unknown:  # argparse would print its whole usage, after Hydra may have made a sweep folder
        fail(UserError(f"{unknown[0]}: not a flag of this command (-m runs a sweep, --help lists Hydra's flags); an "
                       "override is key=value"))
    multirun = any(a in ("-m", "--multirun") for a in args)
    if not [a for a in args if a.startswith("-") and a not in ("-m", "--multirun")]:
        try:
            check_before_run([a for a in args if not a.startswith("-")], multirun)
        except UserError as e:
            fail(e)
    _hydra_main()
