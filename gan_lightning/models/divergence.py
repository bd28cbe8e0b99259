"""Watching the losses for NaN and inf without making a GPU wait.

Reading a value of a GPU tensor on the host (`bool(t)`, `t.item()`) waits for every queued kernel: done after
every D and G step, it would keep the GPU idle between steps. So each loss's finiteness is folded into a tensor
on the loss's device (no copy), with the host keeping only where each watched loss came from, and the host reads
that tensor at `check()`, which the training module calls where a read costs nothing or is needed anyway: after
each loss on a CPU, and on a GPU where Lightning writes its logs, at the end of each epoch and before any
checkpoint is saved (so a checkpoint never holds the weights of a diverged step).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Divergence:
    """The first non-finite loss since the last check: which loss, where, and its value."""

    name: str
    epoch: int
    batch: int
    global_step: int
    value: float

    def __str__(self) -> str:
        if self.batch < 0:
            return "training diverged: a loss on another process became NaN or inf"
        return (f"training diverged: {self.name} = {self.value} at epoch {self.epoch}, batch {self.batch} "
                f"(global step {self.global_step})")


class DivergenceWatch:
    """`watch(loss, ...)` after each loss, `check()` to learn whether any watched loss was NaN or inf."""

    def __init__(self) -> None:
        self._places: list[tuple[str, int, int, int]] = []  # (name, epoch, batch, global step) per watched loss
        self._first_bad: torch.Tensor | None = None  # index into _places of the first non-finite loss, -1: none
        self._bad_value: torch.Tensor | None = None

    def watch(self, loss: torch.Tensor, name: str, epoch: int, batch: int, global_step: int) -> None:
        loss = loss.detach().float()
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._bad_value = torch.zeros((), device=loss.device)
        first = (self._first_bad < 0) & ~torch.isfinite(loss)  # (), on the device
        self._first_bad = torch.where(first, len(self._places), self._first_bad)
        self._bad_value = torch.where(first, loss, self._bad_value)
        self._places.append((name, epoch, batch, global_step))

    def check(self, all_ranks_finite: Callable[[bool], bool] = bool) -> Divergence | None:
        """The first non-finite loss watched since the last check (one read of the device), or None. Under DDP
        `all_ranks_finite` makes it a decision of all processes together (a rank that stopped alone would leave
        the others waiting); a rank whose own losses were finite then reports the divergence without a place."""
        if self._first_bad is None:
            return None
        index, value = int(self._first_bad), float(self._bad_value)
        places = self._places
        self._places, self._first_bad, self._bad_value = [], None, None
        if all_ranks_finite(index < 0):
            return None
        if index < 0:
            return Divergence("", -1, -1, -1, float("nan"))
        return Divergence(*places[index], value)
