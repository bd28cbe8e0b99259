"""The generators that ship in the package: loaded by name through every door, checked file by file, and their
model cards recomputed from the shipped weights."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from gan_lightning import load_generator, pretrained
from gan_lightning.data.datasets import FASHION_MNIST, MNIST
from gan_lightning.errors import UserError
from gan_lightning.evaluate import COLUMNS, evaluate_report
from gan_lightning.evaluate import main as evaluate_main
from gan_lightning.export import main as export_main
from gan_lightning.generate import main as generate_main
from gan_lightning.metrics.memorisation import memorisation
from gan_lightning.package_pretrained import card_text, chosen_checkpoint, package, run_record, training_chain
from gan_lightning.pretrained import BUNDLED, BUNDLED_DIR, CONFIG, WEIGHTS
from gan_lightning.sampling import Sampler
from tests.conftest import FAST

ROOT = pretrained.BUNDLED_DIR.parents[1]


def opened(name: str, request) -> Sampler:
    """Bundled model `name`, its dataset's files where the tests have them (a Fashion-MNIST model: ../shared)."""
    g = load_generator(name)
    if g.dataset.name == FASHION_MNIST.name:
        g.dataset = g.dataset.at(request.getfixturevalue("fashion_dir"))
    return g


def data_dir(g: Sampler) -> list[str]:
    """The tools' `data_dir=` for the files of `g`'s dataset (none for MNIST, which ships with the package)."""
    return [] if g.dataset.name == MNIST.name else [f"data_dir={g.dataset.default_dir}"]


def test_the_bundled_models_ship_with_their_cards_in_under_24_mb():
    assert "cgan" in BUNDLED
    total = 0
    for name in BUNDLED:
        folder = BUNDLED_DIR / name
        assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == sorted(
            [CONFIG, WEIGHTS, *pretrained.CARD_FILES]
        )
        assert pretrained.sha256((folder / CONFIG).read_bytes()) == pretrained.BUNDLED_CONFIG_SHA256[name]
        total += sum(p.stat().st_size for p in folder.iterdir())
    # four models of about 2 MB each and the InfoGAN's 13 MB (the paper's generator: 6.6 million parameters, most of
    # them in its layer from 1024 units to the 7x7 map), with their cards
    assert total < 24 * 2**20


def test_an_infogan_card_says_which_seed_shipped_and_whether_it_was_the_best():
    folder = BUNDLED_DIR / "infogan"
    config, numbers = (json.loads((folder / f).read_text()) for f in (CONFIG, "eval.json"))
    best = max(numbers["seeds"], key=lambda row: row["code_accuracy"])
    other = next(row for row in numbers["seeds"] if row is not best)
    mean = sum(row["code_accuracy"] for row in numbers["seeds"]) / len(numbers["seeds"])
    for shipped, phrase in ((best, f", the one of the {len(numbers['seeds'])} whose codes matched digits best."),
                            (other, ".")):
        command = re.sub(r"\bseed=\S+", f"seed={shipped['seed']}", numbers["training"]["command"])
        text = card_text("infogan", config, {**numbers, "training": {**numbers["training"], "command": command}})
        assert f"The shipped run is seed {shipped['seed']}{phrase}\n" in text
        assert f"| mean | {mean:.4f} |" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_model_by_name_through_every_door(name, tmp_path, request):
    g = opened(name, request)
    conditional = g.conditional
    # a digit for the conditional GAN, a categorical code for the InfoGAN
    asked = {g.label_key: 7} if conditional else {}
    x = g.sample(16, seed=0, **asked)
    assert x.shape == (16, 28, 28) and x.dtype == np.uint8 and x.max() > 200 and x.min() == 0
    assert torch.hub.load(str(ROOT), name, source="local").sample(4, seed=1).tolist() == g.sample(4, seed=1).tolist()
    by_path = torch.hub.load(str(ROOT), "generator", source="local", path=str(BUNDLED_DIR / name))
    assert by_path.sample(4, seed=1).tolist() == g.sample(4, seed=1).tolist()

    generate_main([f"model={name}", "n=12", f"out={tmp_path / 'gen'}", *([f"{g.label_key}=3"] if conditional else [])])
    np.testing.assert_array_equal(np.load(tmp_path / "gen" / "samples.npz")["images"],
                                  g.sample(12, seed=0, **({g.label_key: 3} if conditional else {})))
    evaluate_main([f"model={name}", "n=200", f"out={tmp_path / 'eval.json'}", *data_dir(g)])
    assert json.loads((tmp_path / "eval.json").read_text())["generator"] == g.describe()
    export_main([f"model={name}", f"out={tmp_path / 'export'}", "dtype=float16"])
    for file in (CONFIG, WEIGHTS):  # an export of a bundled model is the bundled model
        assert (tmp_path / "export" / file).read_bytes() == (BUNDLED_DIR / name / file).read_bytes()


def test_with_no_model_named_the_tools_open_the_bundled_conditional_gan(tmp_path):
    generate_main(["n=10", f"out={tmp_path / 'gen'}"])
    data = np.load(tmp_path / "gen" / "samples.npz")
    assert data["labels"].tolist() == list(range(10))
    np.testing.assert_array_equal(data["images"], load_generator("cgan").sample(10, seed=0))


@pytest.mark.parametrize("damage", ["weights", "config"])
def test_a_changed_bundled_file_is_refused_in_one_line(damage, tmp_path, monkeypatch, capsys):
    shutil.copytree(BUNDLED_DIR / "cgan", tmp_path / "cgan")
    path = tmp_path / "cgan" / (WEIGHTS if damage == "weights" else CONFIG)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        generate_main(["model=cgan", f"out={tmp_path / 'out'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("not the file that shipped" if damage == "config" else "SHA-256") in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", BUNDLED)
def test_each_shipped_card_is_the_one_card_py_writes_from_its_numbers(name):
    """README.md is what packaging writes from the folder's config.json and eval.json, so no hand edit or stale
    wording hides in a card (eval.json's numbers are checked against the weights below)."""
    folder = BUNDLED_DIR / name
    config, numbers = (json.loads((folder / file).read_text()) for file in (CONFIG, "eval.json"))
    assert (folder / "README.md").read_text() == card_text(name, config, numbers)


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED)
def test_the_model_card_tells_what_the_shipped_weights_score(name, request):
    """The card's numbers (eval.json, and the table in README.md) against a fresh evaluation of the shipped files,
    by the card's own protocol: 10,000 samples on its dataset's test set, seed 0."""
    folder = BUNDLED_DIR / name
    card = json.loads((folder / "eval.json").read_text())
    g = opened(name, request)
    fresh = evaluate_report(g, card["n"], card["seed"])
    for row in ("model", "real_reference"):
        for key in ("fid", "kid_mean", "precision", "recall", "density", "coverage", "classifier_score", "confidence",
                    "min_class_share", "label_accuracy"):
            if key in card[row]:
                assert fresh[row][key] == pytest.approx(card[row][key], rel=0.01, abs=1e-3), (row, key)
    text = (folder / "README.md").read_text()
    for title, key, fmt in COLUMNS:  # the card's table shows eval.json's numbers
        if key in card["model"]:
            assert re.search(rf"\| this model \([0-9]+ epochs\) \|.*\b{re.escape(fmt.format(card['model'][key]))}\b", text)
    assert card["training"]["command"] in text and card["training"]["commit"] in text
    fresh_share = memorisation(g.sample(card["n"], seed=card["seed"]), g.dataset)["memorised_share"]
    assert fresh_share == pytest.approx(card["memorisation"]["memorised_share"], abs=1e-3)
    if "codes" in card:  # an InfoGAN: what its codes found, and the card says so
        assert fresh["codes"]["code_digits"] == card["codes"]["code_digits"]
        assert fresh["codes"]["code_accuracy"] == pytest.approx(card["codes"]["code_accuracy"], abs=2e-3)
        for fresh_code, card_code in zip(fresh["codes"]["continuous"], card["codes"]["continuous"], strict=True):
            assert fresh_code == pytest.approx(card_code, abs=0.01)
        assert f"Code-to-digit accuracy: {card['codes']['code_accuracy']:.4f}" in text


@pytest.mark.slow
def test_packaging_a_run_writes_the_folder_and_a_card_with_every_number(trained_run, tmp_path):
    run = trained_run("cgan")
    with pytest.raises(UserError, match="--name 'Fashion cGAN': a bundled model's name is lower-case"):
        package(run, "Fashion cGAN", tmp_path / "bad", commit="abc1234", machine="m", dtype="float16")
    out = package(run, "cgan", tmp_path / "cgan", commit="abc1234", machine="a test machine",
                  dtype="float16", cas_n=200, cas_epochs=1, checkpoint="best", seed_runs=[run])
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG, WEIGHTS, *pretrained.CARD_FILES])
    numbers = json.loads((out / "eval.json").read_text())
    assert 0 <= numbers["memorisation"]["memorised_share"] <= 1
    assert numbers["cas"]["n"] == 200 and 0 <= numbers["cas"]["cas"] <= 1
    card = (out / "README.md").read_text()
    assert "abc1234" in card and "a test machine" in card and numbers["training"]["command"] in card
    assert numbers["training"]["checkpoint"] == "best_fid.ckpt" and "best checkpoint by validation FID" in card
    assert f"{numbers['memorisation']['memorised_share']:.4f} of the samples" in card
    assert f"scores {numbers['cas']['cas']:.4f} on the MNIST test set" in card
    assert load_generator(out).sample(4, digit=3, seed=1).shape == (4, 28, 28)
    # the seeds table: the run scored again from its best checkpoint, which is the shipped one
    (row,) = numbers["seeds"]
    assert row["checkpoint"] == "best_fid.ckpt" and row["fid"] == pytest.approx(numbers["model"]["fid"], rel=0.01)
    assert f"| mean ± std | {row['fid']:.2f} ± 0.00 |" in card


@pytest.mark.slow
def test_packaging_an_infogan_writes_what_its_codes_found_over_seeds(trained_run, tmp_path):
    run = trained_run("infogan")
    out = package(run, "infogan", tmp_path / "infogan", commit="abc1234", machine="a test machine", dtype="float16",
                  seed_runs=[run])
    numbers = json.loads((out / "eval.json").read_text())
    assert "cas" not in numbers and "label_accuracy" not in numbers["model"]  # a code is not a label
    assert len(numbers["seeds"]) == 1 and numbers["seeds"][0]["code_accuracy"] == numbers["codes"]["code_accuracy"]
    card = (out / "README.md").read_text()
    assert "## Codes" in card and f"Code-to-digit accuracy: {numbers['codes']['code_accuracy']:.4f}" in card
    assert "one row per categorical code" in card and "g.sample(16, code=3" in card
    assert json.loads((out / CONFIG).read_text())["codes"]["continuous"] == 2


@pytest.mark.slow
def test_a_resumed_training_is_packaged_whole(trained_run, tmp_path):
    """A run resumed from another run's checkpoint (its own folder) is one training: the card gives both commands
    (the second resuming with ckpt_path=last), the time of both, the best checkpoint over both, and asks a commit
    for each run; a missing first run is named in one line."""
    first = tmp_path / "first"
    shutil.copytree(trained_run("vanilla"), first)
    resumed = tmp_path / "resumed"
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "model=vanilla", *FAST, "trainer.max_epochs=2",
               f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={resumed}"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]

    runs = training_chain(resumed)
    assert runs == [first, resumed]
    fids = [json.loads((run / "metrics.json").read_text())["best"]["value"] for run in runs]
    best = chosen_checkpoint(runs, "best")
    assert best == runs[fids.index(min(fids))] / "checkpoints" / "best_fid.ckpt"
    assert chosen_checkpoint(runs, "last") == resumed / "checkpoints" / "last.ckpt"
    assert chosen_checkpoint(runs, "best_fid.ckpt") == resumed / "checkpoints" / "best_fid.ckpt"  # the latest run's
    for wrong in ("epoch_007.ckpt", "../resumed/checkpoints/last.ckpt"):
        with pytest.raises(UserError, match=f"--checkpoint {re.escape(wrong)}: no such file"):
            chosen_checkpoint(runs, wrong)
    record = run_record(runs, best)
    first_command, second_command = record["command"].split(" && ")
    assert first_command.startswith("python scripts/train.py model=vanilla") and "ckpt_path" not in first_command
    assert "trainer.max_epochs=2" in second_command and second_command.endswith(" ckpt_path=last")
    seconds = sum(json.loads((run / "metrics.json").read_text())["seconds"] for run in runs)
    assert record["minutes"] == round(seconds / 60, 1) and record["run_epochs"] == 2 and record["runs"] == 2

    with pytest.raises(UserError, match="a training of 2 runs .* give --commit once per run"):
        package(resumed, "vanilla", tmp_path / "out", commit="abc1234", machine="m", dtype="float16")

    def set_status(run, status):
        metrics_file = run / "metrics.json"
        metrics_file.write_text(json.dumps({**json.loads(metrics_file.read_text()), "status": status}))

    # a run stopped by a signal and resumed is part of the training; a failed run, or the training's end, is not
    set_status(first, "interrupted")
    assert run_record(runs, best)["command"] == record["command"]
    for first_status, last_status, refused, status in (("failed", "completed", first, "failed"),
                                                       ("interrupted", "interrupted", resumed, "interrupted")):
        set_status(first, first_status)
        set_status(resumed, last_status)
        with pytest.raises(UserError, match=f"{re.escape(str(refused))} did not complete \\(status '{status}'\\)"):
            run_record(runs, best)
    shutil.rmtree(first)
    with pytest.raises(UserError, match="resumed from .*whose run folder is not there"):
        training_chain(resumed)
    assert not (tmp_path / "out").exists()
