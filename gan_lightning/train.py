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
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from gan_lightning.callbacks import LAST, CheckpointOnInterrupt, LastCheckpoint
from gan_lightning.checkpoint import check_fits, load_checkpoint
from gan_lightning.config import (
    CONFIG_DIR,
    check_overrides,
    check_run_folders,
    claim_run_folder,
    given_keys,
    joins_a_run,
    override,
    validate,
)
from gan_lightning.errors import TrainingDiverged, TrainingInterrupted, UserError, fail
from gan_lightning.files import check_writable
from gan_lightning.hardware import explain_precision
from gan_lightning.models.gan import LOGGED_QUALITY
from gan_lightning.sweeps import run_job

log = logging.getLogger(__name__)
# The quality metrics' classifier is frozen in eval mode on purpose; Lightning would warn about it every run.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")


def build(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """`instantiate` of the config node at `key` (e.g. `callbacks.last_checkpoint`), with a failure reported as a
    `UserError` naming the key."""
    node = OmegaConf.select(cfg, key)
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, UserError | AssertionError):  # an assertion is a bug: it keeps its traceback
            raise cause from None
        reason = str(cause or e).strip().splitlines()[0]
        raise UserError(f"cannot build {key} ({node.get('_target_', '?')}): {reason}") from None


def build_model(cfg: DictConfig, **kwargs: Any) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The data module and the model (`kwargs` override the model config, e.g. `quality=None`)."""
    datamodule = build(cfg, "data")
    # the sizes the networks need come from the data
    model = build(cfg, "model", image_shape=datamodule.image_shape, num_classes=datamodule.num_classes, **kwargs)
    return datamodule, model


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


def _resume_from(cfg: DictConfig) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint `ckpt_path` names, loaded: a truncated, foreign or unsafe file is refused."""
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), _runs_dir(cfg))
    return None if ckpt_path is None else (ckpt_path, load_checkpoint(ckpt_path))


def train(cfg: DictConfig) -> dict[str, float]:
    """Train the GAN that `cfg` describes; returns the final logged metrics."""
    validate(cfg)
    output_dir = OmegaConf.select(cfg, "paths.output_dir")
    if output_dir is not None:
        check_writable(output_dir, "paths.output_dir")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    resume = _resume_from(cfg)

    datamodule, model = build_model(cfg)
    ckpt_path = None
    if resume is not None:
        ckpt_path, checkpoint = resume
        check_fits(model, checkpoint, ckpt_path)  # the same model, before anything is written
        log.info("Resuming from %s", ckpt_path)
    callbacks = [build(cfg, f"callbacks.{name}") for name, c in (cfg.get("callbacks") or {}).items() if c is not None]
    if not OmegaConf.select(cfg, "trainer.enable_progress_bar", default=True):  # Lightning refuses a bar it may not show
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    # last.ckpt after the other checkpoint callbacks, at each epoch end: it holds their state of that epoch
    callbacks.sort(key=lambda c: isinstance(c, LastCheckpoint))
    loggers = [build(cfg, f"logger.{name}") for name, c in (cfg.get("logger") or {}).items() if c is not None]
    try:
        trainer = build(cfg, "trainer", callbacks=callbacks, logger=loggers or False)
    except MisconfigurationException as e:
        raise UserError(f"trainer: {e}") from None
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
        raise TrainingDiverged(f"{e}; {resume}; try a lower optimizer.lr") from None
    except SystemExit:  # Lightning ends a run stopped by SIGTERM or Ctrl-C this way
        stopped = next((c for c in callbacks if isinstance(c, CheckpointOnInterrupt) and c.signal_name), None)
        if stopped is None:
            raise
        raise TrainingInterrupted(stopped.signal_name, stopped.saved) from None
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        metrics = run_job(cfg, train)  # train(cfg), its outcome written to metrics.json for sweep summaries
    except UserError as e:
        fail(e)
    except TrainingInterrupted as e:
        print(f"{e}: {_resume_hint(e.checkpoint)}", file=sys.stderr)
        sys.exit(e.exit_code)
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


def _resume_hint(checkpoint: Path | None) -> str:
    if checkpoint is None:
        return "no checkpoint saved (stopped mid-batch); resume from the last one with ckpt_path=last"
    from hydra.core.hydra_config import HydraConfig

    command = resume_command(HydraConfig.get().overrides.task, checkpoint)
    return f"checkpoint saved to {checkpoint}; resume with: {command}"


def resume_command(overrides: list[str], checkpoint: Path) -> str:
    """The shell command that resumes a run of these overrides from `checkpoint`: the path is quoted for Hydra's
    override parser where it needs that (`ckpt_path="/my runs (2)/last.ckpt"`), then every argument for the shell."""
    kept = [o for o in overrides if not o.startswith("ckpt_path=")]
    arguments = [*kept, override("ckpt_path", str(checkpoint))]
    return " ".join(["python scripts/train.py", *map(shlex.quote, arguments)])


def check_trainer(cfg: DictConfig) -> None:
    """Lightning's own checks of the trainer's arguments (accelerator, devices, precision, strategy...), made by
    building a Trainer without callbacks, loggers or a folder: nothing is written, and nothing is printed."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(f"trainer.accelerator={accelerator}: there is no CUDA GPU on this machine (or torch was built "
                        "without CUDA); train on the CPU with trainer=cpu")
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:  # "GPU available: ..." is said once, by the run itself
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build(cfg, "trainer", callbacks=[], logger=False, default_root_dir=None, enable_checkpointing=False)
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def check_batch_size(model: L.LightningModule, batch_size: int) -> None:
    """One training-mode pass of G and then D over a batch of `batch_size`, on the meta device (shapes only: no
    compute, no memory, at any size), so that what torch itself refuses at that size, such as BatchNorm given one
    value per channel, stops the command before the run folder exists rather than at the first batch.
    `model` is moved to the meta device: pass one built for this check only."""
    model.to("meta").train()
    z = torch.zeros(batch_size, model.hparams.noise_dim, device="meta")  # (B, noise_dim)
    labels = torch.zeros(batch_size, dtype=torch.long, device="meta") if model.conditional else None  # (B,)
    try:
        model.discriminator(model.generator(z, labels), labels)
    except ValueError as e:
        reason = str(e).strip().splitlines()[0]
        raise UserError(f"data.batch_size={batch_size}: the networks cannot train on batches of this size "
                        f"({reason}); use a larger data.batch_size") from None


def check_before_run(overrides: list[str], multirun: bool = False) -> list[DictConfig]:
    """What is checked before Hydra makes a run folder, for every job of a sweep: the values, that the run's folders
    can be written, that the data, the model and the trainer can be built, that `ckpt_path` is a safe
    checkpoint of that model, and that the networks take a training batch of `data.batch_size`. Returns the
    configs checked (with their `hydra` node)."""
    run_dir_given = ("hydra.sweep.dir" if multirun else "hydra.run.dir") in given_keys(overrides)
    configs = check_overrides(overrides, with_hydra=True, multirun=multirun)
    for cfg in configs:
        check_run_folders(cfg, multirun, run_dir_given)
        resume = _resume_from(cfg)
        _, model = build_model(cfg, quality=None)  # (the quality metrics hold no weights)
        if resume is not None:
            check_fits(model, resume[1], resume[0])
        check_batch_size(model, cfg.data.batch_size)
        check_trainer(cfg)
    return configs


def main() -> None:
    """`python scripts/train.py [overrides]`: bad overrides and values stop here, before Hydra starts a job."""
    args = sys.argv[1:]
    multirun = any(a in ("-m", "--multirun") for a in args)
    hydra_flags = [a for a in args if a.startswith("-") and a not in ("-m", "--multirun")]
    if not hydra_flags:  # --help, --cfg, --config-name ...: Hydra's own business
        overrides = [a for a in args if not a.startswith("-")]
        try:
            (cfg, *_) = check_before_run(overrides, multirun)
            key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
            if key not in given_keys(overrides) and not joins_a_run():
                # Hydra's default run (sweep) folder is named by the second the run starts: take it, or a free
                # variant of it, for this run (multirun) alone, and hand it to Hydra
                folder = claim_run_folder(OmegaConf.select(cfg, key), key)
                sys.argv.append(override(key, str(folder)))
        except UserError as e:
            fail(e)
    _hydra_main()
