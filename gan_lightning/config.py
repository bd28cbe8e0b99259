"""Composing and checking the Hydra config before anything runs.

Hydra reports a bad override with a multi-line message and a hint about stack traces; a bad value would
only fail deep inside training. Both are caught here and turned into one `UserError` line naming the key.
"""

import itertools
import os
import re
from collections.abc import Sequence
from numbers import Real
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_lightning import hardware  # noqa: F401  (registers the config's ${fast_precision:...} resolver)
from gan_lightning.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
# what `lightning.seed_everything` (and NumPy) accept
MAX_SEED = 2**32 - 1


def _value(cfg: DictConfig, key: str):
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=True)
    except OmegaConfBaseException as e:
        raise UserError(f"{key}: {str(e).splitlines()[0]}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(cfg: DictConfig, key: str, minimum: int, maximum: int | None = None) -> None:
    value = _value(cfg, key)
    if value is not None and not (_is_int(value) and value >= minimum and (maximum is None or value <= maximum)):
        if maximum is not None:
            what = f"an integer from {minimum} to {maximum}"
        else:
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


def _check_path(cfg: DictConfig, key: str) -> None:
    """A file or folder name: a string (a number or a list is a mistake: quote a name that looks like one)."""
    value = _value(cfg, key)
    if value is not None and not (isinstance(value, str) and value):
        raise UserError(f"{key} must be a path, got {value!r}{quote_hint(key, value)}")


def quote_hint(key: str, value) -> str:
    """How to give a name that YAML reads as a number or a boolean."""
    if isinstance(value, (bool, int, float)):
        return f"; to mean the name {value!r}, quote it: {key}=\"'{value}'\""
    return ""


def _check_choice(cfg: DictConfig, key: str, choices: Sequence[str]) -> None:
    value = _value(cfg, key)
    if value is not None and value not in choices:
        raise UserError(f"{key}={value!r} is not one of: {', '.join(choices)}")


def validate(cfg: DictConfig) -> None:
    """Raise a `UserError` for the first value that cannot work."""
    # (the models import the sampling code, which imports this)
    from gan_lightning.metrics.classifier import HELD_OUT_IMAGES
    from gan_lightning.metrics.prdc import MIN_REFERENCE_IMAGES
    from gan_lightning.models.augment import parse_policy
    from gan_lightning.models.gan import CLIP_ALGORITHMS
    from gan_lightning.models.losses import LOSSES

    _check_int(cfg, "model.noise_dim", 1)
    _check_int(cfg, "model.grid_cols", 1)
    _check_positive(cfg, "optimizer.lr")
    _check_positive(cfg, "optimizer.d_lr")
    _check_fraction(cfg, "optimizer.beta1")
    _check_fraction(cfg, "optimizer.beta2")
    _check_choice(cfg, "model.loss", LOSSES)
    _check_int(cfg, "model.d_steps", 1)
    _check_fraction(cfg, "model.ema_decay")
    _check_positive(cfg, "model.gradient_clip_val")
    _check_choice(cfg, "model.gradient_clip_algorithm", CLIP_ALGORITHMS)
    augment = _value(cfg, "model.augment")
    if isinstance(augment, DictConfig | ListConfig):
        augment = OmegaConf.to_container(augment, resolve=True)
    parse_policy(augment)
    class_weight = _value(cfg, "model.class_loss_weight")
    if class_weight is not None and not (isinstance(class_weight, Real) and not isinstance(class_weight, bool)
                                         and class_weight >= 0):
        raise UserError(f"model.class_loss_weight must be a number >= 0 (0 = off), got {class_weight!r}")
    if class_weight and not (_value(cfg, "model.conditional")
                             and "DCGANDiscriminator" in str(_value(cfg, "model.discriminator._target_"))):
        raise UserError("model.class_loss_weight > 0 (AC-GAN) needs the conditional GAN's discriminator, which has a "
                        "class head: use model=cgan, or set model.class_loss_weight=0")
    if _value(cfg, "model.loss") == "wgan-gp" and _value(cfg, "model.discriminator.batch_norm"):
        raise UserError("model.loss=wgan-gp penalises each image's gradient, which BatchNorm in the discriminator "
                        "mixes across the batch: set model.discriminator.batch_norm=false")
    # FID needs at least 2 samples; the real-data row is scored at the same n (KID's subsets are cut to n when n
    # is smaller than kid_subset_size)
    _check_int(cfg, "model.eval_samples", 2, HELD_OUT_IMAGES)
    if _value(cfg, "model.quality") is not None:
        _check_int(cfg, "model.quality.kid_subset_size", 2)  # KID's unbiased estimate divides by m(m - 1)
    _check_int(cfg, "data.batch_size", 1)
    _check_int(cfg, "data.val_size", 0)
    if _value(cfg, "model.quality") is not None and _value(cfg, "data.val_size") == 0:
        # the quality metrics are computed at each validation, which an empty validation split never runs
        raise UserError("data.val_size=0 leaves no validation, where the quality metrics (model.quality) are "
                        "computed: give a positive data.val_size, or train without them: model.quality=null "
                        "~callbacks.best_checkpoint")
    val_size = _value(cfg, "data.val_size")
    if val_size is None:
        raise UserError("data.val_size must be an integer >= 0 (the training images held out for validation), got null")
    if _value(cfg, "model.quality") is not None and _is_int(val_size) and 0 < val_size < MIN_REFERENCE_IMAGES:
        raise UserError(f"data.val_size={val_size}: the quality metrics score against the validation split, and "
                        f"its k-nearest-neighbour balls need at least {MIN_REFERENCE_IMAGES} images; give a larger "
                        "data.val_size")
    _check_int(cfg, "trainer.max_epochs", -1)
    # the GAN steps its two optimizers itself (manual optimization), which Lightning cannot clip or accumulate for
    if _value(cfg, "trainer.gradient_clip_val") not in (None, 0, 0.0):
        raise UserError("trainer.gradient_clip_val: Lightning does not clip gradients under the GAN's manual "
                        "optimization; the model does: use model.gradient_clip_val (and model.gradient_clip_algorithm)")
    if _value(cfg, "trainer.accumulate_grad_batches") not in (None, 1):
        raise UserError("trainer.accumulate_grad_batches: Lightning does not accumulate gradients under the GAN's "
                        "manual optimization; remove it and raise data.batch_size instead")
    if (str(_value(cfg, "trainer.precision")).startswith("16") and _value(cfg, "model.gradient_clip_val") is not None
            and _value(cfg, "optimizer.fused")):
        raise UserError("model.gradient_clip_val with trainer.precision=16-mixed: a fused Adam unscales the gradients "
                        "inside its step, after they would be clipped; set optimizer.fused=false")
    _check_int(cfg, "callbacks.last_checkpoint.every_n_batches", 0)
    _check_int(cfg, "callbacks.sample_grid.every_n_epochs", 1)
    threads = _value(cfg, "callbacks.cpu_threads.threads")
    if threads != "auto":
        _check_int(cfg, "callbacks.cpu_threads.threads", 1)
    monitor = _value(cfg, "callbacks.best_checkpoint.monitor")
    no_quality = _value(cfg, "model.quality") is None or _value(cfg, "trainer.limit_val_batches") in (0, 0.0)
    if monitor is not None and str(monitor).startswith("val/") and no_quality:
        raise UserError(
            f"callbacks.best_checkpoint monitors {monitor}, which needs validation with model.quality set; "
            "drop it with ~callbacks.best_checkpoint"
        )
    for key in ("ckpt_path", "runs_dir"):
        _check_path(cfg, key)
    seed = _value(cfg, "seed")
    if seed is not None and not (_is_int(seed) and 0 <= seed <= MAX_SEED):
        raise UserError(f"seed must be an integer from 0 to {MAX_SEED}, or null, got {seed!r}")


def check_writable(path: str | Path, key: str, folder: bool = True, example: str = "") -> Path:
    """`path` can be made or replaced: as a folder (`folder`) or as a file (`example`: a file name to suggest when it
    is a folder). It is not of the other kind, nothing above it is a file, and the nearest folder of it that
    exists can be written to. Returns it as a `Path`."""
    path = Path(path)
    try:
        if "\0" in str(path):
            raise ValueError("a NUL character")
        existing = next(p for p in (path, *path.parents) if p.exists())
    except (OSError, ValueError) as e:  # a name too long...
        raise UserError(f"{key}={str(path)!r} is not a usable path ({e}); choose another") from None
    if existing == path and folder and not path.is_dir():
        raise UserError(f"{key}={path} is a file; give a folder to write into")
    if existing == path and not folder and path.is_dir():
        raise UserError(f"{key}={path} is a folder; give a file path" + (f", e.g. {path / example}" if example else ""))
    if existing != path and not existing.is_dir():
        raise UserError(f"{key}={path}: {existing} is a file, so nothing can be written under it; choose another path")
    writable = existing if existing.is_dir() else existing.parent
    if not os.access(writable, os.W_OK | os.X_OK):
        raise UserError(f"{key}={path}: no permission to write in {writable}; choose another path")
    return path


def make_folder(path: str | Path, key: str) -> Path:
    """`mkdir -p path`, with a failure (permissions, a read-only or special file system) as a `UserError`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{key}: cannot create the folder {path} ({e.strerror or e}); choose another path") from None
    return path


# paths.output_dir's default: Hydra's run folder, known only once the run has started
HYDRA_OUTPUT_DIR = "${hydra:runtime.output_dir}"


# what a run leaves in its folder: Hydra's config snapshot, its checkpoints, how it ended (sweeps.RESULT)
RUN_FILES = (".hydra", "checkpoints", "metrics.json")
# what a multirun leaves in its sweep folder besides its job folders: Hydra's config of the sweep, the summary
# (sweeps.SUMMARY_CSV, SUMMARY_MD), Optuna's best trial
SWEEP_FILES = ("multirun.yaml", "summary.csv", "summary.md", "optimization_results.yaml")


def joins_a_run() -> bool:
    """True in a process started to join rank 0's run (Lightning's DDP launcher starts ranks 1... with rank 0's
    command line and run folder, and LOCAL_RANK set): that folder is rank 0's, not an earlier run's."""
    return any(os.environ.get(var, "0") != "0" for var in ("LOCAL_RANK", "RANK"))


def check_run_folders(cfg: DictConfig, multirun: bool = False, run_dir_given: bool = False) -> None:
    """The folders a run is going to write (`cfg` composed `with_hydra`) can be made: Hydra's run folder (a
    multirun's sweep folder), and paths.output_dir when it is set to a folder of its own. A run folder (sweep
    folder) given on the command line (`run_dir_given`) must not hold an earlier run (sweep): its files would be
    mixed with this one's, and a sweep's jobs, numbered from 0 again, would overwrite the earlier jobs."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    keys = [key]
    paths = cfg.get("paths")
    if paths is not None and OmegaConf.to_container(paths, resolve=False).get("output_dir") != HYDRA_OUTPUT_DIR:
        keys.append("paths.output_dir")
    for key in keys:
        _check_path(cfg, key)
        value = _value(cfg, key)
        if value is None:
            raise UserError(f"{key} is required: the folder the run writes to")
        check_writable(value, key)
    if run_dir_given and multirun and not joins_a_run():
        sweep_dir = Path(_value(cfg, "hydra.sweep.dir"))
        held = [name for name in SWEEP_FILES if (sweep_dir / name).exists()]
        held += [job.parent.name for job in sorted(sweep_dir.glob("*/.hydra"))]  # the job folders
        if held:
            raise UserError(f"hydra.sweep.dir={sweep_dir} already holds a sweep ({held[0]}); give a new folder, or "
                            "leave hydra.sweep.dir out to get one of its own")
    if run_dir_given and not multirun and not joins_a_run():
        run_dir = Path(_value(cfg, "hydra.run.dir"))
        held = [name for name in RUN_FILES if (run_dir / name).exists()]
        if held:
            last = run_dir / "checkpoints" / "last.ckpt"
            resume = (f"; to go on from it, start a run in a new folder with {override('ckpt_path', str(last))}"
                      if last.is_file() else "")
            raise UserError(f"hydra.run.dir={run_dir} already holds a run ({held[0]}); give a new folder, or leave "
                            f"hydra.run.dir out to get one of its own{resume}")


def claim_run_folder(path: str | Path, key: str = "hydra.run.dir") -> Path:
    """Make the folder `path` (the value of `key`: a run's folder, or a multirun's sweep folder), or `path-2`,
    `path-3`, ... when it exists already: one that no other run has, also when two runs start in the same second
    (each `mkdir` either makes the folder or fails, atomically)."""
    path = Path(path)
    make_folder(path.parent, key)
    for n in itertools.count(1):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as e:
            raise UserError(f"{key}: cannot create the folder {candidate} ({e.strerror or e}); "
                            f"choose another folder with {key}=...") from None
    raise AssertionError("unreachable")


def override(key: str, value: str) -> str:
    """`key=value` written so that Hydra reads back exactly the string `value`: as it is when Hydra's override
    parser takes it so (`ckpt_path=/runs/x/last.ckpt`), else quoted (`ckpt_path="/my runs/(1)/last.ckpt"`).
    A command line needs it shell-quoted on top (`shlex.quote`)."""
    plain = f"{key}={value}"
    if "$" not in value and "\\" not in value:  # an interpolation, or an escape, would not stay as written
        try:
            if OverridesParser.create().parse_override(plain).value() == value:
                return plain
        except HydraException:
            pass
    quote = "'" if '"' in value and "'" not in value else '"'
    # OmegaConf resolves ${...} in any string, so it is escaped as \${...}, and a backslash right before it
    # doubled; Hydra's quoted strings take \<quote> for a quote, and doubled backslashes before a quote or
    # at the end
    escaped = re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)
    escaped = re.sub(rf"(\\+)(?={quote}|$)", lambda m: m.group(1) * 2, escaped)
    escaped = escaped.replace(quote, f"\\{quote}")
    return f"{key}={quote}{escaped}{quote}"


def _explain(error: Exception) -> str:
    """One line out of Hydra's multi-line messages."""
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        choice = Path(error.missing_cfg_file)
        options = ", ".join(sorted(error.options))
        return f"{choice.parent.as_posix()}={choice.name}: no such option; choose one of: {options}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines[:2]) or type(error).__name__


def compose_config(overrides: Sequence[str] = (), config_name: str = "train", with_hydra: bool = False) -> DictConfig:
    """The config Hydra would build for these overrides (single values, no sweeps); `with_hydra`: with its `hydra`
    node (run and sweep folders...), whose runtime values are unset."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise UserError(_explain(e)) from None
    except TypeError as e:  # what Hydra trips over, e.g. numbers where a config group wants option names (model=[1])
        raise UserError(f"cannot compose the config from {' '.join(overrides)} ({e}); a config group takes "
                        "option names, e.g. model=cgan") from None
    finally:
        GlobalHydra.instance().clear()


def given_keys(overrides: Sequence[str]) -> set[str]:
    """The keys the overrides set (`hydra.run.dir`, `model`, ...); none when they do not parse (the check says why)."""
    try:
        return {o.key_or_group for o in OverridesParser.create().parse_overrides(list(overrides))}
    except HydraException:
        return set()


def check_overrides(
    overrides: Sequence[str], config_name: str = "train", with_hydra: bool = False, multirun: bool = True
) -> list[DictConfig]:
    """Compose and validate the config for every value of every sweep override, before any job starts; returns
    the configs checked (one for a single run; `with_hydra`: with their `hydra` node). Without `multirun` a sweep
    override is refused: Hydra would refuse it only after making the run's folder, in several lines."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as e:
        raise UserError(_explain(e)) from None
    sweep = next((o for o in parsed if o.is_sweep_override()), None)
    if not multirun and sweep is not None:
        key = sweep.get_key_element()
        raise UserError(f"{sweep.input_line}: several values make a sweep, which needs -m (one job each); one value "
                        f"that is a list is written {key}=[a,b], a string holding commas is quoted: {key}=\"'a,b'\"")
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    sweeps = [(o.get_key_element(), list(o.sweep_string_iterator())) for o in parsed if o.is_sweep_override()
              and not o.is_interval_sweep()]  # an interval (Optuna) has no values to list
    firsts = [f"{key}={values[0]}" for key, values in sweeps]
    candidates = [fixed + firsts]
    for i, (key, values) in enumerate(sweeps):
        candidates += [fixed + firsts[:i] + [f"{key}={v}"] + firsts[i + 1 :] for v in values[1:]]
    configs = [compose_config(candidate, config_name, with_hydra) for candidate in candidates]
    for cfg in configs:
        validate(cfg)
    return configs
