"""Loading what a training run saved, without unpickling arbitrary objects."""

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_lightning.errors import UserError
from gan_lightning.networks.spec import build_network


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint as a dict, loaded with `weights_only=True`: tensors and plain containers only."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe content"
        raise UserError(f"refusing to load {path}: it holds more than weights ({first_line})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise UserError(f"cannot read checkpoint {path} (truncated or not a checkpoint: {e})") from None
    if not isinstance(checkpoint, dict) or "networks" not in checkpoint or "state_dict" not in checkpoint:
        raise UserError(f"{path} is not a gan-lightning checkpoint (no networks/state_dict entries)")
    return checkpoint


def load_generator(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The generator of a checkpoint, in eval mode, and what describes it (noise_dim, num_classes, ...)."""
    checkpoint = load_checkpoint(path, map_location)
    spec = checkpoint["networks"]["generator"]
    generator = build_network(spec)
    prefix = "generator."
    weights = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    try:
        generator.load_state_dict(weights)
    except RuntimeError as e:
        raise UserError(f"{path}: generator weights do not fit its recorded architecture ({e})") from None
    info = {key: spec[key] for key in ("noise_dim", "image_shape", "num_classes")}
    info["conditional"] = spec["num_classes"] > 0
    return generator.eval(), info
