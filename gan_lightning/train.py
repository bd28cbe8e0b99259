"""The training entry point: `train(cfg)` builds everything from the config and fits; `main()` is the CLI."""

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from gan_lightning.config import CONFIG_DIR, check_overrides, validate
from gan_lightning.errors import UserError, fail

log = logging.getLogger(__name__)


def build(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """`instantiate(cfg[key])`, with a failure reported as a `UserError` naming the config key."""
    try:
        return instantiate(cfg[key], **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        reason = str(cause or e).strip().splitlines()[0]
        raise UserError(f"cannot build {key} ({cfg[key].get('_target_', '?')}): {reason}") from None


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """What a run logs as its hyper-parameters: the resolved config, less paths and Hydra's own settings."""
    params = OmegaConf.to_container(cfg, resolve=True)
    for key in ("paths", "hydra", "logger", "callbacks"):
        params.pop(key, None)
    return params


def train(cfg: DictConfig) -> dict[str, float]:
    """Train the GAN that `cfg` describes; returns the final logged metrics."""
    validate(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        raise UserError(f"ckpt_path={ckpt_path}: no such checkpoint file")

    datamodule = build(cfg, "data")
    # the sizes the networks need come from the data
    model = build(cfg, "model", image_shape=datamodule.image_shape, num_classes=datamodule.num_classes)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    try:
        trainer = build(cfg, "trainer", callbacks=callbacks, logger=loggers or False)
    except MisconfigurationException as e:
        raise UserError(f"trainer: {e}") from None
    for logger in loggers:
        logger.log_hyperparams(hyperparameters(cfg))

    log.info("Run directory: %s", trainer.default_root_dir)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except UserError as e:
        fail(e)
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


def main() -> None:
    """`python scripts/train.py [overrides]`: bad overrides and values stop here, before Hydra starts a job."""
    args = sys.argv[1:]
    hydra_flags = [a for a in args if a.startswith("-") and a not in ("-m", "--multirun")]
    if not hydra_flags:  # --help, --cfg, --config-name ...: Hydra's own business
        try:
            check_overrides([a for a in args if not a.startswith("-")])
        except UserError as e:
            fail(e)
    _hydra_main()
