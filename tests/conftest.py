import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig

from gan_lightning.config import compose_config
from gan_lightning.data import ImageDataModule
from gan_lightning.data.datasets import FASHION_MNIST
from gan_lightning.metrics.quality import draw, real_row

# A few real batches: enough to exercise every part of a run, fast on a 2-core CPU.
FAST = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.batch_size=32",
    # validated after every epoch, whatever budget the model's config chooses (the Vanilla GAN's: every 2nd)
    "trainer.check_val_every_n_epoch=1",
    "callbacks.quality.eval_samples=200",
]


def compose_run(output_dir: Path, *overrides: str) -> DictConfig:
    """The real train config, fast settings, every file under `output_dir`."""
    return compose_config([*FAST, f"paths.output_dir={output_dir}", *overrides])


ROOT = Path(__file__).resolve().parents[1]
# the real Fashion-MNIST files, beside the repository (not in it)
FASHION_DIR = ROOT.parent / "shared" / "fashion-mnist"


@pytest.fixture(scope="session")
def fashion_dir():
    """The folder of the real Fashion-MNIST files. Without them a test that needs them skips with the reason, except
    under CI (`GAN_LIGHTNING_REQUIRE_FASHION=1` in .ci/run), where it fails."""
    if not all((FASHION_DIR / f"{name}.gz").is_file() for name in FASHION_MNIST.md5):
        if os.environ.get("GAN_LIGHTNING_REQUIRE_FASHION") == "1":
            pytest.fail(f"the Fashion-MNIST files are missing from {FASHION_DIR} and GAN_LIGHTNING_REQUIRE_FASHION=1")
        pytest.skip(f"the real Fashion-MNIST files are not in {FASHION_DIR}")
    return FASHION_DIR


def validation_real_row(n: int, sample_seed: int = 0, val_size: int = 5000, split_seed: int = 0) -> dict:
    """What a run's `val/real_*` should be: n images of its training split (a seeded draw) scored against its
    validation split, computed here without the GAN module."""
    dm = ImageDataModule(val_size=val_size, split_seed=split_seed)
    dm.setup()
    images, labels = draw(dm.train_set.images, dm.train_set.labels, n, sample_seed)
    return real_row(images, labels, reference=(dm.val_set.images, dm.val_set.labels))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """`trained_run("cgan")` -> the run directory of a short real run of that model through the real entry point,
    `python scripts/train.py model=cgan ...` (trained once per session)."""
    runs: dict[str, Path] = {}

    def run(model: str) -> Path:
        if model not in runs:
            output_dir = tmp_path_factory.mktemp(f"run_{model}")
            command = [sys.executable, str(ROOT / "scripts" / "train.py"), f"model={model}", *FAST,
                       f"hydra.run.dir={output_dir}"]
            done = subprocess.run(command, cwd=output_dir, capture_output=True, text=True, timeout=600, check=False,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"})
            assert done.returncode == 0, done.stderr[-3000:]
            assert (output_dir / ".hydra" / "config.yaml").is_file() and (output_dir / "metrics.json").is_file()
            runs[model] = output_dir
        return runs[model]

    return run
