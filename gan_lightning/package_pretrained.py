"""Package a training run's generator as a bundled model: the folder `save_pretrained` writes, plus its model card.

`python scripts/package_pretrained.py --run RUN_DIR --name cgan --commit SHA --machine "2-core CPU ..."`

writes `gan_lightning/pretrained/<name>/` (or `--out`): config.json and model.safetensors (the EMA generator of
the run's last checkpoint, with `--checkpoint best` of its best by validation FID, or of a checkpoint named by its
file name; a run resumed from another run's checkpoint is packaged with the runs before it, as one training), eval.json (the numbers below, recomputed by `tests/test_bundled.py`), samples.png and README.md,
the model card. The numbers are scored from the written folder, not from the checkpoint, on the MNIST test set
(`evaluate.py`'s protocol), beside the real-data row and beside the same run's checkpoint after the default
10-epoch budget.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from gan_lightning.checkpoint import load_checkpoint
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

DESCRIPTIONS = {
    "vanilla": "A fully connected generator (Goodfellow et al., 2014): noise of 100 numbers in, a 28x28 digit out.",
    "dcgan": "A convolutional generator (Radford et al., 2016): transposed convolutions, BatchNorm and ReLU, Tanh.",
    "cgan": "A conditional DCGAN generator (Mirza & Osindero, 2014): ask it for a digit and it draws that digit, "
    "in a style chosen by the noise. Trained against a projection discriminator (Miyato & Koyama, 2018).",
    "infogan": "An InfoGAN generator (Chen et al., 2016), trained without labels: beside the noise it takes a "
    "categorical code of 10 values and two continuous codes, which training made stand for the digit, its slant and "
    "its width (see Codes below). A code is not a label: which code draws which digit was found, not given.",
}


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
    return "".join(lines)


def card_text(name: str, config: dict, numbers: dict) -> str:
    """The model card (Markdown with the Hugging Face front matter)."""
    training, ours, real = numbers["training"], numbers["model"], numbers["real_reference"]
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
            values = ", ".join(f"{d}: {'-' if v is None else fmt.format(v)}" for d, v in enumerate(ours[key]))
            per_digit += f"\n{title[0].upper() + title[1:]} (this model): {values}.\n"
    remembered = numbers["memorisation"]
    per_digit += (f"\nMemorised share (`evaluate.py memorisation=true`): {remembered['memorised_share']:.4f} of the samples lie "
                  f"closer to an MNIST training image than the closest 1% of real test images do "
                  f"({remembered['test_memorised_share']:.4f} of those by construction); median distance to the nearest "
                  f"training image {remembered['median_distance']:.2f} (test images: "
                  f"{remembered['test_median_distance']:.2f}).\n")
    if "cas" in numbers:
        cas = numbers["cas"]
        per_digit += (f"\nClassification Accuracy Score (`evaluate.py model={name} cas=true`): a classifier of the bundled "
                      f"architecture trained on {cas['n']:,} of this model's digits for {cas['epochs']} epochs scores "
                      f"{cas['cas']:.4f} on the MNIST test set, against {cas['real_accuracy']:.4f} for the same training "
                      f"on {cas['n']:,} real images ({cas['cas_minutes'] + cas['real_minutes']:.0f} minutes for the two "
                      f"on the machine below; not recomputed by the tests for that reason).\n")
    conditional, coded = config["generator"]["num_classes"] > 0, "codes" in config
    example = ("g.sample(16, digit=7, seed=0)" if conditional else
               "g.sample(16, code=3, continuous=(1.0, 0.0), seed=0)" if coded else "g.sample(16, seed=0)")
    cli_digit = " digit=7" if conditional else " code=3" if coded else ""
    rows_are = ", one row per digit" if conditional else ", one row per categorical code" if coded else ""
    codes = _codes_section(name, numbers) if coded else ""
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
- mnist
tags:
- gan
- mnist
- image-generation
---

# {VARIANTS[name]} for MNIST digits (`{name}`)

{DESCRIPTIONS[name]} Shipped inside the gan-lightning package, so it draws digits without any training.

![{"80" if conditional or coded else "64"} samples, seed {GRID_SEED}{rows_are}](samples.png)

## Use

```python
from gan_lightning import load_generator
g = load_generator("{name}")
x = {example}   # uint8 (16, 28, 28), 0 = black background like MNIST
```

```bash
python scripts/generate.py model={name}{cli_digit} n=64 out=digits{chr(10) + f"python scripts/generate.py model={name} mode=codes out=codes   # the InfoGAN paper's figure" if coded else ""}
python scripts/evaluate.py model={name}
python scripts/demo.py model={name}
```

## Training

- Command: `{training["command"]}` (the recipe of `conf/model/{name}.yaml` at that commit, with these
  overrides{"; the training was stopped and resumed, each run in its own folder, `ckpt_path=last` resuming the run before it"
  if training.get("runs", 1) > 1 else ""})
- Code: gan-lightning {f"commits {training['commit']} (one per run)" if training.get("runs", 1) > 1
  else f"commit `{training['commit']}`"}
- {training["run_epochs"]} epochs of the 55,000 training images (the other 5,000 held out for validation), {training["minutes"]} minutes
  on {training["machine"]}
- Weights: the exponential moving average of the generator's weights (what the run sampled and was scored
  with), from {checkpoint_words}, stored as {config["dtype"]} ({size_kb:.0f} KB, SHA-256
  `{config["sha256"][WEIGHTS]}`); `config.json` holds the network's settings.

## Quality

On the MNIST test set: {numbers["n"]:,} generated digits (seed {numbers["seed"]}{", every digit equally often" if conditional
else ""}) scored with the features of the MNIST classifier that ships with gan-lightning (README, "How good are
the digits"), beside {numbers["n"]:,} real images at the same n. FID and KID are comparable only within this project
and at the same n. Precision and recall (k = 3) separate fidelity from diversity, density and coverage (k = 5)
likewise. `tests/test_bundled.py` recomputes these numbers from the shipped files.

{header}
{chr(10).join(rows)}
{per_digit}{codes}
## Intended use and limits

For learning and teaching how GANs work, for demos, and as a baseline to compare MNIST generators with the same
metrics. The digits are 28x28 grey images in the style of MNIST's writers (American census employees and high
school students); the model knows nothing else. Generated digits are not a replacement for real data when
measuring a classifier, and this model is not meant for any decision about people.

## Data licence

Trained on MNIST (Yann LeCun, Corinna Cortes and Christopher J.C. Burges), distributed under CC BY-SA 3.0; the
weights and code of gan-lightning are under the MIT licence.
"""


def package(run_dir: Path, name: str, out: Path, commit: str | list[str], machine: str, dtype: str,
            cas_n: int = CAS_N, cas_epochs: int = CAS_EPOCHS, checkpoint: str = "last",
            seed_runs: list[Path] = ()) -> Path:
    runs = training_chain(run_dir)
    commits = [commit] if isinstance(commit, str) else list(commit)
    if len(commits) != len(runs):
        raise UserError(f"--run {run_dir} is a training of {len(runs)} runs (resumed {len(runs) - 1} times): give "
                        f"--commit once per run, first to last ({len(commits)} given)")
    chosen = chosen_checkpoint(runs, checkpoint)
    training = run_record(runs, chosen)
    training.update(commit=", then ".join(commits), machine=machine)
    trained = Sampler.load(chosen)
    # the one writer of the package's model folders: a rebuild replaces the model, and its card below
    save_pretrained(trained.generator, trained.info["variant"], trained.info["spec"], out, dtype, trained.info.get("codes"),
                    overwrite=True, _package=True, dataset=trained.info["dataset"], class_names=trained.info.get("class_names"))
    shipped = Sampler.load(out)  # the numbers come from the files that ship
    report = evaluate_report(shipped, EVAL_N, EVAL_SEED)
    numbers = {"n": EVAL_N, "seed": EVAL_SEED, "model": report["model"], "real_reference": report["real_reference"],
               "training": training, "weights_bytes": (out / WEIGHTS).stat().st_size}
    remembered = memorisation(shipped.sample(EVAL_N, seed=EVAL_SEED))
    numbers["memorisation"] = {k: v for k, v in remembered.items() if k != "closest"}
    if "codes" in report:
        numbers["codes"] = report["codes"]
        numbers["seeds"] = [_seed_row(run) for run in seed_runs]
    if shipped.asks_digits:
        numbers["cas"] = classification_accuracy_score(
            lambda count, seed: labelled_samples(shipped, count, seed), cas_n, cas_epochs, EVAL_SEED)
    budget = next((p for run in runs if (p := run / "checkpoints" / f"epoch_{DEFAULT_BUDGET - 1:03d}.ckpt").is_file()),
                  None)
    if budget is not None and training["epochs"] > DEFAULT_BUDGET:
        numbers["at_default_budget"] = evaluate_report(Sampler.load(budget), EVAL_N, EVAL_SEED)["model"]
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


def _seed_row(run: Path) -> dict:
    """An InfoGAN run of another training seed: its last checkpoint's codes and FID, scored as the card's model is."""
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text()) if (run / ".hydra" / "config.yaml").is_file() else {}
    report = evaluate_report(Sampler.load(run / "checkpoints" / "last.ckpt"), EVAL_N, EVAL_SEED)
    return {"seed": config.get("seed"), "run": run.name, "fid": report["model"]["fid"], **report["codes"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True,
                        help="the training run's folder (a resumed run: its last; the runs before it are found)")
    parser.add_argument("--name", choices=list(VARIANTS), required=True)
    parser.add_argument("--commit", required=True, nargs="+",
                        help="the commit the run was trained with (a resumed training: one per run, first to last)")
    parser.add_argument("--machine", required=True, help="what it was trained on, for the card")
    parser.add_argument("--out", type=Path, help="default: gan_lightning/pretrained/<name>")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float16")
    parser.add_argument("--checkpoint", default="last",
                        help="ship the run's last checkpoint, its best by validation FID (best), or the checkpoint "
                             "of that file name (e.g. epoch_024.ckpt)")
    parser.add_argument("--seed-runs", type=Path, nargs="*", default=[],
                        help="InfoGAN: runs of the same command with other seeds, whose codes the card reports beside")
    args = parser.parse_args(argv)
    try:
        package(args.run, args.name, args.out or BUNDLED_DIR / args.name, args.commit, args.machine, args.dtype,
                checkpoint=args.checkpoint, seed_runs=args.seed_runs)
    except UserError as e:
        fail(e)


if __name__ == "__main__":
    sys.exit(main())
