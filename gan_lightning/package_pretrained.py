"""Package a training run's generator as a bundled model: the folder `save_pretrained` writes, plus its model card.

`python scripts/package_pretrained.py --run RUN_DIR --name cgan --commit SHA --machine "2-core CPU ..."
[--checkpoint best] [--seed-runs RUN ...] [--data-dir DIR]`

writes `gan_lightning/pretrained/<name>/` (or `--out`): config.json and model.safetensors (the EMA generator of
the run's last checkpoint, with `--checkpoint best` of its best by validation FID, or of a checkpoint named by its
file name; a run resumed from another run's checkpoint is packaged with the runs before it, as one training),
eval.json (the numbers below, recomputed by `tests/test_bundled.py`), samples.png and README.md, the model card.
The numbers are scored from the written folder, not from the checkpoint, on the test set of the dataset the run
learnt (`evaluate.py`'s protocol; its files in `--data-dir` when not in their default place), beside the real-data
row, the same run's checkpoint after the default 10-epoch budget and, with `--seed-runs`, the runs of the same
command with other seeds.
"""

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import yaml

from gan_lightning.checkpoint import load_checkpoint
from gan_lightning.data.datasets import DATASETS, get_dataset
from gan_lightning.errors import UserError, fail
from gan_lightning.evaluate import COLUMNS, PER_CLASS, evaluate_report, labelled_samples
from gan_lightning.files import Staging, json_text
from gan_lightning.metrics.cas import TRAIN_IMAGES, classification_accuracy_score
from gan_lightning.metrics.memorisation import memorisation
from gan_lightning.options import VARIANTS
from gan_lightning.pretrained import BUNDLED_DIR, CONFIG, WEIGHTS, save_pretrained, sha256
from gan_lightning.sampling.outputs import sample_grid, save_png
from gan_lightning.sampling.sampler import Sampler

DEFAULT_BUDGET = 10  # epochs: the default recipe's budget (conf/trainer/default.yaml), the row the card compares with
EVAL_N, EVAL_SEED = 10_000, 0
CAS_N, CAS_EPOCHS = TRAIN_IMAGES, 3  # evaluate.py's cas defaults
GRID_SEED = 0
VAL_SIZE = 5_000  # conf/data/mnist.yaml's data.val_size, which the other datasets' configs inherit

# what each variant is, in the words of the dataset it learnt (`_words`)
DESCRIPTIONS = {
    "vanilla": "A fully connected generator (Goodfellow et al., 2014): noise of 100 numbers in, a 28x28 {thing} out.",
    "dcgan": "A convolutional generator (Radford et al., 2016): transposed convolutions, BatchNorm and ReLU, Tanh.",
    "cgan": "A conditional DCGAN generator (Mirza & Osindero, 2014): {ask}, in a style chosen by the noise. "
    "Trained against a projection discriminator (Miyato & Koyama, 2018).",
    "infogan": "An InfoGAN generator (Chen et al., 2016), trained without labels: beside the noise it takes a "
    "categorical code of 10 values and two continuous codes, which training made stand for the digit, its slant and "
    "its width (see Codes below). A code is not a label: which code draws which digit was found, not given.",
}


def _words(config: dict) -> dict:
    """What a card calls the model's dataset, its images and its classes: MNIST's are digits, and a model of another
    dataset is asked for a class by name."""
    dataset = get_dataset(config.get("dataset", "mnist"))
    digits = dataset.class_word == "digit"
    example = dataset.class_names[7]
    return {
        "dataset": dataset,
        "thing": "digit" if digits else "image",
        "things": "digits" if digits else "images",
        "ask": ("ask it for a digit and it draws that digit" if digits else
                f"ask it for one of the {dataset.num_classes} classes ({example}, say) and it draws one"),
        "label": "digit=7" if digits else f'label="{example}"',
        "cli_label": "digit=7" if digits else f"label={example}",
        "out": "digits" if digits else "samples",
    }


NAME = re.compile(r"[a-z][a-z0-9_]*")
CHECKPOINTS = {"last": "last.ckpt", "best": "best_fid.ckpt"}  # --checkpoint: the run's end, or its best by val/fid
RESUMED_FROM = "Resuming from "  # train.py's log line naming the checkpoint a run resumed from


def training_chain(run_dir: Path) -> list[Path]:
    """The run folders of one training, first to last: `run_dir`, and before it the run it resumed from (its
    train.log names the checkpoint), and so on. A resumed run writes into a new folder; together they are one
    training (resuming is exact)."""
    runs = [run_dir]
    while True:
        log = runs[0] / "train.log"
        if not log.is_file():
            raise UserError(f"--run {run_dir} is not a finished training run: {log} is missing")
        resumed = [line.split(RESUMED_FROM, 1)[1].strip() for line in log.read_text().splitlines() if RESUMED_FROM in line]
        if not resumed:
            return runs
        parent = Path(resumed[-1]).parent.parent  # <run>/checkpoints/last.ckpt -> <run>
        if not parent.is_dir() or parent in runs:
            raise UserError(f"--run {run_dir}: {runs[0]} resumed from {resumed[-1]}, whose run folder is not there; "
                            f"put it back to package the whole training")
        runs.insert(0, parent)


def _finished(runs: list[Path]) -> list[tuple[list[str], dict]]:
    """Each run's command-line overrides and metrics.json, once the training is known to be whole: its last run
    completed, and each run before it completed or was stopped by a signal (the next run went on from its last
    checkpoint)."""
    records = []
    for run_dir in runs:
        overrides_file, metrics_file = run_dir / ".hydra" / "overrides.yaml", run_dir / "metrics.json"
        for path in (overrides_file, metrics_file, run_dir / "checkpoints" / "last.ckpt"):
            if not path.is_file():
                raise UserError(f"--run {runs[-1]}: {run_dir} is not a finished training run: "
                                f"{path.relative_to(run_dir)} is missing")
        metrics = json.loads(metrics_file.read_text())
        resumed = run_dir != runs[-1]
        if metrics.get("status") != "completed" and not (resumed and metrics.get("status") == "interrupted"):
            raise UserError(f"--run {runs[-1]}: {run_dir} did not complete (status {metrics.get('status')!r}); "
                            f"finish it first")
        records.append((yaml.safe_load(overrides_file.read_text()), metrics))
    return records


def chosen_checkpoint(runs: list[Path], checkpoint: str = "last") -> Path:
    """The checkpoint shipped: the training's last, its best by val/fid over all its runs (each run folder keeps
    the best of its own epochs), or the one of that file name (e.g. epoch_024.ckpt; the latest run's, if several
    runs hold one)."""
    if checkpoint == "last":
        return runs[-1] / "checkpoints" / CHECKPOINTS["last"]
    if checkpoint != "best":
        named = [run / "checkpoints" / checkpoint for run in runs if (run / "checkpoints" / checkpoint).is_file()]
        if Path(checkpoint).name != checkpoint or not named:
            raise UserError(f"--checkpoint {checkpoint}: no such file in the checkpoints folder of --run {runs[-1]} "
                            f"or of the runs it resumed from; give last, best or a file name there")
        return named[-1]
    bests = [(metrics.get("best") or {}, run) for (_, metrics), run in zip(_finished(runs), runs)]
    bests = [(best["value"], run) for best, run in bests if best.get("value") is not None]
    if not bests:
        raise UserError(f"--run {runs[-1]} has no best checkpoint by validation FID; package --checkpoint last")
    chosen = min(bests, key=lambda pair: pair[0])[1] / "checkpoints" / CHECKPOINTS["best"]
    if not chosen.is_file():
        raise UserError(f"--run {runs[-1]}: {chosen} is missing")
    return chosen


def run_record(runs: list[Path], chosen: Path) -> dict:
    """What the card says of the training: the command (a resumed training: the commands of its runs, each
    resumed run with ckpt_path=last, which picks the run before it), the epochs of the training and of the shipped
    checkpoint, wall time (from the runs' own files)."""
    commands, seconds = [], 0.0
    for i, (overrides, metrics) in enumerate(_finished(runs)):
        kept = [o for o in overrides if not o.startswith(("runs_dir=", "hydra.", "ckpt_path="))]
        commands.append("python scripts/train.py " + " ".join(kept + (["ckpt_path=last"] if i else [])))
        seconds += metrics["seconds"]
    return {
        "command": " && ".join(commands),
        "runs": len(runs),
        "checkpoint": chosen.name,
        "epochs": int(load_checkpoint(chosen)["epoch"]) + 1,
        "run_epochs": int(load_checkpoint(runs[-1] / "checkpoints" / "last.ckpt")["epoch"]) + 1,
        "minutes": round(seconds / 60, 1),
    }


def _cells(row: dict) -> str:
    return " | ".join(fmt.format(row[key]) if row.get(key) is not None else "-" for _, key, fmt in COLUMNS)


def _codes_section(name: str, numbers: dict) -> str:
    """What an InfoGAN's codes found (`evaluate.codes_report`), for this model and the training seeds measured."""
    codes = numbers["codes"]
    mapping = ", ".join(f"{code} draws {digit}" for code, digit in enumerate(codes["code_digits"]))
    lines = [f"""
## Codes

Measured as `python scripts/evaluate.py model={name}` does (docs/quality.md, "InfoGAN's codes"): the bundled classifier
reads the digit of each of the {numbers["n"]:,} samples (seed {numbers["seed"]}, code i mod 10 for sample i), codes are matched one to
one to digits (`scipy.optimize.linear_sum_assignment` on the confusion matrix), and each continuous code is swept over
[-1, 1] in {codes["styles"]} styles, the other at 0, against the slant (the angle of the principal axis of the ink) and the width (the
spread of the ink across that axis) of the digits, as a mean Spearman rank correlation.

- Code-to-digit accuracy: {codes["code_accuracy"]:.4f} (the InfoGAN paper: about 0.95). The codes: {mapping}.
"""]
    lines += [f"- Continuous code {i}: rank correlation {c['slant']:+.3f} with the slant, {c['width']:+.3f} with the width.\n"
              for i, c in enumerate(codes["continuous"])]
    if numbers.get("seeds"):
        lines.append("\nThe same recipe over training seeds, each run's last checkpoint, scored the same way:\n\n"
                     "| seed | code-to-digit accuracy | " + " | ".join(
                         f"code {i}: slant, width" for i in range(len(codes["continuous"]))) + " | FID |\n"
                     + "|---" * (len(codes["continuous"]) + 3) + "|\n")
        for row in numbers["seeds"]:
            cells = " | ".join(f"{c['slant']:+.3f}, {c['width']:+.3f}" for c in row["continuous"])
            lines.append(f"| {row['seed']} | {row['code_accuracy']:.4f} | {cells} | {row['fid']:.2f} |\n")
        rows = numbers["seeds"]
        mean = float(np.mean([row["code_accuracy"] for row in rows]))
        lines.append(f"| mean | {mean:.4f} | " + " | ".join("" for _ in codes["continuous"])
                     + f" | {np.mean([row['fid'] for row in rows]):.2f} |\n")
        shipped = _command_seed(numbers["training"]["command"])
        best = max(rows, key=lambda row: row["code_accuracy"])
        why = f", the one of the {len(rows)} whose codes matched digits best" if str(best["seed"]) == shipped else ""
        lines.append(f"\nThe shipped run is seed {shipped}{why}.\n" if shipped is not None else "")
    return "".join(lines)


def _command_seed(command: str) -> str | None:
    """The `seed=` a recorded training command gives, if it gives one."""
    return next((arg.split("=", 1)[1] for arg in shlex.split(command) if arg.startswith("seed=")), None)


def _seeds_section(numbers: dict, conditional: bool) -> str:
    """The same recipe over training seeds (`--seed-runs`): each run's quality row, and their mean and standard
    deviation beside the real-data row, as docs/quality.md's benchmark reports them."""
    rows, real = numbers["seeds"], numbers["real_reference"]
    columns = [("FID", "fid", "{:.2f}"), ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}")]
    columns += [("label accuracy", "label_accuracy", "{:.4f}")] if conditional else []
    lines = [(f"\nThe same recipe over {len(rows)} training seeds (the command above with `seed=` changed), each run's "
              f"`{rows[0]['checkpoint']}` scored the same way:\n\n"),
             "| seed | " + " | ".join(title for title, _, _ in columns) + " |\n" + "|---" * (len(columns) + 1) + "|\n"]
    lines += [f"| {row['seed']} | " + " | ".join(fmt.format(row[key]) for _, key, fmt in columns) + " |\n" for row in rows]
    means = {key: float(np.mean([row[key] for row in rows])) for _, key, _ in columns}
    stds = {key: float(np.std([row[key] for row in rows], ddof=1)) if len(rows) > 1 else 0.0 for _, key, _ in columns}
    lines.append("| mean ± std | " + " | ".join(f"{fmt.format(means[key])} ± {fmt.format(stds[key])}"
                                               for _, key, fmt in columns) + " |\n")
    lines.append("| real data | " + " | ".join(fmt.format(real[key]) for _, key, fmt in columns) + " |\n")
    lines.append(f"\nMean precision {means['precision'] / real['precision']:.2f} and mean recall "
                 f"{means['recall'] / real['recall']:.2f} of the real row's.\n")
    return "".join(lines)


def card_text(name: str, config: dict, numbers: dict) -> str:
    """The model card (Markdown with the Hugging Face front matter)."""
    training, ours, real = numbers["training"], numbers["model"], numbers["real_reference"]
    variant, words = config["variant"], _words(config)
    dataset, things = words["dataset"], words["things"]
    epochs = training["epochs"]
    rows = [f"| this model ({epochs} epochs) | {_cells(ours)} |"]
    if "at_default_budget" in numbers:
        rows.append(f"| the same run after {DEFAULT_BUDGET} epochs (the default budget) | "
                    f"{_cells(numbers['at_default_budget'])} |")
    rows.append(f"| real data ({numbers['n']} held-out training images) | {_cells(real)} |")
    header = "| | " + " | ".join(title for title, _, _ in COLUMNS) + " |\n" + "|---" * (len(COLUMNS) + 1) + "|"
    per_digit = ""
    for key, title, fmt in PER_CLASS:
        if ours.get(key):
            values = ", ".join(f"{c}: {'-' if v is None else fmt.format(v)}" for c, v in zip(dataset.class_names, ours[key]))
            per_digit += f"\n{title[0].upper() + title[1:]} (this model): {values}.\n"
    remembered = numbers["memorisation"]
    per_digit += (f"\nMemorised share (`evaluate.py memorisation=true`): {remembered['memorised_share']:.4f} of the samples lie "
                  f"closer to one of the {dataset.title} training images than the closest 1% of real test images do "
                  f"({remembered['test_memorised_share']:.4f} of those by construction); median distance to the nearest "
                  f"training image {remembered['median_distance']:.2f} (test images: "
                  f"{remembered['test_median_distance']:.2f}).\n")
    if "cas" in numbers:
        cas = numbers["cas"]
        per_digit += (f"\nClassification Accuracy Score (`evaluate.py model={name} cas=true`): a classifier of the bundled "
                      f"architecture trained on {cas['n']:,} of this model's {things} for {cas['epochs']} epochs scores "
                      f"{cas['cas']:.4f} on the {dataset.title} test set, against {cas['real_accuracy']:.4f} for the same "
                      f"training on {cas['n']:,} real images ({cas['cas_minutes'] + cas['real_minutes']:.0f} minutes for the "
                      f"two on the machine below; not recomputed by the tests for that reason).\n")
    conditional, coded = config["generator"]["num_classes"] > 0, "codes" in config
    example = (f"g.sample(16, {words['label']}, seed=0)" if conditional else
               "g.sample(16, code=3, continuous=(1.0, 0.0), seed=0)" if coded else "g.sample(16, seed=0)")
    cli_digit = f" {words['cli_label']}" if conditional else " code=3" if coded else ""
    rows_are = f", one row per {dataset.class_word}" if conditional else ", one row per categorical code" if coded else ""
    codes = _codes_section(name, numbers) if coded else ""
    seeds = _seeds_section(numbers, conditional) if numbers.get("seeds") and not coded else ""
    data_dir = "" if dataset.name == "mnist" else " data_dir=DIR"
    size_kb = numbers["weights_bytes"] / 1024
    checkpoint_words = {
        CHECKPOINTS["last"]: f"the run's last checkpoint, the end of its {training['run_epochs']} epochs (chosen before "
        "any scoring; the test set chose nothing)",
        CHECKPOINTS["best"]: f"the run's best checkpoint by validation FID (`{training['checkpoint']}`: 2,000 samples "
        f"against the 5,000 validation images, at every epoch's end; the test set chose nothing), after {epochs} epochs",
    }.get(training["checkpoint"], f"the run's checkpoint after {epochs} epochs (`{training['checkpoint']}`)")
    return f"""---
license: mit
library_name: gan-lightning
datasets:
- {dataset.name}
tags:
- gan
- {dataset.name}
- image-generation
---

# {VARIANTS[variant]} for {dataset.title} {things} (`{name}`)

{DESCRIPTIONS[variant].format(**words)} Shipped inside the gan-lightning package, so it draws {things} without any training.

![{"80" if conditional or coded else "64"} samples, seed {GRID_SEED}{rows_are}](samples.png)

## Use

```python
from gan_lightning import load_generator
g = load_generator("{name}")
x = {example}   # uint8 (16, 28, 28), 0 = black background like {dataset.title}
```

```bash
python scripts/generate.py model={name}{cli_digit} n=64 out={words["out"]}{chr(10) + f"python scripts/generate.py model={name} mode=codes out=codes   # the InfoGAN paper's figure" if coded else ""}
python scripts/evaluate.py model={name}{data_dir}
python scripts/demo.py model={name}
```
{"" if not data_dir else chr(10) + f"`evaluate.py` reads the {dataset.title} test set from `data_dir` (default: `{dataset.default_dir}`)." + chr(10)}
## Training

- Command: `{training["command"]}` (the recipe of `conf/model/{variant}.yaml` at that commit, with these
  overrides{"; the training was stopped and resumed, each run in its own folder, `ckpt_path=last` resuming the run before it"
  if training.get("runs", 1) > 1 else ""})
- Code: gan-lightning {f"commits {training['commit']} (one per run)" if training.get("runs", 1) > 1
  else f"commit `{training['commit']}`"}
- {training["run_epochs"]} epochs of the {dataset.train_size - VAL_SIZE:,} training images (the other {VAL_SIZE:,} held out for validation), {training["minutes"]} minutes
  on {training["machine"]}
- Weights: the exponential moving average of the generator's weights (what the run sampled and was scored
  with), from {checkpoint_words}, stored as {config["dtype"]} ({size_kb:.0f} KB, SHA-256
  `{config["sha256"][WEIGHTS]}`); `config.json` holds the network's settings.

## Quality

On the {dataset.title} test set: {numbers["n"]:,} generated {things} (seed {numbers["seed"]}{f", every {dataset.class_word} equally often" if conditional
else ""}) scored with the features of the {dataset.title} classifier that ships with gan-lightning (README, "How good are
the digits"), beside {numbers["n"]:,} real images at the same n. FID and KID are comparable only within this project
and at the same n. Precision and recall (k = 3) separate fidelity from diversity, density and coverage (k = 5)
likewise. `tests/test_bundled.py` recomputes these numbers from the shipped files.

{header}
{chr(10).join(rows)}
{seeds}{per_digit}{codes}
## Intended use and limits

For learning and teaching how GANs work, for demos, and as a baseline to compare {dataset.title} generators with the same
metrics. The {things} are {dataset.about}; the model knows nothing else. Generated {things} are not a replacement for real data when
measuring a classifier, and this model is not meant for any decision about people.

## Data licence

Trained on {dataset.licence}; the weights and code of gan-lightning are under the MIT licence.
"""


def package(run_dir: Path, name: str, out: Path, commit: str | list[str], machine: str, dtype: str,
            cas_n: int = CAS_N, cas_epochs: int = CAS_EPOCHS, checkpoint: str = "last",
            seed_runs: list[Path] = (), data_dir: Path | None = None) -> Path:
    """Write bundled model `name` into `out` from the training `run_dir` (see the module's docstring); `seed_runs`:
    runs of the same command with other seeds (the shipped run among them), scored beside it on the card;
    `data_dir`: where the files of the dataset the run learnt are (None: the dataset's default place)."""
    if not NAME.fullmatch(name):
        raise UserError(f"--name {name!r}: a bundled model's name is lower-case letters, digits and _ (e.g. fashion_cgan)")
    runs = training_chain(run_dir)
    commits = [commit] if isinstance(commit, str) else list(commit)
    if len(commits) != len(runs):
        raise UserError(f"--run {run_dir} is a training of {len(runs)} runs (resumed {len(runs) - 1} times): give "
                        f"--commit once per run, first to last ({len(commits)} given)")
    chosen = chosen_checkpoint(runs, checkpoint)
    training = run_record(runs, chosen)
    training.update(commit=", then ".join(commits), machine=machine)
    trained = Sampler.load(chosen)
    if trained.info["dataset"] not in DATASETS:
        raise UserError(f"--run {run_dir} learnt your own images; a bundled model is scored on a published dataset "
                        f"({', '.join(DATASETS)}): export it with scripts/export_generator.py instead")
    # the one writer of the package's model folders: a rebuild replaces the model, and its card below
    save_pretrained(trained.generator, trained.info["variant"], trained.info["spec"], out, dtype, trained.info.get("codes"),
                    overwrite=True, _package=True, dataset=trained.info["dataset"], class_names=trained.info.get("class_names"))
    shipped = Sampler.load(out)  # the numbers come from the files that ship
    shipped.dataset = dataset = shipped.dataset.at(data_dir)
    report = evaluate_report(shipped, EVAL_N, EVAL_SEED)
    numbers = {"n": EVAL_N, "seed": EVAL_SEED, "model": report["model"], "real_reference": report["real_reference"],
               "training": training, "weights_bytes": (out / WEIGHTS).stat().st_size}
    remembered = memorisation(shipped.sample(EVAL_N, seed=EVAL_SEED), dataset)
    numbers["memorisation"] = {k: v for k, v in remembered.items() if k != "closest"}
    if "codes" in report:
        numbers["codes"] = report["codes"]
    if seed_runs:
        numbers["seeds"] = [_seed_row(run, checkpoint, dataset) for run in seed_runs]
    if shipped.asks_digits:
        numbers["cas"] = classification_accuracy_score(
            lambda count, seed: labelled_samples(shipped, count, seed), cas_n, cas_epochs, EVAL_SEED, dataset=dataset)
    budget = next((p for run in runs if (p := run / "checkpoints" / f"epoch_{DEFAULT_BUDGET - 1:03d}.ckpt").is_file()),
                  None)
    if budget is not None and training["epochs"] > DEFAULT_BUDGET:
        numbers["at_default_budget"] = evaluate_report(_at(Sampler.load(budget), dataset), EVAL_N, EVAL_SEED)["model"]
    images, labels = shipped.sample(64 if not shipped.conditional else 80, seed=GRID_SEED), None
    if shipped.conditional:
        labels = np.arange(len(images)) % shipped.num_classes
    config = json.loads((out / CONFIG).read_text())
    with Staging("out") as staging:  # the card's three files together
        save_png(sample_grid(images, labels, shipped.num_classes), staging.file(out / "samples.png"))
        staging.file(out / "eval.json").write_text(json_text(numbers, out / "eval.json"))
        staging.file(out / "README.md").write_text(card_text(name, config, numbers))
    print(f"wrote {out}: config sha256 {sha256((out / CONFIG).read_bytes())}")
    return out


def _at(sampler: Sampler, dataset) -> Sampler:
    sampler.dataset = dataset
    return sampler


def _seed_row(run: Path, checkpoint: str, dataset) -> dict:
    """A run of another training seed, its checkpoint chosen as the shipped one was, scored as the card's model is:
    its FID, precision, recall and label accuracy (a conditional model), or what its codes found (an InfoGAN)."""
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text()) if (run / ".hydra" / "config.yaml").is_file() else {}
    chosen = chosen_checkpoint(training_chain(run), checkpoint)
    report = evaluate_report(_at(Sampler.load(chosen), dataset), EVAL_N, EVAL_SEED)
    row = {"seed": config.get("seed"), "run": run.name, "fid": report["model"]["fid"]}
    if "codes" in report:
        return {**row, **report["codes"]}
    return {**row, "checkpoint": chosen.name, **{key: report["model"][key] for key in
                                                 ("precision", "recall", "label_accuracy") if key in report["model"]}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True,
                        help="the training run's folder (a resumed run: its last; the runs before it are found)")
    parser.add_argument("--name", required=True, help="the bundled model's name: its variant (cgan), or one with its "
                        "dataset (fashion_cgan)")
    parser.add_argument("--commit", required=True, nargs="+",
                        help="the commit the run was trained with (a resumed training: one per run, first to last)")
    parser.add_argument("--machine", required=True, help="what it was trained on, for the card")
    parser.add_argument("--out", type=Path, help="default: gan_lightning/pretrained/<name>")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float16")
    parser.add_argument("--checkpoint", default="last",
                        help="ship the run's last checkpoint, its best by validation FID (best), or the checkpoint "
                             "of that file name (e.g. epoch_024.ckpt)")
    parser.add_argument("--seed-runs", type=Path, nargs="*", default=[],
                        help="runs of the same command with other seeds (the shipped run among them), scored beside "
                             "it on the card")
    parser.add_argument("--data-dir", type=Path, help="the folder of the dataset's files (default: the dataset's own)")
    args = parser.parse_args(argv)
    try:
        package(args.run, args.name, args.out or BUNDLED_DIR / args.name, args.commit, args.machine, args.dtype,
                checkpoint=args.checkpoint, seed_runs=args.seed_runs, data_dir=args.data_dir)
    except UserError as e:
        fail(e)


if __name__ == "__main__":
    sys.exit(main())
