"""Composing and checking the Hydra config before anything runs.

Hydra reports a bad override with a multi-line message and a hint about stack traces; a bad value would
only fail deep inside training. Both are caught here and turned into one `UserError` line naming the key.
"""

import contextlib
import itertools
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from gan_lightning import (
    checks,
    hardware,  # noqa: F401  (registers the config's ${fast_precision:...} resolver)
    options,
)
from gan_lightning.data.datasets import DATASETS, IMAGE_FOLDER
from gan_lightning.errors import UserError
from gan_lightning.files import check_writable, make_folder
from gan_lightning.metrics.prdc import MIN_REFERENCE_IMAGES
from gan_lightning.networks.spec import MAX_SIZE, check_sizes

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
# config options that were renamed: the old name is refused with the new one
RENAMED = {f"experiment=seed_{model}": f"experiment=baseline_{model} (the recipe of the projects gan-lightning grew "
           "from; `seed` is the random seed)" for model in ("vanilla", "dcgan", "cgan")}
# config keys that moved: the old key is refused with the new one (the quality metrics became a callback)
MOVED_KEYS = {"model.quality": "callbacks.quality (switch it off with ~callbacks.quality)",
              "model.quality.kid_subset_size": "callbacks.quality.kid_subset_size",
              "model.eval_samples": "callbacks.quality.eval_samples",
              "model.conditional": "model=cgan (the conditional GAN is a model of its own)"}


def validate(cfg: DictConfig) -> None:
    """Raise a `UserError` for the first value that cannot work: every training value is checked here, once."""
    checks.integer(cfg, "model.noise_dim", 1, MAX_SIZE)
    for network in ("generator", "discriminator"):  # widths and layer counts, before anything is built
        node = checks.value(cfg, f"model.{network}")
        if isinstance(node, DictConfig):
            settings = OmegaConf.to_container(node, resolve=True)
            check_sizes(f"model.{network}", {k: v for k, v in settings.items() if not k.startswith("_")})
    checks.integer(cfg, "model.grid_cols", 1)
    checks.positive_number(cfg, "optimizer.lr")
    checks.positive_number(cfg, "optimizer.d_lr")
    checks.number(cfg, "optimizer.beta1", 0, 1)
    checks.number(cfg, "optimizer.beta2", 0, 1)
    checks.text(cfg, "model.loss", options.LOSSES)
    checks.integer(cfg, "model.d_steps", 1)
    checks.number(cfg, "model.ema_decay", 0, 1)
    checks.positive_number(cfg, "model.gradient_clip_val", optional=True)
    checks.text(cfg, "model.gradient_clip_algorithm", options.CLIP_ALGORITHMS)
    augment = checks.value(cfg, "model.augment")
    if isinstance(augment, DictConfig | ListConfig):
        augment = OmegaConf.to_container(augment, resolve=True)
    options.parse_policy(augment)
    class_weight = checks.number(cfg, "model.class_loss_weight", 0, meaning="0 = off")  # the cGAN's own key
    if class_weight and "DCGANDiscriminator" not in str(checks.value(cfg, "model.discriminator._target_")):
        raise UserError("model.class_loss_weight > 0 (AC-GAN) needs a discriminator with a class head, the "
                        "convolutional one (gan_lightning.networks.DCGANDiscriminator); or set model.class_loss_weight=0")
    if checks.value(cfg, "model.categorical") is not None:  # InfoGAN's own keys
        checks.integer(cfg, "model.categorical", 2)
        checks.integer(cfg, "model.continuous", 0)
        checks.positive_number(cfg, "model.info_weight")
        checks.number(cfg, "model.continuous_weight", 0)
        checks.text(cfg, "model.noise", ("normal", "uniform"))
        if "DCGANDiscriminator" not in str(checks.value(cfg, "model.discriminator._target_")):
            raise UserError("model=infogan needs a discriminator with a head for Q, the convolutional one "
                            "(gan_lightning.networks.DCGANDiscriminator)")
    if checks.value(cfg, "model.loss") == "wgan-gp" and checks.value(cfg, "model.discriminator.batch_norm"):
        raise UserError("model.loss=wgan-gp penalises each image's gradient, which BatchNorm in the discriminator "
                        "mixes across the batch: set model.discriminator.batch_norm=false")
    quality = OmegaConf.select(cfg, "callbacks.quality") is not None
    # FID needs at least 2 samples; the real-data row is scored at the same n (KID's subsets are cut to n when n
    # is smaller than kid_subset_size)
    name = checks.text(cfg, "data.dataset", choices=[*DATASETS, IMAGE_FOLDER])
    dataset = DATASETS.get(name)
    # an image folder's size is known when it is read: its real-data row takes what it has
    checks.integer(cfg, "callbacks.quality.eval_samples", 2,
                   dataset.held_out_images if dataset else max(d.held_out_images for d in DATASETS.values()))
    image_size = checks.integer(cfg, "data.image_size", 8, 128, optional=True)
    if image_size is not None and image_size % 4:
        raise UserError(f"data.image_size={image_size}: the networks halve the image twice, so it must be a "
                        "multiple of 4 (28, 32, 64, ...)")
    classifier = checks.text(cfg, "data.classifier", optional=True)
    if classifier is not None and not Path(classifier).expanduser().is_file():
        raise UserError(f"data.classifier={classifier}: no such file; train one with python "
                        f"scripts/train_classifier.py data={name} and give the .pt it writes")
    if name == IMAGE_FOLDER and checks.value(cfg, "data.data_dir") is None:
        raise UserError("data=image_folder needs data.data_dir: the folder of your images, one sub-folder per class")
    checks.integer(cfg, "callbacks.quality.kid_subset_size", 2)  # KID's unbiased estimate divides by m(m - 1)
    checks.integer(cfg, "data.batch_size", 1)
    checks.number(cfg, "data.rotation", 0, maximum=180, meaning="degrees")
    checks.seed(cfg, "data.split_seed")
    checks.seed(cfg, "data.shuffle_seed", optional=True)
    checks.integer(cfg, "data.num_workers", 0)
    if checks.value(cfg, "data.download") and checks.value(cfg, "data.data_dir") is None:
        raise UserError(f"data.download=true needs data.data_dir: the folder to download {dataset.title if dataset else name} "
                        "into")
    if checks.value(cfg, "data.on_device") and (checks.value(cfg, "data.num_workers") or 0) > 0:
        raise UserError("data.on_device=true cuts batches in the training process: it needs data.num_workers=0, "
                        f"got {checks.value(cfg, 'data.num_workers')}")
    val_size = checks.integer(cfg, "data.val_size", 0, optional=True)  # null: a tenth of the training images
    if quality and val_size == 0:
        # the quality metrics are computed at each validation, which an empty validation split never runs
        raise UserError("data.val_size=0 leaves no validation, where the quality metrics (callbacks.quality) are "
                        "computed: give a positive data.val_size, or train without them: ~callbacks.quality "
                        "~callbacks.best_checkpoint")
    if quality and val_size is not None and 0 < val_size < MIN_REFERENCE_IMAGES:
        raise UserError(f"data.val_size={val_size}: the quality metrics score against the validation split, and "
                        f"its k-nearest-neighbour balls need at least {MIN_REFERENCE_IMAGES} images; give a larger "
                        "data.val_size")
    max_epochs = checks.integer(cfg, "trainer.max_epochs", -1, optional=True)
    # a run that would train nothing is refused, not reported as completed
    if max_epochs == 0:
        raise UserError("trainer.max_epochs=0 trains nothing: give a positive number of epochs (or -1: until stopped)")
    if checks.value(cfg, "trainer.max_steps") == 0:
        raise UserError("trainer.max_steps=0 trains nothing: give a positive number of steps, or -1 for no limit")
    if checks.value(cfg, "trainer.limit_train_batches") in (0, 0.0):
        raise UserError("trainer.limit_train_batches=0 trains on no batch: give a positive number (or fraction) of "
                        "batches, or null for all")
    decay = checks.integer(cfg, "optimizer.lr_decay_epochs", 0)
    decay_share = checks.number(cfg, "model.lr_decay_share", 0, maximum=1, meaning="0 = constant learning rates",
                                optional=True)
    if decay and decay_share:
        raise UserError(f"optimizer.lr_decay_epochs={decay} and model.lr_decay_share={decay_share:g} both set the "
                        "learning-rate decay: give one, e.g. model.lr_decay_share=0 beside optimizer.lr_decay_epochs")
    if decay and (max_epochs is None or max_epochs < decay):
        raise UserError(f"optimizer.lr_decay_epochs={decay} decays the learning rates over the last {decay} epochs "
                        f"of trainer.max_epochs, which is {max_epochs}: give trainer.max_epochs >= {decay}, or "
                        "optimizer.lr_decay_epochs=0")
    # the GAN steps its two optimizers itself (manual optimization), which Lightning cannot clip or accumulate for
    if checks.value(cfg, "trainer.gradient_clip_val") not in (None, 0, 0.0):
        raise UserError("trainer.gradient_clip_val: Lightning does not clip gradients under the GAN's manual "
                        "optimization; the model does: use model.gradient_clip_val (and model.gradient_clip_algorithm)")
    if checks.value(cfg, "trainer.accumulate_grad_batches") not in (None, 1):
        raise UserError("trainer.accumulate_grad_batches: Lightning does not accumulate gradients under the GAN's "
                        "manual optimization; remove it and raise data.batch_size instead")
    if (str(checks.value(cfg, "trainer.precision")).startswith("16")
            and checks.value(cfg, "model.gradient_clip_val") is not None and checks.value(cfg, "optimizer.fused")):
        raise UserError("model.gradient_clip_val with trainer.precision=16-mixed: a fused Adam unscales the gradients "
                        "inside its step, after they would be clipped; set optimizer.fused=false")
    checks.integer(cfg, "callbacks.last_checkpoint.every_n_batches", 0)
    checks.integer(cfg, "callbacks.sample_grid.every_n_epochs", 1)
    if checks.value(cfg, "callbacks.cpu_threads.threads") != "auto":
        checks.integer(cfg, "callbacks.cpu_threads.threads", 1)
    if checks.value(cfg, "callbacks.health") is not None:
        checks.text(cfg, "callbacks.health.action", options.HEALTH_ACTIONS)
        checks.integer(cfg, "callbacks.health.stall_patience", 1)
        checks.number(cfg, "callbacks.health.stall_min_delta", 0)
        checks.number(cfg, "callbacks.health.collapse_drop", 0, maximum=1)
        checks.number(cfg, "callbacks.health.collapse_from", 0, maximum=1)
        checks.number(cfg, "callbacks.health.collapse_absent", 0, maximum=1)
        checks.integer(cfg, "callbacks.health.collapse_after", 0)
        checks.integer(cfg, "callbacks.health.saturation_epochs", 1)
        for loss in options.LOSSES:
            checks.positive_number(cfg, f"callbacks.health.saturation_threshold.{loss}")
        checks.positive_number(cfg, "callbacks.health.divergence_factor")
    monitor = checks.value(cfg, "callbacks.best_checkpoint.monitor")
    no_quality = not quality or checks.value(cfg, "trainer.limit_val_batches") in (0, 0.0)
    if monitor is not None and str(monitor).startswith("val/") and no_quality:
        raise UserError(
            f"callbacks.best_checkpoint monitors {monitor}, which needs validation with callbacks.quality; "
            "drop it with ~callbacks.best_checkpoint"
        )
    for key in ("ckpt_path", "runs_dir"):
        checks.text(cfg, key, optional=True)
    checks.seed(cfg, "seed", optional=True)
    _check_nonnegative(cfg)


def _leaves(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in node:
        value = node._get_node(key)
        path = f"{prefix}{key}"
        keys += _leaves(value, f"{path}.") if isinstance(value, DictConfig) else [path]
    return keys


def _check_nonnegative(cfg: DictConfig) -> None:
    """Every weight, decay and learning rate, wherever it is in the config (also one the chosen loss or model does
    not use): a number >= 0. A learning rate of 0 stays allowed: it freezes a network (`optimizer.generator.lr=0`)."""
    for key in _leaves(cfg):
        name = key.rpartition(".")[2]
        if key.startswith("hydra.") or not (name.endswith(("weight", "_decay")) or name in ("lr", "d_lr")):
            continue
        checks.number(cfg, key, 0)


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
        check_writable(checks.text(cfg, key), key)
    if run_dir_given and multirun and not joins_a_run():
        sweep_dir = Path(checks.value(cfg, "hydra.sweep.dir"))
        held = [name for name in SWEEP_FILES if (sweep_dir / name).exists()]
        held += [job.parent.name for job in sorted(sweep_dir.glob("*/.hydra"))]  # the job folders
        if held:
            raise UserError(f"hydra.sweep.dir={sweep_dir} already holds a sweep ({held[0]}); give a new folder, or "
                            "leave hydra.sweep.dir out to get one of its own")
    if run_dir_given and not multirun and not joins_a_run():
        run_dir = Path(checks.value(cfg, "hydra.run.dir"))
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


class RunFolder(Callback):
    """Hydra callback: the run's folder (a multirun's sweep folder) is claimed by `claim_run_folder` before Hydra
    writes into it, unless the command line gave it (`hydra.run.dir=...`, checked by `check_run_folders`) or this
    process joins rank 0's run. Hydra names it by the second the run starts; a run started in the same second as
    another gets `<name>-2`. A multirun's jobs recompose their config from Hydra's own overrides, so the sweep
    folder claimed goes there too. `made` lists the folders it made (the deepest first), for `discard_refused_run`."""

    made: ClassVar[list[Path]] = []

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, "hydra.sweep.dir")

    @classmethod
    def _claim(cls, config: DictConfig, key: str) -> None:
        if key in given_keys(list(config.hydra.overrides.hydra)) or joins_a_run():
            return
        path = Path(OmegaConf.select(config, key))
        parents = [parent for parent in path.parents if not parent.exists()]  # the deepest first
        folder = claim_run_folder(path, key)
        cls.made = [Path(os.path.abspath(p)) for p in (folder, *parents)]
        with read_write(config.hydra), open_dict(config.hydra):
            OmegaConf.update(config, key, str(folder))
            config.hydra.overrides.hydra.append(override(key, str(folder)))


# what a run refused before it trained leaves in its folder: Hydra's record of it, its log, how it ended
REFUSED_RUN_FILES = (".hydra", "train.log", "metrics.json")


def discard_refused_run(run_dir: str | Path) -> None:
    """A run refused before it trained leaves nothing behind, as a value refused before Hydra starts does: when
    `run_dir` holds nothing but Hydra's record of the run, its log and how it ended (`REFUSED_RUN_FILES`), those go,
    then the folder and the folders above it that `RunFolder` made for it, when that leaves them empty. A folder
    holding anything else (a checkpoint, TensorBoard's events) is left as it is."""
    run_dir = Path(os.path.abspath(run_dir))
    if not run_dir.is_dir() or any(p.name not in REFUSED_RUN_FILES for p in run_dir.iterdir()):
        return
    for name in REFUSED_RUN_FILES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    made = RunFolder.made if RunFolder.made[:1] == [run_dir] else [run_dir]
    for folder in made:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty


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
        renamed = RENAMED.get(f"{choice.parent.as_posix()}={choice.name}")
        if renamed:
            return f"{choice.parent.as_posix()}={choice.name} is now called {renamed}"
        return f"{choice.parent.as_posix()}={choice.name}: no such option; choose one of: {options}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, OverrideParseException):  # a word without `=`, or a space or a quote left unquoted
        return (f"cannot read the override {error.override!r}: each argument is one key=value (quote a value that "
                "holds spaces or quotes for Hydra, e.g. 'key=\"my value\"'; a list is key=[a,b])")
    moved = re.match(r"Could not (?:override|delete from config\.) '([^']+)'", lines[0] if lines else "")
    if moved and moved.group(1) in MOVED_KEYS:
        return f"{moved.group(1)} is now {MOVED_KEYS[moved.group(1)]}"
    owners = _models_with_key(moved.group(1)) if moved else []
    if owners:
        return f"{moved.group(1)} belongs to {' and '.join(f'model={m}' for m in owners)} only; choose that model"
    return "; ".join(lines[:2]) or type(error).__name__


def _models_with_key(key: str) -> list[str]:
    """The `model=` options whose own config file holds `key` (`model.class_loss_weight`: cgan)."""
    if not key.startswith("model."):
        return []
    return [path.stem for path in sorted((CONFIG_DIR / "model").glob("*.yaml"))
            if OmegaConf.select(OmegaConf.load(path), key.removeprefix("model.")) is not None]


def compose_config(overrides: Sequence[str] = (), config_name: str = "train", with_hydra: bool = False) -> DictConfig:
    """The config Hydra would build for these overrides (single values, no sweeps), its values checked (`validate`)
    when it is the training config; `with_hydra`: with its `hydra` node (run and sweep folders...), whose runtime
    values are unset."""
    cfg = _compose(overrides, config_name, with_hydra)
    if config_name == "train":
        _check_booleans(overrides, cfg)
        validate(cfg)
    return cfg


def _compose(overrides: Sequence[str], config_name: str, with_hydra: bool = False) -> DictConfig:
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


def _check_booleans(overrides: Sequence[str], cfg: DictConfig) -> None:
    """A key that is true or false in the config (for the groups chosen) takes only true or false: `maybe`, `1` or
    `yes` is refused rather than read as true."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    is_group = [(CONFIG_DIR / o.key_or_group).is_dir() for o in parsed]
    values = [o for o, group in zip(parsed, is_group, strict=True) if not group and not o.is_delete()]
    if not values:
        return
    defaults = _compose([o.input_line for o, group in zip(parsed, is_group, strict=True) if group], "train")
    for o in values:
        key = o.key_or_group
        if key in NOT_ONLY_BOOLEAN and NOT_ONLY_BOOLEAN[key](checks.value(cfg, key)):
            continue
        if isinstance(OmegaConf.select(defaults, key, default=None, throw_on_resolution_failure=False), bool):
            checks.boolean(cfg, key)


# keys false by default that Lightning also takes other values for
NOT_ONLY_BOOLEAN = {"trainer.deterministic": lambda v: v == "warn",
                    "trainer.fast_dev_run": lambda v: checks.is_int(v) and v >= 0}


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
    return [compose_config(candidate, config_name, with_hydra) for candidate in candidates]
