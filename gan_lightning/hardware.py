"""Fitting a run to the machine it is on: the precision the processor computes fastest, and how many CPU threads
to use when other processes want the same cores.

- `fast_precision` (the `${fast_precision:...}` resolver of `trainer.precision`): bf16 autocast on a CPU that
  computes bfloat16 natively (AVX-512 BF16 or AMX), where oneDNN's bf16 convolutions are faster; fp32 everywhere
  else. Emulated bf16 on a CPU without it is slower than fp32; on a GPU these networks are so small that a step is
  bound by kernel launches, and autocast's casts cost more than bf16 saves (docs/gpu.md: on an H200 the
  fp32 loop trained 1.05-1.9x more images/s than bf16 ones).
- `CPUThreads` (a callback): torch's intra-op threads follow the cores that are free. OpenMP threads that find
  their core taken spin while they wait: two processes with two threads each on two cores train 10 times slower
  than one alone, while with one thread each both keep most of their speed.
"""

import functools
import logging
import os
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


@functools.cache
def cpu_has_native_bf16() -> bool:
    return torch.backends.mkldnn.is_available() and (
        torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


@functools.cache
def fast_precision(accelerator: str = "auto") -> str:
    """Lightning's `precision` for training on `accelerator` (Lightning's names: auto, cpu, gpu, cuda...)."""
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if not on_cpu:
        return "32-true"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


def native_bf16_flags() -> list[str]:
    """The CPU features (as /proc/cpuinfo names them) that compute bfloat16 natively, of those this CPU has."""
    return [flag for flag, has in (("avx512_bf16", torch.cpu._is_avx512_bf16_supported()),
                                   ("amx_bf16", torch.cpu._is_amx_tile_supported())) if has]


def explain_precision(trainer_cfg) -> None:
    """Say in the run's log which precision the machine chose for a CPU run, and why (the resolver itself stays
    quiet: it also runs while commands are only being checked)."""
    raw = OmegaConf.to_container(trainer_cfg, resolve=False).get("precision")
    if not (isinstance(raw, str) and raw.startswith("${fast_precision:")):
        return  # a precision the user named
    if cpu_has_native_bf16():
        log.info("trainer.precision: bf16-mixed, since this CPU computes bfloat16 natively (%s): bf16 autocast trains "
                 "faster than fp32 here (trainer.precision=32-true for fp32)", ", ".join(native_bf16_flags()))
    else:
        log.info("trainer.precision: 32-true, since this CPU has no native bfloat16 (neither avx512_bf16 nor "
                 "amx_bf16): emulated bf16 autocast would train slower than fp32 here")


if not OmegaConf.has_resolver("fast_precision"):
    OmegaConf.register_new_resolver("fast_precision", fast_precision)


def _cpu_times(cpus: set[int]) -> tuple[int, int] | None:
    """(busy, total) clock ticks of these CPUs since boot, from /proc/stat; None where there is none."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


def _own_ticks() -> int:
    """Clock ticks this process (all its threads) has run."""
    times = os.times()
    return round((times.user + times.system) * os.sysconf("SC_CLK_TCK"))


def cores_busy_elsewhere(cpus: set[int], interval: float = 0.25) -> float | None:
    """How many of `cpus` other processes kept busy over the next `interval` seconds (this one sleeps meanwhile);
    None where the system does not say."""
    before, own_before = _cpu_times(cpus), _own_ticks()
    time.sleep(interval)
    after, own_after = _cpu_times(cpus), _own_ticks()
    if before is None or after is None or after[1] <= before[1]:
        return None
    busy = (after[0] - before[0]) - (own_after - own_before)
    return max(0.0, busy / ((after[1] - before[1]) / len(cpus)))


def choose_threads(most: int, cores: int, busy_elsewhere: float | None) -> int:
    """Threads for this process: the free cores (cores less those busy elsewhere, rounded), at least 1, at most
    `most` (what it was started with: OMP_NUM_THREADS, or a sweep launcher's share of the cores)."""
    if busy_elsewhere is None:
        return most
    return max(1, min(most, round(cores - busy_elsewhere)))


class CPUThreads(L.Callback):
    """Sets torch's CPU threads to the free cores when training starts and again at every epoch, so a run on a busy
    machine, or beside other runs, does not spin against them; restores them when training ends. `threads`:
    "auto", or a fixed number (float sums, and so bit-for-bit results, depend on the thread count: runs to be
    compared bit for bit fix it)."""

    def __init__(self, threads: int | str = "auto"):
        assert threads == "auto" or (isinstance(threads, int) and threads >= 1), threads  # checked by config.validate
        self.threads = threads
        self.most = torch.get_num_threads()
        self.cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))

    def _set(self) -> None:
        if self.threads != "auto":
            threads = self.threads
        else:
            threads = choose_threads(self.most, len(self.cpus), cores_busy_elsewhere(self.cpus))
        if threads != torch.get_num_threads():
            log.info("CPU threads: %d (of %d cores; %d at most)", threads, len(self.cpus), self.most)
            torch.set_num_threads(threads)

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        self._set()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        self._set()

    def teardown(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        torch.set_num_threads(self.most)  # what the process had, for whatever it does next
