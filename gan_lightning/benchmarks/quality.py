"""How good each model's digits get for a stated training budget: train with the default recipe, then score
n samples of the final generator with the bundled classifier beside the real-data reference row.

`python scripts/benchmark_quality.py --epochs vanilla=10 dcgan=3 cgan=3 --n 10000`
"""

import argparse
import time
from pathlib import Path

import torch

from gan_lightning.config import compose_config
from gan_lightning.evaluate import evaluate_sampler, format_table
from gan_lightning.metrics import reference_row
from gan_lightning.sampling.sampler import Sampler
from gan_lightning.train import train

TARGETS = "targets: cgan label accuracy >= 0.97; every model's min class share >= 0.05"


def run(model: str, epochs: int, output_dir: Path, seed: int) -> tuple[Path, float]:
    cfg = compose_config([f"model={model}", f"trainer.max_epochs={epochs}", f"seed={seed}",
                          f"paths.output_dir={output_dir}", "trainer.enable_progress_bar=false"])
    start = time.perf_counter()
    train(cfg)
    return output_dir / "checkpoints" / "last.ckpt", time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", nargs="+", default=["vanilla=10", "dcgan=3", "cgan=3"], help="MODEL=EPOCHS")
    parser.add_argument("--n", type=int, default=10000, help="samples scored per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmark_quality"), help="where the runs go")
    args = parser.parse_args(argv)
    budgets = {}
    for item in args.epochs:
        model, _, epochs = item.partition("=")
        if not epochs.isdigit() or int(epochs) < 1:
            parser.error(f"--epochs takes MODEL=EPOCHS, got {item!r}")
        budgets[model] = int(epochs)

    rows, lines = {}, []
    for model, epochs in budgets.items():
        ckpt, seconds = run(model, epochs, args.out / model, args.seed)
        rows[f"{model}, {epochs} epochs"] = evaluate_sampler(Sampler.load(ckpt), args.n, seed=args.seed)
        lines.append(f"{model}: {epochs} epochs in {seconds / 60:.1f} min; run in {ckpt.parent.parent}")
    rows[f"real data ({args.n} held-out)"] = reference_row(args.n, seed=args.seed)
    print(f"\nQuality after a fixed budget (CPU, {torch.get_num_threads()} threads; seed {args.seed}; "
          f"{args.n} samples per row)\n")
    print(format_table(rows))
    print("\n" + "\n".join(lines))
    print(TARGETS)
