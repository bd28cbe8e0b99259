"""Loading what a training run saved, without unpickling arbitrary objects."""

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from gan_lightning.data.datasets import DATASETS, IMAGE_FOLDER
from gan_lightning.errors import UserError
from gan_lightning.files import check_writable, write_file
from gan_lightning.networks.spec import build_network, legacy_variant, normalize_spec


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint as a dict, loaded with `weights_only=True`: tensors and plain containers only."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if not zipfile.is_zipfile(path):  # torch.save writes zip archives: not unsafe, just not a checkpoint
            raise UserError(
                f"cannot read checkpoint {path} (truncated or not a checkpoint: no torch.save archive)"
            ) from None
        # torch's message goes on to advise weights_only=False, the one thing not to do with a file of unknown
        # origin: only what the file holds is said (e.g. "Unsupported global: GLOBAL builtins.print")
        found = re.search(r"Unsupported (?:global|operand): [A-Z]* ?[\w.]+", str(e))
        held = f": {found.group(0).strip()}" if found else ""
        raise UserError(f"refusing to load {path}: it holds code or objects, not only weights{held}; a "
                        "gan-lightning checkpoint never does, so the file is damaged or not one") from None
    except Exception as e:  # noqa: BLE001 RuntimeError, EOFError, BadZipFile... whatever a random file trips
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not zipfile.is_zipfile(path):
            reason = "no torch.save archive"
        raise UserError(f"cannot read checkpoint {path} (truncated or not a checkpoint: {reason})") from None
    if not isinstance(checkpoint, dict) or "networks" not in checkpoint or "state_dict" not in checkpoint:
        raise UserError(f"{path} is not a gan-lightning checkpoint (no networks/state_dict entries)")
    return upgrade(checkpoint)


def upgrade(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint in today's layout: one of gan-lightning 0.1.0, which recorded no variant and kept the sample
    grid's labels (`fixed_labels`) for every model, gets its variant, and the grid's labels where the conditional GAN
    keeps them now (`fixed_code`). Network specs are read by `normalize_spec` wherever they are used."""
    if "variant" not in checkpoint:
        checkpoint["variant"] = checkpoint_variant(checkpoint)
        labels = checkpoint["state_dict"].pop("fixed_labels", None)
        if labels is not None and checkpoint["variant"] == "cgan":
            checkpoint["state_dict"]["fixed_code"] = labels
    return checkpoint


def _shape(shape: tuple[int, ...] | None) -> str:
    return "missing" if shape is None else f"shape {tuple(shape)}" if shape else "a scalar"


def check_fits(model: nn.Module, checkpoint: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume `model` from a checkpoint whose weights it cannot take (another model, other sizes), naming
    the first differences, before training starts (Lightning would stop with a page of "size mismatch")."""
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    saved = {name: tuple(value.shape) for name, value in checkpoint["state_dict"].items() if torch.is_tensor(value)}
    if saved == expected:
        return
    differences = []
    theirs = checkpoint.get("networks")
    variant = checkpoint_variant(checkpoint)
    if variant != model.name:
        differences.append(f"model: {variant!r} in the checkpoint, {model.name!r} here")
    for network, spec in model.networks.items():  # first the settings that made the networks differ
        other = theirs.get(network) if isinstance(theirs, dict) else None
        if not isinstance(other, dict):
            continue
        other = normalize_spec(other)
        for key in sorted(set(spec) | set(other)):
            if spec.get(key) != other.get(key):
                differences.append(f"{network}.{key}: {other.get(key)!r} in the checkpoint, {spec.get(key)!r} here")
    if not differences:  # else the weights themselves (e.g. an EMA generator on one side only)
        for name in sorted(saved.keys() | expected.keys()):
            if saved.get(name) != expected.get(name):
                there, here = (_shape(shapes.get(name)) for shapes in (saved, expected))
                differences.append(f"{name}: {there} in the checkpoint, {here} here")
    raise UserError(
        f"ckpt_path={path} was saved by another model ({'; '.join(differences[:3])}); resume it with the model "
        "settings it was trained with"
    )


def checkpoint_variant(checkpoint: dict[str, Any]) -> str | None:
    """The variant a checkpoint or export records (`options.VARIANTS`); for a file of gan-lightning 0.1.0, which
    recorded none, the one its generator belongs to (None: no generator to tell by)."""
    if isinstance(checkpoint.get("variant"), str):
        return checkpoint["variant"]
    networks = checkpoint.get("networks")
    generator = networks.get("generator") if isinstance(networks, dict) else None
    return legacy_variant(generator) if isinstance(generator, dict) else None


def _generator_spec(checkpoint: dict[str, Any], path: Path) -> dict[str, Any]:
    networks = checkpoint["networks"]
    spec = networks.get("generator") if isinstance(networks, dict) else None
    if not isinstance(spec, dict) or not all(key in spec for key in ("noise_dim", "image_shape", "num_classes")):
        raise UserError(f"{path} is not a gan-lightning checkpoint (no usable generator entry in networks)")
    return spec


def read_generator(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The generator of a checkpoint, in eval mode, and what describes it (noise_dim, num_classes, ..., spec).

    `path` is a training checkpoint or a generator exported as one `.pt` file (`EXPORT_FORMAT`)."""
    return _build_generator(load_checkpoint(path, map_location), Path(path))


def _generator_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The generator's state dict: the moving average of its weights when the run kept one (what it sampled and
    was evaluated with), else the trained weights."""
    state_dict = checkpoint["state_dict"]
    prefix = "generator_ema." if any(k.startswith("generator_ema.") for k in state_dict) else "generator."
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def state_dict_problem(error: RuntimeError) -> str:
    """The first line of what `load_state_dict` found wrong (its message lists every tensor, one per line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else lines[0] if lines else "mismatched tensors"


def _build_generator(checkpoint: dict[str, Any], path: Path) -> tuple[nn.Module, dict[str, Any]]:
    spec = _generator_spec(checkpoint, path)
    generator = build_network(spec)
    weights = _generator_weights(checkpoint)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as e:
        raise UserError(f"{path}: generator weights do not fit its recorded architecture ({state_dict_problem(e)})") from None
    info = {key: spec[key] for key in ("noise_dim", "image_shape", "num_classes")}
    info.update(variant=checkpoint_variant(checkpoint), spec=normalize_spec(spec))
    if isinstance(checkpoint.get("codes"), dict):  # what G reads after the noise, beyond it (an InfoGAN's codes)
        info["codes"] = checkpoint["codes"]
    info["dataset"] = dataset_name(checkpoint.get("dataset"), path)
    if isinstance(checkpoint.get("class_names"), list):
        info["class_names"] = [str(name) for name in checkpoint["class_names"]]
    return generator.eval(), info


def dataset_name(recorded: Any, path: Path) -> str:
    """The dataset a generator file records (`data.DATASETS`); none recorded: MNIST (files of gan-lightning 0.2 and
    before)."""
    if recorded is None:
        return "mnist"
    if recorded not in (*DATASETS, IMAGE_FOLDER):
        raise UserError(f"{path} was trained on dataset {recorded!r}, which this version of gan-lightning does not know "
                        f"({', '.join(DATASETS)}); upgrade the package")
    return recorded


# an exported generator as one torch file: the checkpoint's own layout (`networks.generator`, `state_dict` with
# `generator.*` keys), so `read_generator` reads both alike
EXPORT_FORMAT = "gan-lightning-generator"


def save_generator_file(generator: nn.Module, variant: str, spec: dict[str, Any], out_path: str | Path,
                        codes: dict[str, int] | None = None, dataset: str = "mnist",
                        class_names: list[str] | None = None) -> Path:
    """Save a generator of `variant` (with its latent `codes`, if any) that learnt `dataset` on its own as one torch
    file, written atomically. Returns the path written."""
    out_path = check_writable(out_path, "out", folder=False, example="generator.pt")
    exported = {
        "format": EXPORT_FORMAT,
        "variant": variant,
        "networks": {"generator": spec},
        "state_dict": {f"generator.{k}": v.detach().cpu() for k, v in generator.state_dict().items()},
        **({"codes": codes} if codes else {}),
        # MNIST is what a file without a dataset holds (gan-lightning 0.2 and before): an export of a bundled model
        # stays byte for byte the bundled model
        **({"dataset": dataset} if dataset != "mnist" else {}),
        **({"class_names": class_names} if class_names else {}),
    }
    write_file(out_path, lambda file: torch.save(exported, file))
    return out_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made crash-safe by `gan_lightning.files.write_file`: a kill at any moment
    leaves either the old or the new checkpoint, never a torn one. (Lightning's own writer stages the file in the
    system temp dir and moves it: a copy across filesystems, and no fsync.) Its reader is the project's
    `load_checkpoint`: tensors only, one-line errors, and files of earlier versions upgraded (`upgrade`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        write_file(path, lambda file: torch.save(checkpoint, file), key="checkpoint")

    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        """The checkpoint a run resumes from, read as every tool of the project reads one (`load_checkpoint`)."""
        assert weights_only is not False, "a checkpoint is loaded with weights_only"
        return load_checkpoint(path, map_location if map_location is not None else "cpu")
