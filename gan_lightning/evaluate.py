"""`python scripts/evaluate.py [model=NAME | ckpt_path=PATH] n=10000`: how good a checkpoint's images are, beside real data.

Every number comes from the bundled classifier of the dataset the model learnt (gan_lightning/metrics), scored
against that dataset's test set,
so they compare across runs, models and sweeps, but only at the same sample count: the real-data row shows what a
perfect generator of n samples scores. `memorisation=true` adds how close samples come to training images,
`cas=true` the Classification Accuracy Score of a conditional model (it trains two classifiers).
"""

import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gan_lightning import checks
from gan_lightning import tool_config as conf
from gan_lightning.data.datasets import DATASETS, MNIST
from gan_lightning.data.scaling import to_model_range
from gan_lightning.errors import UserError, fail
from gan_lightning.files import Staging, check_writable, make_folder, write_json
from gan_lightning.metrics import GANQuality, reference_row
from gan_lightning.metrics.cas import classification_accuracy_score
from gan_lightning.metrics.codes import classifier_digits, code_correlations, code_to_digit_accuracy
from gan_lightning.metrics.memorisation import memorisation
from gan_lightning.pretrained import bundled_name
from gan_lightning.sampling import latent
from gan_lightning.sampling.outputs import save_png, tile
from gan_lightning.sampling.sampler import Sampler


def evaluate_sampler(sampler: Sampler, n: int, seed: int = 0, batch_size: int = 500) -> dict:
    """The quality dict of n samples, generated and scored `batch_size` at a time (bounded memory).
    Images are scored as they would be saved, as uint8, like the real images they are compared with."""
    quality = GANQuality(batch_size=batch_size, dataset=sampler.dataset).to(sampler.device)
    for images, labels in sampler.samples(n, seed=seed, batch_size=batch_size):
        fake = to_model_range(torch.from_numpy(images)).to(sampler.device)  # (b, 1, 28, 28)
        asked = torch.from_numpy(labels).to(sampler.device) if sampler.asks_digits else None  # a code is no label
        quality.update(fake, asked)
    return quality.compute()


COLUMNS = [
    ("FID", "fid", "{:.2f}"),
    ("KID", "kid_mean", "{:.3f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("density", "density", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("classifier score", "classifier_score", "{:.2f}"),
    ("confidence", "confidence", "{:.3f}"),
    ("min class share", "min_class_share", "{:.3f}"),
    ("label accuracy", "label_accuracy", "{:.4f}"),
]


def format_table(rows: dict[str, dict], class_names: Sequence[str] = MNIST.class_names) -> str:
    """A Markdown table, one row per named result (missing values as '-'), plus each row's class shares, by the
    dataset's class names."""
    lines = ["| | " + " | ".join(name for name, _, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, result in rows.items():
        cells = [fmt.format(result[key]) if key in result else "-" for _, key, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, result in rows.items():
        shares = " ".join(f"{label}:{share:.3f}" for label, share in zip(class_names, result["class_share"]))
        lines.append(f"class shares, {name}: {shares}")
    for key, title, fmt in PER_CLASS:
        for name, result in rows.items():
            if key in result:
                values = " ".join(f"{label}:{'-' if _missing(v) else fmt.format(v)}"
                                  for label, v in zip(class_names, result[key]))
                lines.append(f"{title}, {name}: {values}")
    return "\n".join(lines)


# the per-class lists: the classes asked for (conditional model) and read back; FID by class
PER_CLASS = [("label_accuracy_per_class", "label accuracy per class", "{:.3f}"),
             ("fid_per_class", "FID per class", "{:.1f}")]


def _missing(value) -> bool:
    return value is None or math.isnan(value)


def _for_json(result: dict) -> dict:
    """A quality dict for the report: a digit never asked for, or with too few images, has no per-digit number (NaN in
    the dict), null here."""
    return {**result, **{key: [None if _missing(v) else v for v in result[key]]
                         for key, _, _ in PER_CLASS if key in result}}


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if conf.wants_help(args):
        conf.print_help("evaluate", __doc__.strip().splitlines()[0])
        return
    try:
        cfg = conf.load_config("evaluate", args)
        source = conf.generator_source(cfg)
        n = checks.integer(cfg, "n", 2, max(dataset.held_out_images for dataset in DATASETS.values()))
        seed = checks.seed(cfg, "seed")
        batch_size = checks.integer(cfg, "batch_size", 1)
        device = conf.device(cfg, "device")
        out = Path(checks.text(cfg, "out")) if cfg.out is not None else default_report_path(source)
        check_writable(out, "out", folder=False, example="report.json")
        sampler = Sampler.load(source, device)
        dataset = sampler.dataset.at(checks.text(cfg, "data_dir", optional=True))
        classifier = checks.text(cfg, "classifier", optional=True)
        if classifier is not None:
            if not Path(classifier).expanduser().is_file():
                raise UserError(f"classifier={classifier}: no such file; give the .pt that scripts/train_classifier.py "
                                "wrote")
            dataset = dataclasses.replace(dataset, classifier=Path(classifier).expanduser())
        if dataset.classifier_path is None:
            raise UserError(f"{source} learnt {dataset.title}, which has no feature network to judge its samples: "
                            "train one with scripts/train_classifier.py and give it as classifier=PATH")
        sampler.dataset = dataset
        # the real-data row is drawn from the training images the classifier never saw
        checks.integer(cfg, "n", 2, dataset.held_out_images)
        check_memorisation = checks.boolean(cfg, "memorisation")
        cas = checks.boolean(cfg, "cas")
        cas_n = checks.integer(cfg, "cas_n", 10, dataset.train_size, optional=True) or dataset.train_size
        cas_epochs = checks.integer(cfg, "cas_epochs", 1)
        if cas and not sampler.asks_digits:
            raise UserError(f"cas=true trains a classifier on generated digits with the labels asked for, which "
                            f"{source} (a {sampler.describe()}) cannot be asked for: evaluate a conditional model "
                            "(e.g. model=cgan) or drop cas")
        make_folder(out.parent, "out")  # before the minutes of scoring, not after
        report = evaluate_report(sampler, n, seed, batch_size)
        if check_memorisation:
            picture = out.with_name(out.name.removesuffix(".json") + ".closest.png")
            report["memorisation"] = memorisation_report(sampler, n, seed, picture)
        if cas:
            report["cas"] = classification_accuracy_score(
                lambda count, cas_seed: labelled_samples(sampler, count, cas_seed, batch_size), cas_n, cas_epochs, seed,
                dataset=dataset)
        write_json(out, report)
    except UserError as e:
        fail(e)
    print(f"{source}: {report['generator']}, {n} samples, seed {seed}\n")
    print(format_table({"model": report["model"], f"real data ({n} held-out)": report["real_reference"]},
                       sampler.dataset.class_names))
    if "codes" in report:
        print("\n" + format_codes(report["codes"]))
    if "memorisation" in report:
        m = report["memorisation"]
        print(f"\nmemorised share: {m['memorised_share']:.4f} of samples closer to a training image than "
              f"{m['test_memorised_share']:.2%} of real test images are (distance {m['threshold']:.2f}); median "
              f"nearest-training distance {m['median_distance']:.2f} (test images: {m['test_median_distance']:.2f}); "
              f"closest pairs: {m['picture']}")
    if "cas" in report:
        c = report["cas"]
        print(f"\nClassification Accuracy Score: {c['cas']:.4f} on the {sampler.dataset.title} test set for a "
              f"classifier trained on {c['n']} generated images ({c['epochs']} epochs, {c['cas_minutes']:.1f} min); {c['real_accuracy']:.4f} "
              f"trained the same way on {c['n']} real images ({c['real_minutes']:.1f} min)")
    print(f"\nwritten: {out}")


def labelled_samples(sampler: Sampler, n: int, seed: int, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """n samples of a conditional model, every digit equally often: uint8 images (n, H, W) and labels (n,)."""
    batches = list(sampler.samples(n, seed=seed, batch_size=batch_size))
    return np.concatenate([images for images, _ in batches]), np.concatenate([labels for _, labels in batches])


def memorisation_report(sampler: Sampler, n: int, seed: int, picture: Path) -> dict:
    """`metrics.memorisation` of the n samples of `seed`, and the picture of the closest pairs (each sample above
    its nearest training image) written to `picture`."""
    samples = sampler.sample(n, seed=seed)
    result = memorisation(samples, sampler.dataset)
    train, _ = sampler.dataset.load("train")
    pairs = [samples[i] for i, _, _ in result["closest"]] + [train[j].numpy() for _, j, _ in result["closest"]]
    with Staging("out") as staging:
        save_png(tile(np.stack(pairs), ncols=len(result["closest"]), nrows=2), staging.file(picture))
    return {**result, "picture": str(picture)}


def default_report_path(source: str | Path) -> Path:
    """Next to a checkpoint or export (<name>.eval.json); a bundled model's report goes to the current folder."""
    if bundled_name(source) is not None:
        return Path(f"{source}.eval.json")
    path = Path(source)
    return path / "eval.json" if path.is_dir() else path.with_name(path.name + ".eval.json")


def evaluate_report(sampler: Sampler, n: int, seed: int = 0, batch_size: int = 500) -> dict:
    """The JSON report of `evaluate.py`: the generator's row and the real-data row at the same n (and, for an
    InfoGAN, what its codes found: `codes_report`)."""
    report = {
        "checkpoint": sampler.source,
        "generator": sampler.describe(),
        "n": n,
        "seed": seed,
        "model": _for_json(evaluate_sampler(sampler, n, seed, batch_size)),
        "real_reference": _for_json(reference_row(n, seed=seed, device=sampler.device, dataset=sampler.dataset)),
    }
    if sampler.label_key == "code":
        report["codes"] = codes_report(sampler, n, seed)
    return report


CODE_SWEEP = np.linspace(-1, 1, 9)  # the continuous codes' values measured: their training range
CODE_STYLES = 200  # styles (noise and categorical code) each continuous code is swept in


def codes_report(sampler: Sampler, n: int, seed: int = 0) -> dict:
    """What an InfoGAN's codes found (`metrics.codes`): the code-to-digit accuracy of its n samples of `seed` (code i
    mod 10 for sample i, continuous codes drawn) under the best one-to-one matching, with each code's digit; and for
    each continuous code, the mean rank correlation of its value (swept over [-1, 1], the others at 0) with the
    digit's slant and with its width, over `CODE_STYLES` styles of the seed."""
    codes, digits = [], []
    for images, labels in sampler.samples(n, seed=seed):
        codes.append(labels)
        digits.append(classifier_digits(images, dataset=sampler.dataset))
    accuracy, code_digits = code_to_digit_accuracy(np.concatenate(codes), np.concatenate(digits), sampler.num_classes)
    styles, steps = min(CODE_STYLES, n), len(CODE_SWEEP)
    z = latent.noise(seed, sampler.noise_dim, styles).repeat_interleave(steps, dim=0)  # (styles * steps, noise)
    labels = (torch.arange(styles) % sampler.num_classes).repeat_interleave(steps)
    continuous = []
    for index in range(sampler.continuous):
        values = torch.zeros(styles * steps, sampler.continuous)
        values[:, index] = torch.from_numpy(CODE_SWEEP).float().repeat(styles)
        sweeps = np.concatenate([sampler.images(z[i : i + 900], labels[i : i + 900], values[i : i + 900])
                                 for i in range(0, len(z), 900)]).reshape(styles, steps, *sampler.image_size)
        continuous.append(code_correlations(sweeps, CODE_SWEEP))
    return {"code_accuracy": accuracy, "code_digits": code_digits, "continuous": continuous, "styles": styles}


def format_codes(codes: dict) -> str:
    """The lines `evaluate.py` prints of a `codes_report`."""
    mapping = ", ".join(f"{code}->{digit}" for code, digit in enumerate(codes["code_digits"]))
    accuracy = f"code-to-digit accuracy: {codes['code_accuracy']:.4f} (best one-to-one matching, codes -> digits: "
    lines = [f"{accuracy}{mapping})"]
    lines += [f"continuous code {i}: rank correlation with slant {c['slant']:+.3f}, with width {c['width']:+.3f} "
              f"(mean over {codes['styles']} styles)" for i, c in enumerate(codes["continuous"])]
    return "\n".join(lines)
