"""How good each model's digits get for a stated training budget: train with the default recipe, then score
n samples of the final generator with the bundled classifier beside the real-data reference row, and check
the targets (the conditional GAN's label accuracy >= 97%; every model making every digit, none under 5%).

`python scripts/benchmark_quality.py --epochs vanilla=10 dcgan=10 cgan=10 --n 10000`

The runs are those of `benchmark_recipes.py` (its `default` recipe, same folder layout and default `--out`): a
finished run of the same recipe, budget and seed is scored, not trained again; an unfinished one resumes; a run
of another recipe is refused.
"""

import argparse
from pathlib import Path

import torch

from gan_lightning.benchmarks.recipes import DEFAULT_OUT, run
from gan_lightning.errors import UserError, fail
from gan_lightning.evaluate import evaluate_sampler, format_table
from gan_lightning.metrics import reference_row
from gan_lightning.sampling.sampler import Sampler

MIN_LABEL_ACCURACY, MIN_CLASS_SHARE = 0.97, 0.05


def check_targets(rows: dict[str, dict]) -> list[str]:
    """Each target as a PASS/FAIL line, for the models that were run."""
    lines = []
    for model, result in rows.items():
        if "label_accuracy" in result:
            accuracy = result["label_accuracy"]
            passed = accuracy >= MIN_LABEL_ACCURACY
            lines.append(f"{'PASS' if passed else 'FAIL'} {model}: label accuracy {accuracy:.4f} >= {MIN_LABEL_ACCURACY}")
        share = result["min_class_share"]
        lines.append(f"{'PASS' if share >= MIN_CLASS_SHARE else 'FAIL'} {model}: every digit >= "
                     f"{MIN_CLASS_SHARE:.0%} of samples (min {share:.3f})")
    return lines


def main(argv=None) -> None:
    try:
        benchmark(argv)
    except UserError as e:
        fail(e)


def benchmark(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", nargs="+", default=["vanilla=10", "dcgan=10", "cgan=10"], help="MODEL=EPOCHS")
    parser.add_argument("--n", type=int, default=10000, help="samples scored per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the runs go (shared with benchmark_recipes)")
    args = parser.parse_args(argv)
    budgets = {}
    for item in args.epochs:
        model, _, epochs = item.partition("=")
        if model not in ("vanilla", "dcgan", "cgan") or not epochs.isdigit() or int(epochs) < 1:
            parser.error(f"--epochs takes MODEL=EPOCHS with MODEL vanilla, dcgan or cgan, got {item!r}")
        budgets[model] = int(epochs)

    rows, results, lines = {}, {}, []
    for model, epochs in budgets.items():
        record = run(model, "default", epochs, args.seed, args.out)
        results[model] = evaluate_sampler(Sampler.load(record["checkpoint"]), args.n, seed=args.seed)
        rows[f"{model}, {epochs} epochs"] = results[model]
        took = f" in {record['minutes']:.1f} min" if "minutes" in record else ""
        lines.append(f"{model}: {epochs} epochs{took}; {record['checkpoint']}")
    rows[f"real data ({args.n} held-out)"] = reference_row(args.n, seed=args.seed)
    print(f"\nQuality of the default recipes after a fixed budget (CPU, {torch.get_num_threads()} threads; seed "
          f"{args.seed}; {args.n} samples per row)\n")
    print(format_table(rows))
    print("\n" + "\n".join(lines))
    print("\n" + "\n".join(check_targets(results)))
