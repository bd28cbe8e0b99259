"""A network as plain data (`{"_target_": class path, **kwargs}`), so checkpoints can rebuild it safely.

Checkpoints are loaded with `weights_only=True`, which admits only tensors and primitive containers; the
spec is the recipe in that form. Only the project's generator and discriminator classes, listed by name in
`NETWORKS`, are ever built from one: a crafted checkpoint cannot name any other callable. (A prefix check on the
dotted path would not do: `hydra.utils.get_class` follows attributes through imported modules, so
`gan_lightning.networks.common.torch.ctypes.util.subprocess.Popen` is subprocess.Popen.)
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from gan_lightning.errors import UserError
from gan_lightning.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lightning.networks.mlp import MLPDiscriminator, MLPGenerator


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# every class a spec may name, under the `_target_` that `network_spec` writes for it
NETWORKS: dict[str, type[nn.Module]] = {
    _path(cls): cls for cls in (DCGANGenerator, DCGANDiscriminator, MLPGenerator, MLPDiscriminator)
}


def _plain(value: Any) -> Any:
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, tuple):
        return list(value)
    return value


def network_spec(factory: Callable[..., nn.Module], **kwargs: Any) -> dict[str, Any]:
    """The spec of `factory(**kwargs)`, where `factory` is a network class or a partial of one."""
    func, bound = (factory.func, factory.keywords) if isinstance(factory, functools.partial) else (factory, {})
    spec = {"_target_": _path(func)}
    spec.update({k: _plain(v) for k, v in {**bound, **kwargs}.items()})
    return spec


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    target = spec.get("_target_", "")
    cls = NETWORKS.get(target) if isinstance(target, str) else None
    if cls is None:
        raise UserError(
            f"refusing to build network {target!r}: not one of this project's networks ({', '.join(NETWORKS)})"
        )
    try:
        return cls(**{k: v for k, v in spec.items() if k != "_target_"})
    except (ValueError, TypeError) as e:
        raise UserError(f"cannot build network {target}: {e}") from None
