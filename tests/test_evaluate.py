import json

import pytest

from gan_lightning.evaluate import main


def test_evaluate_prints_the_table_and_writes_json(trained_run, capsys, tmp_path):
    ckpt = trained_run("cgan") / "checkpoints" / "last.ckpt"
    out = tmp_path / "report.json"
    main([f"ckpt_path={ckpt}", "n=200", f"out={out}"])
    printed = capsys.readouterr().out
    assert "| model |" in printed and "| real data (200 held-out) |" in printed
    # issue 3: label accuracy overall (the table) and per digit, for the digits the conditional model was asked for
    (per_digit,) = [line for line in printed.splitlines() if line.startswith("label accuracy per digit, model: ")]
    assert [entry.split(":")[0] for entry in per_digit.split(": ", 1)[1].split()] == [str(d) for d in range(10)]
    report = json.loads(out.read_text())
    assert report["n"] == 200 and report["model"]["num_samples"] == 200
    # the conditional model is asked for every digit equally often
    assert report["model"]["label_accuracy_per_class"] and len(report["model"]["class_share"]) == 10
    real = report["real_reference"]
    assert real["label_accuracy"] > 0.97 and real["mnist_score"] > 8
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
