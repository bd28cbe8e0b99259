"""How good each default model's digits get at its training budget, over several seeds, as a paper reports it.

`python scripts/benchmark_quality.py [--epochs dcgan=7 ...] --seeds 0 1 2 --n 10000 [--data fashion_mnist]`

Each model is trained with its default recipe, at its own budget (`trainer.max_epochs` as its config composes it:
`conf/budget/`) unless `--epochs` gives one, once per seed, on MNIST or the dataset `--data` names (its files in
`--data-dir`); n samples of each final generator are scored by that dataset's classifier on its test set (the runs
selected nothing by it: their validation metrics use the validation split), with the
memorised share and, for the conditional GAN, the Classification Accuracy Score. The table gives every metric as
mean ± standard deviation over the seeds, beside the real-data row (n held-out training images, one draw per
seed; CAS: the same classifier trained on real images), then checks the targets as fractions of the real row.
`quality.png` plots each run's validation FID, precision and recall against its wall-clock minutes of training.

The runs are those of `benchmark_recipes.py` (its `default` recipe; seed 0 in `<out>/<model>/default`, seed s in
`<out>/<model>/default-seed<s>`; another dataset's in `<out>/<dataset>/...`): a finished run of the same recipe, budget and seed is scored, not trained again;
an unfinished one resumes; a run of another recipe is refused. Each run's scores are kept in its `scores.json`,
so a benchmark run again, or with one more seed, scores only what is new.
"""

import argparse
import importlib.util
import json
import math
import statistics
from pathlib import Path

import torch

from gan_lightning.benchmarks.recipes import DEFAULT_OUT, run
from gan_lightning.callbacks.health import replay
from gan_lightning.config import compose_config
from gan_lightning.data.datasets import DATASETS
from gan_lightning.errors import TrainingInterrupted, UserError, fail, stop
from gan_lightning.evaluate import COLUMNS as EVALUATE_COLUMNS
from gan_lightning.evaluate import evaluate_sampler, labelled_samples
from gan_lightning.files import write_file, write_json
from gan_lightning.metrics import reference_row
from gan_lightning.metrics.cas import TRAIN_IMAGES, classification_accuracy_score
from gan_lightning.metrics.memorisation import memorisation
from gan_lightning.sampling.sampler import Sampler

# the models whose default recipe the benchmark scores (InfoGAN trains with the paper's rates: its card has its seeds)
MODELS = ("vanilla", "dcgan", "cgan")

# (column, key, format) of the table, each cell mean ± std over the seeds: evaluate.py's columns (less the two
# classifier-confidence ones) and the benchmark's own
COLUMNS = [column for column in EVALUATE_COLUMNS if column[1] not in ("classifier_score", "confidence")] + [
    ("CAS", "cas", "{:.4f}"),
    ("memorised share", "memorised_share", "{:.4f}"),
]

# Targets at the default budget, per dataset: precision and recall as fractions of the real row's, and the label
# accuracy of the conditional model (the issues' numbers; Fashion-MNIST's real row itself reads 0.93 of its labels);
# a dataset without targets here is scored and checked only against its real row's CAS and memorised share
FRACTION_TARGETS = {
    "mnist": {"cgan": {"precision": 0.90, "recall": 0.90}, "dcgan": {"precision": 0.85, "recall": 0.85},
              "vanilla": {"recall": 0.75}},
    "fashion_mnist": {"cgan": {"precision": 0.85, "recall": 0.85}},
}
MIN_LABEL_ACCURACY = {"mnist": 0.985, "fashion_mnist": 0.90}
MAX_CAS_GAP = 0.015  # CAS at most 1.5 points under the real-trained classifier's accuracy
# memorised share at most twice the real test images' (0.01 by construction): a generator that draws exactly the
# data's distribution scores 0.01 give or take its sampling noise, so at most 0.01 would fail it half the time; a
# model that copies its training set scores far above (docs/quality.md, "The quality benchmark")
MAX_MEMORISED_FACTOR = 2.0


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(results: list[dict]) -> dict[str, tuple[float, float]]:
    """{key: (mean, std)} over the seeds' results, for the table's keys that every result has."""
    keys = [key for _, key, _ in COLUMNS if all(key in r for r in results)]
    return {key: mean_std([r[key] for r in results]) for key in keys}


def format_table(rows: dict[str, dict[str, tuple[float, float]]]) -> str:
    """A Markdown table of mean ± std cells, '-' where a row lacks a metric."""
    lines = ["| | " + " | ".join(name for name, _, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{fmt.format(row[key][0])} ± {fmt.format(row[key][1])}" if key in row else "-"
                 for _, key, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_targets(models: dict[str, dict[str, tuple[float, float]]], real: dict[str, tuple[float, float]],
                  dataset: str = "mnist") -> list[str]:
    """Each target of `dataset` as a PASS/FAIL line on the seeds' means, for the models that were run."""
    lines = []

    def line(passed: bool, text: str) -> None:
        lines.append(f"{'PASS' if passed else 'FAIL'} {text}")

    for model, row in models.items():
        for key, fraction in FRACTION_TARGETS.get(dataset, {}).get(model, {}).items():
            share = row[key][0] / real[key][0]
            line(share >= fraction, f"{model}: {key} {row[key][0]:.3f} = {share:.3f} of the real row's "
                                    f"{real[key][0]:.3f} >= {fraction}")
        if "label_accuracy" in row and dataset in MIN_LABEL_ACCURACY:
            accuracy, target = row["label_accuracy"][0], MIN_LABEL_ACCURACY[dataset]
            line(accuracy >= target, f"{model}: label accuracy {accuracy:.4f} >= {target}")
        if "cas" in row:
            cas, real_accuracy = row["cas"][0], row["real_accuracy"][0]
            line(cas >= real_accuracy - MAX_CAS_GAP, f"{model}: CAS {cas:.4f} within {MAX_CAS_GAP * 100:.1f} points "
                                                      f"of the real-trained classifier's {real_accuracy:.4f}")
        if "memorised_share" in row:
            share, test_share = row["memorised_share"][0], row["test_memorised_share"][0]
            line(share <= MAX_MEMORISED_FACTOR * test_share, f"{model}: memorised share {share:.4f} <= "
                 f"{MAX_MEMORISED_FACTOR:g} x real test images' {test_share:.4f}")
    return lines


def score(record: dict, n: int, cas_n: int, cas_epochs: int, data_dir: str | None = None) -> dict:
    """The scores of one run's final generator: the quality dict of n samples (seed 0), their memorised share and,
    for a conditional model, the CAS (its samples, real draw and classifiers seeded with the run's seed, so the
    real-trained classifier's accuracy varies over the seeds too); kept in `scores.json` beside the run for the same
    settings."""
    settings = {"checkpoint": record["checkpoint"], "n": n, "cas_n": cas_n, "cas_epochs": cas_epochs}
    path = Path(record["checkpoint"]).parent.parent / "scores.json"
    if path.exists():
        kept = json.loads(path.read_text())
        if kept.get("settings") == settings:
            return kept["scores"]
    sampler = Sampler.load(record["checkpoint"])
    sampler.dataset = sampler.dataset.at(data_dir)
    result = evaluate_sampler(sampler, n, seed=0)
    remembered = memorisation(sampler.sample(n, seed=0), sampler.dataset)
    result.update(memorised_share=remembered["memorised_share"],
                  test_memorised_share=remembered["test_memorised_share"])
    if sampler.asks_digits and cas_n:
        cas = classification_accuracy_score(lambda count, seed: labelled_samples(sampler, count, seed), cas_n,
                                            cas_epochs, seed=record["seed"], dataset=sampler.dataset)
        result.update(cas=cas["cas"], real_accuracy=cas["real_accuracy"])
    result = {k: v for k, v in result.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    write_json(path, {"settings": settings, "scores": result}, key="--out")
    return result


def validation_curves(run_dir: Path) -> dict[str, list[float]]:
    """A run's validation FID, precision and recall at each validation, from its TensorBoard events, and `minutes`:
    the wall-clock minutes from the run's first event to each validation (a resumed run's pause counts too)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    curves = {}
    for key in ("fid", "precision", "recall"):
        tag = f"val/{key}"
        if tag in events.Tags()["scalars"]:
            by_step = {e.step: e for e in events.Scalars(tag)}  # a resumed run may repeat a step
            curves[key] = [by_step[step].value for step in sorted(by_step)]
            if key == "fid":
                start = events.FirstEventTimestamp()
                curves["minutes"] = [(by_step[step].wall_time - start) / 60 for step in sorted(by_step)]
    return curves


def health(run_dir: Path) -> str:
    """The training watchman's alarms for a run, replayed from its logs (a default recipe should raise none)."""
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        return "not known (a run of an older version keeps no config to replay it with)"
    alarms = replay(run_dir)
    return ", ".join(f"{a.name} at epoch {a.epoch}" for a in alarms) or "no alarm"


def plot_curves(curves: dict[str, dict[tuple[str, int], dict[str, list[float]]]], path: Path) -> None:
    """Time to quality: one column per model, one row per metric (FID, precision, recall) against the wall-clock
    minutes of training, a line per (recipe, seed): a colour per recipe, a line style per seed; written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("fid", "precision", "recall")
    recipes = list(dict.fromkeys(recipe for runs in curves.values() for recipe, _ in runs))
    seeds = sorted({seed for runs in curves.values() for _, seed in runs})
    styles = ("-", "--", ":", "-.")
    figure, axes = plt.subplots(len(metrics), len(curves), figsize=(4.5 * len(curves), 8), squeeze=False)
    for column, (model, runs) in enumerate(curves.items()):
        for row, metric in enumerate(metrics):
            ax = axes[row][column]
            for (recipe, seed), values in runs.items():
                if metric in values:
                    ax.plot(values["minutes"], values[metric], marker=".", color=f"C{recipes.index(recipe)}",
                            linestyle=styles[seeds.index(seed) % len(styles)], label=f"{recipe}, seed {seed}")
            if metric == "fid":
                ax.set_yscale("log")
            ax.set_title(f"{model}: validation {metric}" if metric != "fid" else f"{model}: validation FID (log)")
            ax.grid(alpha=0.3)
            if row == len(metrics) - 1:
                ax.set_xlabel("minutes of training (wall clock, validation included)")
        axes[0][column].legend(fontsize="small")
    figure.tight_layout()
    write_file(path, lambda file: figure.savefig(file, format="png", dpi=80), key="--out")
    plt.close(figure)


def plot_main(argv=None) -> None:
    try:
        plot_runs(argv)
    except UserError as e:
        fail(e)


def plot_runs(argv=None) -> None:
    """`python scripts/plot_time_to_quality.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] --out PNG`: finished or running
    training runs' validation FID, precision and recall against wall-clock minutes, a column per model."""
    parser = argparse.ArgumentParser(description="Time to quality: training runs' validation curves against minutes")
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR: a training run's folder and the recipe name to show")
    parser.add_argument("--out", type=Path, default=Path("time_to_quality.png"), help="the PNG to write")
    args = parser.parse_args(argv)
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    curves: dict[str, dict[tuple[str, int], dict[str, list[float]]]] = {}
    for item in args.runs:
        label, _, folder = item.partition("=")
        run_dir = Path(folder)
        config_file = run_dir / ".hydra" / "config.yaml"
        if not label or not config_file.is_file() or not (run_dir / "tensorboard").is_dir():
            raise UserError(f"{item!r}: give LABEL=RUN_DIR, RUN_DIR a training run's folder (with .hydra/config.yaml "
                            "and tensorboard/), e.g. default=outputs/train/<date>_<time>")
        cfg = OmegaConf.load(config_file)
        values = validation_curves(run_dir)
        if "fid" not in values:
            raise UserError(f"{run_dir}: no validation FID logged (a run with ~callbacks.quality, or not validated yet)")
        curves.setdefault(get_class(cfg.model._target_).name, {})[label, int(cfg.seed)] = values
    if args.out.exists():
        raise UserError(f"--out {args.out} exists: give another path, or remove it")
    plot_curves(curves, args.out)
    print(f"validation FID, precision and recall against minutes: {args.out}")


def main(argv=None) -> None:
    try:
        benchmark(argv)
    except UserError as e:
        fail(e)
    except (TrainingInterrupted, KeyboardInterrupt) as e:
        stop(e, "the finished runs are kept in --out; the same command goes on from there (the interrupted run from its last.ckpt)")


def own_budgets() -> dict[str, int]:
    """Each model's epochs as its config composes them (its budget option, conf/budget/)."""
    return {model: compose_config([f"model={model}"]).trainer.max_epochs for model in MODELS}


def benchmark(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", nargs="+", default=[], help="MODEL=EPOCHS, only these models at these budgets "
                        "(default: every model at its config's trainer.max_epochs)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    parser.add_argument("--n", type=int, default=10000, help="samples scored per run (at most 10000)")
    parser.add_argument("--cas-n", type=int, default=TRAIN_IMAGES,
                        help="generated digits the CAS classifier trains on (conditional GAN; 0: no CAS)")
    parser.add_argument("--cas-epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the runs go (shared with benchmark_recipes)")
    parser.add_argument("--train-only", action="store_true", help="train the runs, score nothing")
    parser.add_argument("--data", choices=list(DATASETS), default="mnist", help="the dataset the models train on")
    parser.add_argument("--data-dir", default=None, help="the folder of its files (default: the dataset's own)")
    args = parser.parse_args(argv)
    dataset = DATASETS[args.data].at(args.data_dir)
    budgets = {} if args.epochs else own_budgets()
    for item in args.epochs:
        model, _, epochs = item.partition("=")
        if model not in MODELS or not epochs.isdigit() or int(epochs) < 1:
            parser.error(f"--epochs takes MODEL=EPOCHS with MODEL vanilla, dcgan or cgan, got {item!r}")
        budgets[model] = int(epochs)
    if not 2 <= args.n <= 10000:
        parser.error(f"--n must be from 2 to 10000 (the held-out real images), got {args.n}")
    if args.cas_n and not 10 <= args.cas_n <= TRAIN_IMAGES or args.cas_epochs < 1:
        parser.error(f"--cas-n takes 0 or 10 to {TRAIN_IMAGES}, --cas-epochs a positive integer")
    if min(args.seeds) < 0 or len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds takes distinct seeds >= 0, got {args.seeds}")

    if importlib.util.find_spec("matplotlib") is None:  # found missing before hours of training, not after
        raise UserError("benchmark_quality.py plots the validation curves with matplotlib, which is not installed: "
                        "pip install -e '.[bench]'")
    data = [f"data={args.data}", *([f"data.data_dir={args.data_dir}"] if args.data_dir else [])]
    out = args.out if args.data == "mnist" else args.out / args.data
    records = {(model, seed): run(model, "default", epochs, seed, out, data=data if args.data != "mnist" else ())
               for model, epochs in budgets.items() for seed in args.seeds}
    if args.train_only:
        return
    results = {key: score(record, args.n, args.cas_n, args.cas_epochs, args.data_dir) for key, record in records.items()}
    models = {model: aggregate([results[model, seed] for seed in args.seeds]) for model in budgets}
    for model, row in models.items():  # the CAS's real-trained classifier and the test images' memorised share
        for key in ("real_accuracy", "test_memorised_share"):
            if all(key in results[model, seed] for seed in args.seeds):
                row[key] = mean_std([results[model, seed][key] for seed in args.seeds])
    reals = [reference_row(args.n, seed=seed, dataset=dataset) for seed in args.seeds]
    real = aggregate(reals)
    if "cgan" in models and "real_accuracy" in models["cgan"]:
        real["cas"] = models["cgan"]["real_accuracy"]
    if any("test_memorised_share" in row for row in models.values()):
        real["memorised_share"] = next(row["test_memorised_share"] for row in models.values()
                                       if "test_memorised_share" in row)

    seeds = ", ".join(map(str, args.seeds))
    print(f"\nQuality of the default recipes at their budget: mean ± std over seeds {seeds}; {args.n} samples per run "
          f"scored on the {dataset.title} test set (CPU, {torch.get_num_threads()} threads)\n")
    table = {f"{model}, {budgets[model]} epochs": row for model, row in models.items()}
    table[f"real data ({args.n} held-out; CAS: trained on {args.cas_n} real)"] = real
    print(format_table(table))
    print()
    for (model, seed), record in records.items():
        took = f" in {record['minutes']:.1f} min" if "minutes" in record else ""
        print(f"{model}, seed {seed}: {record['epochs']} epochs{took}; {record['checkpoint']}; "
              f"health: {health(Path(record['checkpoint']).parent.parent)}")
    print("\n" + "\n".join(check_targets(models, real, args.data)))
    curves = {model: {("default", seed): validation_curves(Path(records[model, seed]["checkpoint"]).parent.parent)
                      for seed in args.seeds} for model in budgets}
    picture = out / "quality.png"
    plot_curves(curves, picture)
    print(f"\nvalidation FID, precision and recall against minutes of training: {picture}")
