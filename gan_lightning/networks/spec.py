"""A network as plain data (`{"_target_": class path, **kwargs}`), so checkpoints can rebuild it safely.

Checkpoints are loaded with `weights_only=True`, which admits only tensors and primitive containers; the
spec is the recipe in that form. Only classes inside `gan_lightning.networks` are ever built from one, so
a crafted checkpoint cannot name an arbitrary callable.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any

from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import nn

from gan_lightning.errors import UserError

NETWORKS_PACKAGE = "gan_lightning.networks"


def _plain(value: Any) -> Any:
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, tuple):
        return list(value)
    return value


def network_spec(factory: Callable[..., nn.Module], **kwargs: Any) -> dict[str, Any]:
    """The spec of `factory(**kwargs)`, where `factory` is a network class or a partial of one."""
    func, bound = (factory.func, factory.keywords) if isinstance(factory, functools.partial) else (factory, {})
    spec = {"_target_": f"{func.__module__}.{func.__qualname__}"}
    spec.update({k: _plain(v) for k, v in {**bound, **kwargs}.items()})
    return spec


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    target = spec.get("_target_", "")
    if not isinstance(target, str) or not target.startswith(NETWORKS_PACKAGE + "."):
        raise UserError(f"refusing to build network {target!r}: only classes from {NETWORKS_PACKAGE} are allowed")
    try:
        cls = get_class(target)
        return cls(**{k: v for k, v in spec.items() if k != "_target_"})
    except (ImportError, ValueError, TypeError) as e:
        raise UserError(f"cannot build network {target}: {e}") from None
