"""The config of the tools around a trained generator (generate, evaluate, export, demo): `key=value` command
lines, Hydra style, checked with `gan_lightning.checks`.

The defaults are one flat YAML file of conf/ (conf/generate.yaml, conf/demo.yaml); values are parsed as
YAML (`n=64` is an int, `digit=all` a string, `seed_to=null` None). An unknown key, or an argument that is
not `key=value`, is a `UserError`; so is a value of the wrong kind.
"""

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_lightning.checks import is_int, text
from gan_lightning.config import CONFIG_DIR
from gan_lightning.errors import UserError
from gan_lightning.pretrained import BUNDLED, DEFAULT_MODEL


def load_config(defaults: str | dict[str, Any], args: Sequence[str]) -> DictConfig:
    """The defaults (conf/<name>.yaml for a name, else a dict) with the `key=value` arguments merged in."""
    cfg = OmegaConf.load(CONFIG_DIR / f"{defaults}.yaml") if isinstance(defaults, str) else OmegaConf.create(defaults)
    for arg in args:
        key, sep, _ = arg.partition("=")
        if not sep or not key:
            raise UserError(f"expected key=value, got {arg!r} (see --help)")
        if key not in cfg:
            close = difflib.get_close_matches(key, list(cfg.keys()), n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(cfg.keys())}"
            raise UserError(f"unknown key {key!r}{hint}")
        try:
            cfg[key] = OmegaConf.from_dotlist([arg])[key]
        except (OmegaConfBaseException, ValueError) as e:
            raise UserError(f"{arg}: {str(e).splitlines()[0]}") from None
    return cfg


def print_help(name: str, usage: str) -> None:
    print(usage)
    print(f"\nKeys and their defaults (conf/{name}.yaml):\n")
    print((CONFIG_DIR / f"{name}.yaml").read_text())


def wants_help(args: Sequence[str]) -> bool:
    return any(arg in ("-h", "--help") for arg in args)


def generator_source(cfg: DictConfig) -> str | Path:
    """What a tool opens: `ckpt_path` (a training checkpoint, an exported generator or a generator folder: always a
    path, `ckpt_path=cgan` too), else `model` (a bundled model's name), else the bundled conditional GAN. Which is
    which is `pretrained.bundled_name`'s rule: a name is a str, a path a `Path`."""
    if cfg.ckpt_path is not None and cfg.model is not None:
        raise UserError(f"give model=NAME (a bundled model) or ckpt_path=PATH, not both (got model={cfg.model} and "
                        f"ckpt_path={cfg.ckpt_path})")
    if cfg.ckpt_path is not None:
        return Path(text(cfg, "ckpt_path"))
    if cfg.model is not None:
        return text(cfg, "model", list(BUNDLED))
    return DEFAULT_MODEL


def class_request(cfg: DictConfig, key: str) -> int | str | None:
    """A class key before the model is known: 'all', null, an index or a class name (checked against the model's
    dataset later)."""
    value = cfg.get(key)
    if value is None or is_int(value) or (isinstance(value, str) and value):
        return value
    raise UserError(f"{key} must be 'all', a class index or a class name, got {value!r}")


def numbers(cfg: DictConfig, key: str) -> list[float] | None:
    """A list of numbers (e.g. `continuous=[0.5,-1]`), or null; how many, and their range, are checked against the
    model later."""
    value = cfg[key]
    if value is None:
        return None
    values = OmegaConf.to_container(value) if OmegaConf.is_list(value) else None
    if values is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise UserError(f"{key} must be a list of numbers, e.g. {key}=[0.5,-1], or null, got {value!r}")
    return [float(v) for v in values]


def device(cfg: DictConfig, key: str) -> torch.device:
    name = text(cfg, key)
    try:
        value = torch.device(name)
    except RuntimeError:
        raise UserError(f"{key}={name}: not a device name (cpu, cuda, cuda:1, ...)") from None
    if value.type not in ("cpu", "cuda"):
        raise UserError(f"{key}={name}: not a device this tool runs on; use {key}=cpu or {key}=cuda")
    if value.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}={name}: CUDA is not available here; use {key}=cpu")
    if value.type == "cuda" and value.index is not None and value.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UserError(f"{key}={name}: there are {count} GPUs here (cuda:0 to cuda:{count - 1}); choose one of them")
    return value
