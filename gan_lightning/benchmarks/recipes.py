"""The default recipes against the baseline recipes (those of the projects gan-lightning grew from), side by side.

`python scripts/benchmark_recipes.py --epochs 10 --n 10000`

Trains every (model, recipe) pair - `baseline` is `experiment=baseline_<model>`, `default` is `model=<model>` - for
`--epochs` epochs with the same seed, scores n samples of each final generator with the bundled classifier,
prints one table beside the real-data row, checks the targets, and writes `recipes.png`: each model's baseline
grid beside its default grid. A pair whose run folder already holds a finished run of the same recipe (the
resolved model, optimizer and data config) and budget is not trained again (`--retrain` forces it), so the
table can be rebuilt, or runs done in parallel processes (`--runs dcgan/baseline`) can be gathered; an unfinished
one resumes from its `last.ckpt`. A run of another recipe (a default changed since), or of a longer budget, is
refused, not scored.
"""

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from gan_lightning.config import compose_config
from gan_lightning.errors import TrainingInterrupted, UserError, fail, stop
from gan_lightning.evaluate import evaluate_sampler, format_table
from gan_lightning.files import Staging, write_file, write_json
from gan_lightning.metrics import reference_row
from gan_lightning.sampling.outputs import sample_grid, save_png
from gan_lightning.sampling.sampler import Sampler
from gan_lightning.train import train

# the models with a baseline recipe (experiment=baseline_<model>) to set their default against
MODELS = ("vanilla", "dcgan", "cgan")
RECIPES = ("baseline", "default")
DEFAULT_OUT = Path("outputs/benchmark_recipes")


def overrides(model: str, recipe: str) -> list[str]:
    return [f"experiment=baseline_{model}"] if recipe == "baseline" else [f"model={model}"]


def resolved_recipe(cfg: DictConfig) -> dict:
    """What a run's digits depend on besides its budget and seed: the resolved model, optimizer and data config."""
    return {group: OmegaConf.to_container(cfg[group], resolve=True) for group in ("model", "optimizer", "data")}


def run_config(model: str, recipe: str, epochs: int, seed: int, folder: Path, data: Sequence[str] = ()) -> DictConfig:
    """The training config of one pair's run in `folder` (on the dataset that the `data` overrides choose)."""
    return compose_config([*overrides(model, recipe), *data, f"trainer.max_epochs={epochs}", f"seed={seed}",
                           f"paths.output_dir={folder}", "trainer.enable_progress_bar=false"])


def check_recipe(done: dict, expected: dict, folder: Path, model: str, recipe: str) -> None:
    """A run's recorded recipe is today's, or the run may not be scored under today's name."""
    if done.get("recipe") != expected:
        raise UserError(f"{folder} holds a {model} run of another recipe than today's {recipe} recipe (a default "
                        "changed since it was trained, or it predates recorded recipes): pass a new --out, or "
                        "--retrain to train it again there")


def check_budget(done: dict, epochs: int, folder: Path) -> None:
    """A run of a longer budget is never taken for a shorter one: resumed with fewer epochs, nothing would train,
    and its checkpoint, further on than asked, would be scored under the shorter budget."""
    trained = done.get("epochs")
    if isinstance(trained, int) and trained > epochs:
        raise UserError(f"{folder} holds a run of {trained} epochs, longer than the {epochs} asked for: its checkpoint "
                        f"is not a {epochs}-epoch result; pass a new --out, --retrain to train {epochs} epochs there, "
                        f"or --at-epoch {epochs} to score its checkpoint after {epochs} epochs, if it kept one")


def run_folder(out: Path, model: str, recipe: str, seed: int = 0) -> Path:
    """Where a pair's run of `seed` goes: `<out>/<model>/<recipe>` for seed 0, `<recipe>-seed<seed>` beside it for
    the others, so runs of different seeds never resume one another."""
    return out / model / (recipe if seed == 0 else f"{recipe}-seed{seed}")


def run(model: str, recipe: str, epochs: int, seed: int, out: Path, retrain: bool = False,
        data: Sequence[str] = ()) -> dict:
    """Train one pair unless a finished run of the same recipe and budget is already in its folder; returns
    what `result.json` records (overrides, epochs, seed, the resolved recipe, minutes, checkpoint).

    `result.json` is written when the run starts and completed when it ends, so an unfinished run is known by
    its recipe too. A folder holding a run of another recipe is an error unless `retrain`: scoring it would
    put an old recipe's numbers under today's name."""
    folder = run_folder(out, model, recipe, seed)
    cfg = run_config(model, recipe, epochs, seed, folder, data)
    record = {"overrides": [*overrides(model, recipe), *data], "epochs": epochs, "seed": seed, "recipe": resolved_recipe(cfg)}
    result_file, last = folder / "result.json", folder / "checkpoints" / "last.ckpt"
    if result_file.exists() and not retrain:
        done = json.loads(result_file.read_text())
        check_recipe(done, record["recipe"], folder, model, recipe)
        check_budget(done, epochs, folder)
        if {k: done.get(k) for k in record} == record and "checkpoint" in done and Path(done["checkpoint"]).exists():
            return done
    # a run that an earlier benchmark left unfinished (killed, out of time) goes on from its last checkpoint
    resume = last.exists() and not retrain
    if resume:
        cfg.ckpt_path = str(last)
    write_json(result_file, record, key="--out")
    # the run's config where Hydra keeps it, for the tools that read a run folder (scripts/check_health.py)
    write_file(folder / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg), key="--out")
    start = time.perf_counter()
    train(cfg)
    record.update(minutes=(time.perf_counter() - start) / 60, resumed=resume, checkpoint=str(last))
    write_json(result_file, record, key="--out")
    return record


def check_targets(rows: dict[tuple[str, str], dict]) -> list[str]:
    """The issue's targets, each as a PASS/FAIL line (only for the pairs that were run)."""
    lines = []
    if ("dcgan", "baseline") in rows and ("dcgan", "default") in rows:
        baseline_fid, fid = rows["dcgan", "baseline"]["fid"], rows["dcgan", "default"]["fid"]
        lines.append(f"{'PASS' if fid <= baseline_fid / 5 else 'FAIL'} default DCGAN FID {fid:.2f} <= baseline DCGAN "
                     f"FID / 5 ({baseline_fid / 5:.2f})")
    if ("cgan", "default") in rows:
        accuracy = rows["cgan", "default"]["label_accuracy"]
        lines.append(f"{'PASS' if accuracy >= 0.98 else 'FAIL'} default cGAN label accuracy {accuracy:.4f} >= 0.98")
    for (model, recipe), result in rows.items():
        if recipe == "default":
            share = result["min_class_share"]
            lines.append(f"{'PASS' if share >= 0.07 else 'FAIL'} default {model}: every digit >= 7% of samples "
                         f"(min {share:.3f})")
    return lines


def side_by_side(grids: dict[tuple[str, str], np.ndarray], models: list[str]) -> np.ndarray:
    """One picture: a row per model, its baseline grid on the left and its default grid on the right."""
    rows = []
    for model in models:
        pair = [grids[model, recipe] for recipe in RECIPES if (model, recipe) in grids]
        height = max(g.shape[0] for g in pair)
        pair = [np.pad(g, ((0, height - g.shape[0]), (0, 0))) for g in pair]
        gap = np.full((height, 12), 255, dtype=np.uint8)
        rows.append(np.concatenate([x for g in pair for x in (g, gap)][:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 12), (0, width - r.shape[1])), constant_values=255) for r in rows]
    return np.concatenate(rows)[:-12]


def main(argv=None) -> None:
    try:
        benchmark(argv)
    except UserError as e:
        fail(e)
    except (TrainingInterrupted, KeyboardInterrupt) as e:
        stop(e, "the finished runs are kept in --out; the same command goes on from there (the interrupted run from its last.ckpt)")


def benchmark(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n", type=int, default=10000, help="samples scored per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", default=[f"{m}/{r}" for m in MODELS for r in RECIPES],
                        help="MODEL/RECIPE pairs (recipe: baseline or default)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the runs go")
    parser.add_argument("--retrain", action="store_true", help="train again even if a finished run is there")
    parser.add_argument("--train-only", action="store_true", help="train the runs, print nothing")
    parser.add_argument("--at-epoch", type=int, default=None,
                        help="train nothing: score the runs' periodic checkpoints after this many epochs")
    args = parser.parse_args(argv)
    pairs = []
    for item in args.runs:
        model, _, recipe = item.partition("/")
        if model not in MODELS or recipe not in RECIPES:
            parser.error(f"--runs takes MODEL/RECIPE with MODEL in {MODELS} and RECIPE in {RECIPES}, got {item!r}")
        pairs.append((model, recipe))
    if args.epochs < 1:
        parser.error(f"--epochs must be positive, got {args.epochs}")

    if args.at_epoch is not None:  # a look at unfinished runs, side by side at the same epoch
        records = {}
        for model, recipe in pairs:
            folder = run_folder(args.out, model, recipe, args.seed)
            checkpoint = folder / "checkpoints" / f"epoch_{args.at_epoch - 1:03d}.ckpt"
            if not checkpoint.exists():
                parser.error(f"no checkpoint after {args.at_epoch} epochs for {model}/{recipe}: {checkpoint}")
            result_file = folder / "result.json"
            done = json.loads(result_file.read_text()) if result_file.exists() else {}
            if "recipe" in done:  # (runs from before recipes were recorded are taken as they are)
                expected = resolved_recipe(run_config(model, recipe, args.at_epoch, args.seed, folder))
                check_recipe(done, expected, folder, model, recipe)
            records[model, recipe] = {"overrides": overrides(model, recipe), "checkpoint": str(checkpoint)}
        args.epochs = args.at_epoch
    else:
        records = {pair: run(*pair, args.epochs, args.seed, args.out, args.retrain) for pair in pairs}
    if args.train_only:
        return
    rows, grids = {}, {}
    for pair, record in records.items():
        sampler = Sampler.load(record["checkpoint"])
        rows[pair] = evaluate_sampler(sampler, args.n, seed=args.seed)
        images, labels = next(sampler.samples(80 if sampler.conditional else 64, seed=args.seed))
        if labels is not None:
            order = np.argsort(labels, kind="stable")
            images, labels = images[order], labels[order]
        grids[pair] = sample_grid(images, labels, sampler.num_classes if sampler.conditional else 0)
    table = {f"{model}, {recipe} recipe": result for (model, recipe), result in rows.items()}
    table[f"real data ({args.n} held-out)"] = reference_row(args.n, seed=args.seed)
    print(f"\nSeed recipes vs default recipes: {args.epochs} epochs each, seed {args.seed}, CPU "
          f"({torch.get_num_threads()} threads); {args.n} samples per row\n")
    print(format_table(table))
    print()
    for (model, recipe), record in records.items():
        resumed = " (the part after resuming)" if record.get("resumed") else ""
        took = f", {record['minutes']:.1f} min{resumed}" if "minutes" in record else ""
        print(f"{model}/{recipe}: {' '.join(record['overrides'])}{took}; {record['checkpoint']}")
    print("\n" + "\n".join(check_targets(rows)))
    models = [m for m in MODELS if any((m, r) in grids for r in RECIPES)]
    picture = args.out / "recipes.png"
    with Staging("--out") as staging:
        save_png(side_by_side(grids, models), staging.file(picture))
    print(f"\nbaseline (left) vs default (right) grids, one row per model: {picture}")
