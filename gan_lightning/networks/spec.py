"""A network as plain data (`{"name": registered name, **kwargs}`), so checkpoints and exports can rebuild it safely.

Checkpoints are loaded with `weights_only=True`, which admits only tensors and primitive containers; the spec is the
recipe in that form. A spec names its class by the name it is registered under in `NETWORKS` (`"conv_generator"`),
never by its module path, so moving a class in the package never breaks a saved model. Only the classes listed there
are ever built from a spec: a crafted file cannot name any other callable. (A prefix check on a dotted path would not
do: `hydra.utils.get_class` follows attributes through imported modules, so
`gan_lightning.networks.common.torch.ctypes.util.subprocess.Popen` is subprocess.Popen.)

Files written by gan-lightning 0.1.0 named the class by its module path under `_target_`; `normalize_spec` reads
those as the name they stand for.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from gan_lightning.errors import UserError
from gan_lightning.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lightning.networks.mlp import MLPDiscriminator, MLPGenerator

# every class a spec may name, by its registered name
NETWORKS: dict[str, type[nn.Module]] = {
    "mlp_generator": MLPGenerator,
    "mlp_discriminator": MLPDiscriminator,
    "conv_generator": DCGANGenerator,
    "conv_discriminator": DCGANDiscriminator,
}
NAMES = {cls: name for name, cls in NETWORKS.items()}
# what a spec read from a file may ask for, checked before anything is allocated: every integer in it (a width, a
# size), every count of layers (`n_extra_layers`, the length of a list such as `hidden_dims`), and the parameters of
# the network it describes (the bundled ones have 0.9 to 3.5 million; 200 million fp32 parameters are 800 MB)
MAX_SIZE, MAX_DEPTH, MAX_PARAMETERS = 65536, 32, 200_000_000
# the module paths that files of gan-lightning 0.1.0 recorded under `_target_`, and the names they stand for
LEGACY_TARGETS = {f"gan_lightning.networks.{cls.__module__.rsplit('.', 1)[1]}.{cls.__qualname__}": name
                  for name, cls in NETWORKS.items()}


def _plain(value: Any) -> Any:
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, tuple):
        return list(value)
    return value


def network_spec(factory: Callable[..., nn.Module], **kwargs: Any) -> dict[str, Any]:
    """The spec of `factory(**kwargs)`, where `factory` is a registered network class or a partial of one."""
    func, bound = (factory.func, factory.keywords) if isinstance(factory, functools.partial) else (factory, {})
    assert func in NAMES, f"{func} is not a registered network (networks.spec.NETWORKS)"
    return {"name": NAMES[func], **{k: _plain(v) for k, v in {**bound, **kwargs}.items()}}


def normalize_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`spec` with its class by registered name, first: a 0.1.0 spec's `_target_` module path becomes its `name`."""
    spec = dict(spec)
    target = spec.pop("_target_", None)
    name = spec.pop("name", LEGACY_TARGETS.get(target, target) if isinstance(target, str) else target)
    return {"name": name, **spec}  # a name that is not registered is refused by build_network, naming it


def _sizes(value: Any) -> list[int]:
    if isinstance(value, list | tuple):
        return [i for v in value for i in _sizes(v)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


def check_sizes(name: str, spec: Mapping[str, Any]) -> None:
    """Every integer of a network's settings at most `MAX_SIZE`, every count of layers at most `MAX_DEPTH`."""
    for key, value in spec.items():
        depth = value if "layers" in key else len(value) if isinstance(value, list | tuple) else 0
        if not isinstance(depth, int) or not 0 <= depth <= MAX_DEPTH or any(
                not 0 <= size <= MAX_SIZE for size in _sizes(value)):
            raise UserError(f"{name}: {key}={value!r} is beyond what a network can have (sizes up to {MAX_SIZE}, up "
                            f"to {MAX_DEPTH} layers)")


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    """The network a spec read from a file describes, once its sizes are known to be sane: every integer at most
    `MAX_SIZE`, every count of layers at most `MAX_DEPTH`, and at most `MAX_PARAMETERS` parameters, counted on the meta device (where building allocates
    nothing), so a crafted file cannot make the loader allocate gigabytes."""
    spec = normalize_spec(spec)
    name = spec.pop("name")
    cls = NETWORKS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise UserError(f"refusing to build network {name!r}: not one of this project's networks ({', '.join(NETWORKS)})")
    try:
        check_sizes(name, spec)
    except UserError as e:
        raise UserError(f"refusing to build network {e}; the file is damaged or crafted") from None
    try:
        with torch.device("meta"):
            parameters = sum(p.numel() for p in cls(**spec).parameters())
        if parameters > MAX_PARAMETERS:
            raise UserError(f"refusing to build network {name}: {parameters:,} parameters, more than the "
                            f"{MAX_PARAMETERS:,} any network of this project has; the file is damaged or crafted")
        return cls(**spec)
    except (ValueError, TypeError, RuntimeError) as e:
        raise UserError(f"cannot build network {name}: {str(e).splitlines()[0]}") from None


def legacy_variant(generator_spec: Mapping[str, Any]) -> str:
    """The variant (`options.VARIANTS`) of a generator in a file of gan-lightning 0.1.0, which recorded none: the
    fully connected generator was the Vanilla GAN's; a convolutional one with classes the conditional GAN's."""
    if normalize_spec(generator_spec)["name"] == "mlp_generator":
        return "vanilla"
    return "cgan" if generator_spec.get("num_classes", 0) > 0 else "dcgan"
