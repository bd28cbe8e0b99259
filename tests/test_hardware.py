"""Fitting a run to the machine: the precision resolver and the CPU threads that follow the free cores."""

import logging
import os
import subprocess
import sys

import pytest
import torch

from gan_lightning.config import compose_config
from gan_lightning.errors import UserError
from gan_lightning.hardware import (
    CPUThreads,
    choose_threads,
    cores_busy_elsewhere,
    cpu_has_native_bf16,
    native_bf16_flags,
)
from gan_lightning.train import train
from tests.conftest import compose_run


def test_threads_are_the_free_cores_within_what_the_process_started_with():
    assert choose_threads(most=2, cores=2, busy_elsewhere=0.1) == 2
    assert choose_threads(most=2, cores=2, busy_elsewhere=1.0) == 1  # another process holds one core
    assert choose_threads(most=2, cores=2, busy_elsewhere=2.0) == 1  # never below one
    assert choose_threads(most=1, cores=8, busy_elsewhere=0.0) == 1  # OMP_NUM_THREADS / a sweep's share
    assert choose_threads(most=8, cores=8, busy_elsewhere=2.6) == 5
    assert choose_threads(most=4, cores=4, busy_elsewhere=None) == 4  # no /proc/stat: leave it


CORES = sorted(os.sched_getaffinity(0))


@pytest.mark.skipif(not os.path.exists("/proc/stat") or len(CORES) > 8, reason="needs Linux and at most 8 cores")
def test_busy_cores_are_measured_and_the_callback_steps_aside():
    spin = [sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"]
    hogs = [subprocess.Popen(spin) for _ in CORES]  # every core taken by another process
    threads = torch.get_num_threads()
    try:
        busy = cores_busy_elsewhere(set(CORES), interval=0.5)
        callback = CPUThreads()
        callback.setup(None, None, "fit")
        assert torch.get_num_threads() == 1
    finally:
        for hog in hogs:
            hog.kill()
        torch.set_num_threads(threads)
    assert busy >= 0.6 * len(CORES)
    assert cores_busy_elsewhere(set(CORES), interval=0.5) < 0.6 * len(CORES)  # and they are gone


def test_cpu_threads_setting_is_checked_before_the_run():
    with pytest.raises(UserError, match="callbacks.cpu_threads.threads must be"):
        from gan_lightning.config import validate

        validate(compose_config(["callbacks.cpu_threads.threads=0"]))
    cfg = compose_config(["callbacks.cpu_threads.threads=1"])
    assert cfg.callbacks.cpu_threads.threads == 1


def test_precision_is_bf16_exactly_where_the_processor_has_it():
    expected = "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    assert compose_config(["trainer=cpu"]).trainer.precision == expected
    assert compose_config(["trainer=gpu"]).trainer.precision == "32-true"  # launch-bound: casts cost more
    assert compose_config(["trainer=cpu", "trainer.precision=32-true"]).trainer.precision == "32-true"


def test_a_cpu_run_says_at_its_start_which_precision_it_chose_and_why(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="gan_lightning.hardware"):
        train(compose_run(tmp_path, "model=vanilla", "trainer=cpu"))
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trainer.precision: ")]
    assert len(said) == 1, said
    if cpu_has_native_bf16():
        assert said[0].startswith("trainer.precision: bf16-mixed, since this CPU computes bfloat16 natively (")
        assert native_bf16_flags() and all(flag in said[0] for flag in native_bf16_flags())
    else:
        assert said[0].startswith("trainer.precision: 32-true, since this CPU has no native bfloat16")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gan_lightning.hardware"):  # a precision the user names: no word
        train(compose_run(tmp_path / "fp32", "model=vanilla", "trainer=cpu", "trainer.precision=32-true"))
    assert "trainer.precision: " not in caplog.text


def test_bf16_autocast_trains_on_a_cpu(tmp_path):
    """The fast path's precision on a CPU (emulated where bf16 is not native: slow, but the same code)."""
    metrics = train(compose_run(tmp_path, "model=dcgan", "trainer=cpu", "trainer.precision=bf16-mixed",
                                "model.generator.ngf=8", "model.discriminator.ndf=8"))
    assert torch.isfinite(torch.tensor(metrics["train/d_loss"]))
