"""Composing and checking the Hydra config before anything runs.

Hydra reports a bad override with a multi-line message and a hint about stack traces; a bad value would
only fail deep inside training. Both are caught here and turned into one `UserError` line naming the key.
"""

from collections.abc import Sequence
from numbers import Real
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_lightning.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"


def _value(cfg: DictConfig, key: str):
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=True)
    except OmegaConfBaseException as e:
        raise UserError(f"{key}: {str(e).splitlines()[0]}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(cfg: DictConfig, key: str, minimum: int) -> None:
    value = _value(cfg, key)
    if value is not None and not (_is_int(value) and value >= minimum):
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise UserError(f"{key} must be {what}, got {value!r}")


def _check_positive(cfg: DictConfig, key: str) -> None:
    value = _value(cfg, key)
    if value is not None and not (isinstance(value, Real) and not isinstance(value, bool) and value > 0):
        raise UserError(f"{key} must be a positive number, got {value!r}")


def _check_fraction(cfg: DictConfig, key: str) -> None:
    """A number in [0, 1)."""
    value = _value(cfg, key)
    if value is not None and not (isinstance(value, Real) and not isinstance(value, bool) and 0 <= value < 1):
        raise UserError(f"{key} must be a number in [0, 1), got {value!r}")


def _check_choice(cfg: DictConfig, key: str, choices: Sequence[str]) -> None:
    value = _value(cfg, key)
    if value is not None and value not in choices:
        raise UserError(f"{key}={value!r} is not one of: {', '.join(choices)}")


def validate(cfg: DictConfig) -> None:
    """Raise a `UserError` for the first value that cannot work."""
    from gan_lightning.models.losses import LOSSES  # (the models import the sampling code, which imports this)

    _check_int(cfg, "model.noise_dim", 1)
    _check_int(cfg, "model.grid_cols", 1)
    _check_positive(cfg, "optimizer.lr")
    _check_positive(cfg, "optimizer.d_lr")
    _check_fraction(cfg, "optimizer.beta1")
    _check_fraction(cfg, "optimizer.beta2")
    _check_choice(cfg, "model.loss", LOSSES)
    _check_int(cfg, "model.d_steps", 1)
    _check_fraction(cfg, "model.ema_decay")
    if _value(cfg, "model.loss") == "wgan-gp" and _value(cfg, "model.discriminator.batch_norm"):
        raise UserError("model.loss=wgan-gp penalises each image's gradient, which BatchNorm in the discriminator "
                        "mixes across the batch: set model.discriminator.batch_norm=false")
    _check_int(cfg, "data.batch_size", 1)
    _check_int(cfg, "data.val_size", 0)
    _check_int(cfg, "trainer.max_epochs", -1)
    monitor = _value(cfg, "callbacks.best_checkpoint.monitor")
    no_quality = _value(cfg, "model.quality") is None or _value(cfg, "trainer.limit_val_batches") in (0, 0.0)
    if monitor is not None and str(monitor).startswith("val/") and no_quality:
        raise UserError(
            f"callbacks.best_checkpoint monitors {monitor}, which needs validation with model.quality set; "
            "drop it with ~callbacks.best_checkpoint"
        )
    seed = _value(cfg, "seed")
    if seed is not None and not _is_int(seed):
        raise UserError(f"seed must be an integer or null, got {seed!r}")


def _explain(error: Exception) -> str:
    """One line out of Hydra's multi-line messages."""
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        choice = Path(error.missing_cfg_file)
        options = ", ".join(sorted(error.options))
        return f"{choice.parent.as_posix()}={choice.name}: no such option; choose one of: {options}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines[:2]) or type(error).__name__


def compose_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """The config Hydra would build for these overrides (single values, no sweeps)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise UserError(_explain(e)) from None
    finally:
        GlobalHydra.instance().clear()


def check_overrides(overrides: Sequence[str], config_name: str = "train") -> None:
    """Compose and validate the config for every value of every sweep override, before any job starts."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as e:
        raise UserError(_explain(e)) from None
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    sweeps = [(o.get_key_element(), list(o.sweep_string_iterator())) for o in parsed if o.is_sweep_override()
              and not o.is_interval_sweep()]  # an interval (Optuna) has no values to list
    firsts = [f"{key}={values[0]}" for key, values in sweeps]
    candidates = [fixed + firsts]
    for i, (key, values) in enumerate(sweeps):
        candidates += [fixed + firsts[:i] + [f"{key}={v}"] + firsts[i + 1 :] for v in values[1:]]
    for candidate in candidates:
        validate(compose_config(candidate, config_name))
