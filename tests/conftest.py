from pathlib import Path

import pytest
from omegaconf import DictConfig

from gan_lightning.config import compose_config
from gan_lightning.train import train

# A few real batches: enough to exercise every part of a run, fast on a 2-core CPU.
FAST = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.batch_size=32",
    "model.eval_samples=200",
]


def compose_run(output_dir: Path, *overrides: str) -> DictConfig:
    """The real train config, fast settings, every file under `output_dir`."""
    return compose_config([*FAST, f"paths.output_dir={output_dir}", *overrides])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """`trained_run("cgan")` -> the output directory of a short real run of that model (trained once per session)."""
    runs: dict[str, Path] = {}

    def run(model: str) -> Path:
        if model not in runs:
            output_dir = tmp_path_factory.mktemp(f"run_{model}")
            train(compose_run(output_dir, f"model={model}"))
            runs[model] = output_dir
        return runs[model]

    return run
