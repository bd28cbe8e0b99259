import json

import pytest
import torch

from gan_lightning.errors import UserError
from gan_lightning.evaluate import main
from gan_lightning.files import write_json
from gan_lightning.generate import main as generate_main


def test_evaluate_prints_the_table_and_writes_json(trained_run, capsys, tmp_path):
    ckpt = trained_run("cgan") / "checkpoints" / "last.ckpt"
    out = tmp_path / "report.json"
    main([f"ckpt_path={ckpt}", "n=200", f"out={out}"])
    printed = capsys.readouterr().out
    assert "| model |" in printed and "| real data (200 held-out) |" in printed
    # issue 3: label accuracy overall (the table) and per digit, for the digits the conditional model was asked for
    (per_digit,) = [line for line in printed.splitlines() if line.startswith("label accuracy per class, model: ")]
    assert [entry.split(":")[0] for entry in per_digit.split(": ", 1)[1].split()] == [str(d) for d in range(10)]
    report = json.loads(out.read_text())
    assert report["n"] == 200 and report["model"]["num_samples"] == 200
    # the conditional model is asked for every digit equally often
    assert report["model"]["label_accuracy_per_class"] and len(report["model"]["class_share"]) == 10
    real = report["real_reference"]
    assert real["label_accuracy"] > 0.97 and real["classifier_score"] > 8
    # a few training batches are far from real digits
    assert report["model"]["fid"] > 10 * real["fid"]


def test_evaluate_defaults_to_json_next_to_the_checkpoint(trained_run, tmp_path):
    ckpt = tmp_path / "copy.ckpt"
    ckpt.write_bytes((trained_run("vanilla") / "checkpoints" / "last.ckpt").read_bytes())
    main([f"ckpt_path={ckpt}", "n=50"])
    report = json.loads((tmp_path / "copy.ckpt.eval.json").read_text())
    assert "label_accuracy" not in report["model"]  # unconditional: nothing was asked for


@pytest.mark.parametrize("args, message", [
    (["n=0"], "n must be an integer from 2 to 10000"),
    (["n=20000"], "n must be an integer from 2 to 10000"),
    (["ckpt_path=/no/such.ckpt"], "not found"),
    (["bogus=1"], "unknown key 'bogus'"),
    (["cas=true"], "cas=true trains a classifier on generated digits with the labels asked for"),
    (["cas_n=5"], "cas_n must be an integer from 10 to 60000"),
    (["cas_epochs=0"], "cas_epochs must be a positive integer"),
])
def test_evaluate_rejects_bad_requests(trained_run, capsys, args, message):
    ckpt = trained_run("dcgan") / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        main([f"ckpt_path={ckpt}", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_evaluate_leaves_a_folder_out_alone(trained_run, capsys, tmp_path):
    ckpt = trained_run("dcgan") / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit):
        main([f"ckpt_path={ckpt}", "n=20", f"out={tmp_path}"])
    assert "is a folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _strict(text: str):
    """json.loads that refuses NaN and Infinity, which Python writes and reads but JSON does not have."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def nan_checkpoint(trained_run, tmp_path):
    """A real checkpoint whose generator weights (and their moving average) are all NaN."""
    checkpoint = torch.load(trained_run("vanilla") / "checkpoints" / "last.ckpt", weights_only=True)
    for name, value in checkpoint["state_dict"].items():
        if name.startswith(("generator.", "generator_ema.")) and value.is_floating_point():
            value.fill_(float("nan"))
    path = tmp_path / "nan.ckpt"
    torch.save(checkpoint, path)
    return path


def test_a_generator_of_nan_is_said_in_one_line_and_no_report_is_written(nan_checkpoint, capsys, tmp_path):
    out = tmp_path / "report.json"
    with pytest.raises(SystemExit) as exit_info:
        main([f"ckpt_path={nan_checkpoint}", "n=50", f"out={out}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the generator of {nan_checkpoint} produces NaN or infinite values") and \
        err.count("\n") == 1
    assert not out.exists() and not nan_checkpoint.with_name("nan.ckpt.eval.json").exists()
    # generate.py says the same, and writes no digits of garbage
    with pytest.raises(SystemExit) as exit_info:
        generate_main([f"ckpt_path={nan_checkpoint}", "n=8", f"out={tmp_path / 'samples'}"])
    assert exit_info.value.code == 2 and "produces NaN or infinite values" in capsys.readouterr().err
    assert not (tmp_path / "samples").exists()


def test_reports_are_strict_json(tmp_path):
    path = tmp_path / "report.json"
    with pytest.raises(UserError, match=r"holds NaN or infinite numbers, so it was not written: model\.fid, "
                                        r"model\.class_share\[1\]"):
        write_json(path, {"n": 2, "model": {"fid": float("nan"), "class_share": [0.5, float("inf")]}})
    assert list(tmp_path.iterdir()) == []


def test_a_digit_never_asked_for_has_a_null_label_accuracy(trained_run, tmp_path):
    out = tmp_path / "report.json"
    main([f"ckpt_path={trained_run('cgan') / 'checkpoints' / 'last.ckpt'}", "n=5", f"out={out}"])
    report = _strict(out.read_text())
    assert report["model"]["label_accuracy_per_class"][5:] == [None] * 5  # only digits 0-4 were asked for
    assert all(v is not None for v in report["model"]["label_accuracy_per_class"][:5])


# ---- memorisation ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_memorisation_finds_copies_of_training_images_and_not_new_digits():
    from gan_lightning.data.datasets import load_mnist
    from gan_lightning.metrics.memorisation import memorisation

    train, _ = load_mnist("train")
    test, _ = load_mnist("test")
    copies = memorisation(train[1000:1300].numpy())  # a generator that returns training digits
    assert copies["memorised_share"] == 1 and copies["median_distance"] == 0
    assert copies["closest"][0][2] == 0 and 1000 <= copies["closest"][0][1] < 1300
    new = memorisation(test[5000:5300].numpy())  # digits no model saw: near the 1% the threshold allows
    assert new["memorised_share"] < 0.05 and new["test_memorised_share"] == pytest.approx(0.01, abs=0.001)
    shifted = memorisation(torch.roll(train[1000:1300], 3, dims=2).numpy())  # copies moved by 3 pixels still look new
    assert shifted["memorised_share"] < 0.2


@pytest.mark.slow
def test_evaluate_memorisation_writes_the_share_and_the_closest_pairs(trained_run, capsys, tmp_path):
    from PIL import Image

    ckpt = trained_run("cgan") / "checkpoints" / "last.ckpt"
    main([f"ckpt_path={ckpt}", "n=100", f"out={tmp_path / 'report.json'}", "memorisation=true"])
    report = json.loads((tmp_path / "report.json").read_text())["memorisation"]
    assert 0 <= report["memorised_share"] <= 1 and len(report["closest"]) == 16
    assert Image.open(tmp_path / "report.closest.png").size == (16 * 30 + 2, 2 * 30 + 2)
    assert "memorised share" in capsys.readouterr().out
