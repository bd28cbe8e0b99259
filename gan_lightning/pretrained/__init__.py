"""Generators as a folder that a model hub takes as it is, and the three that ship inside the package.

A folder holds `config.json` (what rebuilds the network: its spec, the dtype of the stored weights and the
SHA-256 of the weights file) and `model.safetensors` (the weights), the layout of a Hugging Face model
repository. Loading never runs code: safetensors holds tensors only, config.json is data, and the network is built
through the registry of `networks.spec`. The weights' hash is checked against config.json on every load, and the
bundled models' config.json files are pinned by hash below, so every file of a bundled model is checked.

The bundled models (`BUNDLED`) live in this package's sub-folders, each with its model card (README.md). A bare name
of one (`"cgan"`) always means the bundled model (`bundled_name`); `./cgan` means the path. Nothing writes into those
folders but `package_pretrained`, and an export replaces an earlier one only when asked (`overwrite`).
"""

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from gan_lightning.checkpoint import dataset_name, read_generator, save_generator_file, state_dict_problem
from gan_lightning.errors import UserError
from gan_lightning.files import Staging, check_writable
from gan_lightning.networks.spec import build_network, legacy_variant, normalize_spec
from gan_lightning.options import VARIANTS
from gan_lightning.version import __version__

FORMAT = "gan-lightning-generator"
# 2: the variant recorded, networks by registered name (0.2.0); 1: networks by module path (0.1.0), still read
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CONFIG, WEIGHTS = "config.json", "model.safetensors"
# the files a folder written by `save_pretrained` may hold besides its two own: a model card and its picture
CARD_FILES = ("README.md", "samples.png", "eval.json")

BUNDLED_DIR = Path(__file__).parent
# the models that ship, each in BUNDLED_DIR/<name>/, with the SHA-256 of its config.json (which holds the SHA-256
# of its weights); `scripts/package_pretrained.py` prints it
BUNDLED_CONFIG_SHA256: dict[str, str] = {
    "vanilla": "a4ad69f4055524931ad0c80bd21a1a944ae8377e5a14a6d09e7cb8a4cf173d07",
    "dcgan": "cfea0ca9aabd2c08fb75f655b82aaba20e4c4bd383b94cbdcf343882925948f9",
    "cgan": "7ad020c313cf2d71d57ab260fb9ae4d5a2be14e1d70f03e859c3d25b3a9d2e22",
    "infogan": "a37c43a3ec51fb88f39a347f35b776aed9b9bd7b00c4601e6c40c6d52e4188b3",
    "fashion_cgan": "5a484d88b1e7ce4c4ba658cf8c97763bc9bd4c425715b2df1ba6a295d640865d",
}
BUNDLED = tuple(BUNDLED_CONFIG_SHA256)
# what a tool opens when given no checkpoint and no model name
DEFAULT_MODEL = "cgan"

DTYPES = {"float32": torch.float32, "float16": torch.float16}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundled_folder(name: str) -> Path:
    """The folder of bundled model `name`."""
    if name not in BUNDLED:
        raise UserError(f"no bundled model {name!r}; the bundled models are {', '.join(BUNDLED)}")
    folder = BUNDLED_DIR / name
    if not (folder / CONFIG).is_file():
        raise UserError(f"the bundled {name} model is not in this installation ({folder}); reinstall the package")
    return folder


def bundled_name(source: str | os.PathLike) -> str | None:
    """The bundled model that `source` names, or None when it names a file or folder: the one rule of the API and
    every tool. A bare name of `BUNDLED` (a str) is the bundled model, even where the current folder holds a file or
    folder of that name (`load` says so); `./cgan`, any other path, and any `Path` are paths."""
    return source if isinstance(source, str) and source in BUNDLED else None


def load(source: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The generator of `source` in eval mode, and what describes it (noise_dim, image_shape, num_classes,
    conditional, spec). `source` is a bundled model's name, a folder written by `save_pretrained`, a training
    checkpoint or a generator exported as one `.pt` file."""
    if not isinstance(source, str | os.PathLike):
        raise UserError(f"source must be a bundled model's name ({', '.join(BUNDLED)}) or a path, got {source!r}")
    if (name := bundled_name(source)) is not None:
        if Path(name).exists():
            kind = "folder" if Path(name).is_dir() else "file"
            print(f"note: {name} is the bundled model, not the {kind} ./{name} here; load that by its path, ./{name} "
                  f"(ckpt_path=./{name} in the tools)", file=sys.stderr)
        return load_pretrained(bundled_folder(name), map_location, config_sha256=BUNDLED_CONFIG_SHA256[name])
    path = Path(source)
    if path.is_dir():
        return load_pretrained(path, map_location)
    if not path.exists() and isinstance(source, str) and os.sep not in source and "." not in source:
        raise UserError(f"{source!r} is neither a bundled model ({', '.join(BUNDLED)}) nor a file or folder")
    return read_generator(path, map_location)


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise UserError(f"{path.parent} is not a gan-lightning generator folder: {path.name} ({what}) is missing")
    return path.read_bytes()


def load_pretrained(
    folder: str | os.PathLike, map_location: str | torch.device = "cpu", config_sha256: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """A generator folder (config.json + model.safetensors), each file checked against its recorded hash."""
    folder = Path(folder)
    raw_config = _read(folder / CONFIG, "what rebuilds the network")
    if config_sha256 is not None and sha256(raw_config) != config_sha256:
        raise UserError(f"{folder / CONFIG} is not the file that shipped (its SHA-256 differs); reinstall the package")
    try:
        config = json.loads(raw_config)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{folder / CONFIG} is not valid JSON ({e}); the folder is damaged") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"{folder / CONFIG} is not a gan-lightning generator config (no format: {FORMAT})")
    if config.get("format_version") not in READABLE_VERSIONS:
        raise UserError(f"{folder / CONFIG} has format version {config.get('format_version')!r}; this version of "
                        f"gan-lightning reads versions up to {FORMAT_VERSION}: upgrade the package")
    spec, expected = config.get("generator"), config.get("sha256", {}).get(WEIGHTS)
    if not isinstance(spec, dict) or not all(key in spec for key in ("noise_dim", "image_shape", "num_classes")):
        raise UserError(f"{folder / CONFIG} has no usable generator entry")
    raw_weights = _read(folder / WEIGHTS, "the weights")
    if sha256(raw_weights) != expected:
        raise UserError(f"{folder / WEIGHTS} does not match the SHA-256 in {CONFIG} (truncated, damaged or replaced); "
                        "export the generator again")
    try:
        weights = safetensors.torch.load(raw_weights)
    except Exception as e:  # noqa: BLE001 SafetensorError, or whatever a foreign file with a matching hash trips
        raise UserError(f"{folder / WEIGHTS} is not a safetensors file ({str(e).splitlines()[0]})") from None
    generator = build_network(spec)
    try:
        generator.load_state_dict(weights)  # copies into the network's float32 parameters
    except RuntimeError as e:
        raise UserError(f"{folder / WEIGHTS}: the weights do not fit the network of {CONFIG} ({state_dict_problem(e)})") from None
    variant = config.get("variant", legacy_variant(spec))  # gan-lightning 0.1.0 recorded none
    info = {key: spec[key] for key in ("noise_dim", "image_shape", "num_classes")}
    info.update(variant=variant, spec=normalize_spec(spec))
    if isinstance(config.get("codes"), dict):  # what G reads after the noise, beyond it (an InfoGAN's codes)
        info["codes"] = config["codes"]
    info["dataset"] = dataset_name(config.get("dataset"), folder / CONFIG)
    if isinstance(config.get("class_names"), list):
        info["class_names"] = [str(name) for name in config["class_names"]]
    return generator.to(map_location).eval(), info


def _names(names: list[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _refuse_package_folder(path: Path) -> None:
    """The bundled models' folders are the package's own: only `package_pretrained` rebuilds them."""
    if path.resolve().is_relative_to(BUNDLED_DIR.resolve()):
        raise UserError(f"out={path} is inside the installed package ({BUNDLED_DIR}), where the bundled models live "
                        "(only scripts/package_pretrained.py rebuilds them); pick another folder")


def save_pretrained(
    generator: nn.Module, variant: str, spec: dict[str, Any], folder: str | os.PathLike, dtype: str = "float32",
    codes: dict[str, int] | None = None, overwrite: bool = False, _package: bool = False, dataset: str = "mnist",
    class_names: list[str] | None = None,
) -> Path:
    """Write `generator`, of `variant` (with its latent `codes`, if any) that learnt `dataset`, as a folder:
    config.json + model.safetensors (floating-point tensors as `dtype`).

    A new or empty folder is written; a folder holding an earlier export (either of the two files) is refused
    unless `overwrite`, which replaces those two files and nothing else (a model card there stays, and the line
    that says what was replaced points at it); any other folder is refused. `_package`: `package_pretrained`
    writing a bundled model's folder. Both files are written through `gan_lightning.files.Staging`, the weights
    renamed into place before the config, and a config never names weights other than its own, so a reader sees
    either folder whole or a hash mismatch, never wrong weights."""
    assert dtype in DTYPES, dtype
    folder = check_writable(folder, "out", folder=True)
    if not _package:
        _refuse_package_folder(folder)
    held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    replaced = [name for name in (CONFIG, WEIGHTS) if name in held]
    if held and not replaced:
        raise UserError(f"out={folder} holds other files ({_names(held)}); give a new or empty folder")
    if replaced and not overwrite:
        raise UserError(f"out={folder} holds an export already ({_names(held)}); give a new folder, or "
                        f"overwrite=true to replace its {CONFIG} and {WEIGHTS} (every other file stays)")
    tensors = {
        name: (value.to(DTYPES[dtype]) if value.is_floating_point() else value).detach().cpu().contiguous()
        for name, value in generator.state_dict().items()
    }
    weights = safetensors.torch.save(tensors, metadata={"format": FORMAT})
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "variant": variant,
        "model": VARIANTS.get(variant, variant),
        "generator": normalize_spec(spec),
        **({"codes": codes} if codes else {}),
        # MNIST is what a file without a dataset holds (gan-lightning 0.2 and before): an export of a bundled model
        # stays byte for byte the bundled model
        **({"dataset": dataset} if dataset != "mnist" else {}),
        **({"class_names": class_names} if class_names else {}),
        "dtype": dtype,
        "sha256": {WEIGHTS: sha256(weights)},
        "library": "gan-lightning",
        "library_version": __version__,
    }
    try:
        with Staging("out") as staging:  # the weights are renamed into place before the config
            staging.file(folder / WEIGHTS).write_bytes(weights)
            staging.file(folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    except OSError as e:
        raise UserError(f"out={folder}: cannot write the generator ({e.strerror or e}); choose another folder") from None
    if replaced:
        kept = [name for name in held if name not in replaced]
        card = " (a model card there describes the old weights)" if set(kept) & set(CARD_FILES) else ""
        print(f"out={folder}: replaced {', '.join(replaced)}" + (f"; kept {_names(kept)}{card}" if kept else ""),
              file=sys.stderr)
    return folder


def export(source: str | os.PathLike, out: str | os.PathLike, dtype: str = "float32", overwrite: bool = False) -> Path:
    """The generator of `source` (see `load`) on its own: a folder (config.json + model.safetensors; an earlier export
    there is replaced only with `overwrite`), or one torch file when `out` ends in `.pt`. Returns the path written."""
    out = check_writable(out, "out", folder=Path(out).suffix != ".pt", example="generator.pt")
    _refuse_package_folder(out)
    name = bundled_name(source)
    origin = BUNDLED_DIR / name if name is not None else Path(source)
    if origin.exists() and out.exists() and out.resolve() == origin.resolve():
        raise UserError(f"out={out} is the generator's own source; write the export somewhere else")
    generator, info = load(source)
    if out.suffix == ".pt":
        return save_generator_file(generator, info["variant"], info["spec"], out, info.get("codes"), info["dataset"],
                                   info.get("class_names"))
    return save_pretrained(generator, info["variant"], info["spec"], out, dtype, info.get("codes"), overwrite,
                           dataset=info["dataset"], class_names=info.get("class_names"))
