"""The one set of checks for values a user gives: each takes a config and a dotted key, returns the value, or raises
a `UserError` naming the key and what it takes. The Python API checks its arguments with the same words: `integer`,
`positive_number` and `number` each have a `*_value` form that takes the value itself.

Training checks its Hydra config with these (`config.validate`), the tools around a generator their own
(`tool_config`); code below the entry points asserts its assumptions instead of checking again.

A key that the config does not hold at all (a callback removed with `~callbacks.x`) is not checked: the checks
return None for it. A key set to null is refused, unless the check says `optional=True` (null then means "off" or
"none"), and returned as None.
"""

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_lightning.errors import UserError

# every seed of the project (training, sampling, the demo's): what `lightning.seed_everything` and NumPy accept
MAX_SEED = 2**32 - 1

_ABSENT = object()


def _select(cfg: DictConfig, key: str) -> Any:
    """The value at `key`, or `_ABSENT` when the config does not hold the key."""
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except OmegaConfBaseException as e:
        raise UserError(f"{key}: {str(e).splitlines()[0]}") from None


def value(cfg: DictConfig, key: str) -> Any:
    """The value at `key` (None when the config does not hold the key); a missing mandatory value (`???`) or a broken
    interpolation is a `UserError`."""
    found = _select(cfg, key)
    return None if found is _ABSENT else found


def _given(cfg: DictConfig, key: str, optional: bool, what: str) -> bool:
    """Whether there is a value to check: False for an absent key, or for null where null is allowed."""
    held = _select(cfg, key)
    if held is None and not optional:
        raise UserError(f"{key} must be {what}, got null")
    return held is not _ABSENT and held is not None


def is_int(found: Any) -> bool:
    return isinstance(found, Integral) and not isinstance(found, bool)


def is_number(found: Any) -> bool:
    try:
        return isinstance(found, Real) and not isinstance(found, bool) and math.isfinite(found)
    except OverflowError:  # an integer beyond any float
        return False


def _integer_words(minimum: int | None, maximum: int | None) -> str:
    if minimum == 1 and maximum is None:
        return "a positive integer"
    if maximum is None:
        return f"an integer >= {minimum}" if minimum is not None else "an integer"
    return f"an integer from {minimum} to {maximum}"


def integer(cfg: DictConfig, key: str, minimum: int | None = None, maximum: int | None = None,
            optional: bool = False) -> int | None:
    if not _given(cfg, key, optional, _integer_words(minimum, maximum)):
        return None
    return integer_value(value(cfg, key), key, minimum, maximum, optional)


def integer_value(found: Any, key: str, minimum: int | None = None, maximum: int | None = None,
                  optional: bool = False) -> int | None:
    if found is None and optional:
        return None
    if not is_int(found) or (minimum is not None and found < minimum) or (maximum is not None and found > maximum):
        raise UserError(f"{key} must be {_integer_words(minimum, maximum)}{', or null' if optional else ''}, "
                        f"got {found!r}")
    return int(found)


def seed(cfg: DictConfig, key: str, optional: bool = False) -> int | None:
    return integer(cfg, key, 0, MAX_SEED, optional)


def seed_value(found: Any, key: str = "seed", optional: bool = False) -> int | None:
    return integer_value(found, key, 0, MAX_SEED, optional)


def positive_number(cfg: DictConfig, key: str, maximum: float | None = None, optional: bool = False) -> float | None:
    if not _given(cfg, key, optional, "a positive number"):
        return None
    return positive_number_value(value(cfg, key), key, maximum, optional)


def positive_number_value(found: Any, key: str, maximum: float | None = None, optional: bool = False) -> float | None:
    if found is None and optional:
        return None
    if not (is_number(found) and found > 0):
        raise UserError(f"{key} must be a positive number{', or null' if optional else ''}, got {found!r}")
    if maximum is not None and found > maximum:
        raise UserError(f"{key} must be at most {maximum}, got {found!r}")
    return float(found)


def number(cfg: DictConfig, key: str, minimum: float = 0.0, below: float | None = None, maximum: float | None = None,
           meaning: str = "", optional: bool = False) -> float | None:
    """A number >= `minimum`, and < `below` or <= `maximum`; `meaning` says what a value means, e.g. "0 = off"."""
    if below is not None:
        what = f"a number in [{minimum:g}, {below:g})"
    else:
        what = f"a number >= {minimum:g}" if maximum is None else f"a number from {minimum:g} to {maximum:g}"
    what += f" ({meaning})" if meaning else ""
    if not _given(cfg, key, optional, what):
        return None
    found = value(cfg, key)
    if not (is_number(found) and found >= minimum and (below is None or found < below)
            and (maximum is None or found <= maximum)):
        raise UserError(f"{key} must be {what}, got {found!r}")
    return float(found)


def boolean(cfg: DictConfig, key: str) -> bool | None:
    if not _given(cfg, key, False, "true or false"):
        return None
    found = value(cfg, key)
    if not isinstance(found, bool):
        raise UserError(f"{key} must be true or false, got {found!r}")
    return found


def text(cfg: DictConfig, key: str, choices: Sequence[str] | None = None, optional: bool = False) -> str | None:
    """A word or a path (a number or a list is a mistake: YAML read a name as something else), one of `choices`
    when given."""
    found = value(cfg, key)
    if found is None and optional:
        return None
    if found is None or (found == "" and not optional):
        raise UserError(f"{key} is required: add {key}=...")
    if not isinstance(found, str) or not found:
        raise UserError(f"{key} must be a word or a path, got {found!r}{quote_hint(key, found)}")
    if choices is not None and found not in choices:
        raise UserError(f"{key}={found!r} is not one of: {', '.join(choices)}")
    return found


def quote_hint(key: str, found: Any) -> str:
    """How to give a name that YAML reads as a number or a boolean."""
    if isinstance(found, (bool, int, float)):
        return f"; to mean the name {found!r}, quote it: {key}=\"'{found}'\""
    return ""
