"""Generator folders (config.json + model.safetensors): saving, loading, checking, and the Python API."""

import json
import re

import numpy as np
import pytest
import torch

from gan_lightning import load_generator, pretrained
from gan_lightning.checkpoint import read_generator
from gan_lightning.errors import UserError
from gan_lightning.export import main as export_main
from gan_lightning.generate import main


def ckpt(trained_run, model: str):
    return trained_run(model) / "checkpoints" / "last.ckpt"


def one_line_failure(capsys, entry, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        entry(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("model", ["vanilla", "cgan"])
def test_save_pretrained_then_load_generator_gives_the_checkpoints_samples(trained_run, tmp_path, model):
    from_checkpoint = load_generator(ckpt(trained_run, model))
    folder = from_checkpoint.save_pretrained(tmp_path / "gen")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    from_folder = load_generator(folder)
    digit = 7 if from_checkpoint.conditional else None
    a, b = (g.sample(24, digit=digit, seed=5) for g in (from_checkpoint, from_folder))
    assert a.shape == (24, 28, 28) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert from_folder.name == ("conditional GAN" if model == "cgan" else "Vanilla GAN")
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == pretrained.FORMAT and config["dtype"] == "float32"
    assert config["generator"] == from_checkpoint.info["spec"]


def test_float16_weights_take_half_the_space_and_draw_nearly_the_same_digits(trained_run, tmp_path):
    generator = load_generator(ckpt(trained_run, "cgan"))
    full = generator.save_pretrained(tmp_path / "fp32")
    half = generator.save_pretrained(tmp_path / "fp16", dtype="float16")
    assert (half / "model.safetensors").stat().st_size < 0.55 * (full / "model.safetensors").stat().st_size
    a, b = generator.sample(16, seed=1), load_generator(half).sample(16, seed=1)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2  # of 255 grey levels


def test_the_api_samples_digits_and_reaches_morph_walk_and_sweep(trained_run):
    g = load_generator(ckpt(trained_run, "cgan"))
    x = g.sample(16, digit=7, seed=0)
    np.testing.assert_array_equal(x, g.sample(16, digit=7, seed=0))
    assert not np.array_equal(x, g.sample(16, digit=7, seed=1))
    assert g.morph(seed=0, digit=3, digit_to=8, frames=4).shape == (4, 1, 28, 28)
    assert g.walk(seed=0, direction=2, frames=3).shape == (3, 10, 28, 28)
    assert g.sweep(seed=0, frames_per_digit=2)[1].shape == (10, 28, 28)
    with pytest.raises(UserError, match="digit"):
        g.sample(4, digit=10)
    with pytest.raises(UserError, match="n must be"):
        g.sample(0)


def test_export_writes_a_folder_that_every_tool_takes(trained_run, tmp_path):
    path = ckpt(trained_run, "cgan")
    export_main([f"ckpt_path={path}", f"out={tmp_path / 'gen'}"])
    main([f"ckpt_path={path}", f"out={tmp_path / 'a'}", "n=20", "digit=4"])
    main([f"ckpt_path={tmp_path / 'gen'}", f"out={tmp_path / 'b'}", "n=20", "digit=4"])
    a, b = (np.load(tmp_path / name / "samples.npz") for name in "ab")
    np.testing.assert_array_equal(a["images"], b["images"])
    # an export of an export (the folder as the source) is the same folder again
    export_main([f"ckpt_path={tmp_path / 'gen'}", f"out={tmp_path / 'again'}"])
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "gen" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def _damage(folder, how: str) -> None:
    weights, config = folder / "model.safetensors", folder / "config.json"
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif how == "tampered":
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif how == "foreign":  # another file under the right name, its hash recorded: still not weights
        weights.write_bytes(b"not a safetensors file at all")
        entry = json.loads(config.read_text())
        entry["sha256"]["model.safetensors"] = pretrained.sha256(weights.read_bytes())
        config.write_text(json.dumps(entry))
    elif how == "no config":
        config.unlink()
    elif how == "bad json":
        config.write_text("{not json")
    elif how == "other network":
        entry = json.loads(config.read_text())
        entry["generator"]["ngf"] = 16
        config.write_text(json.dumps(entry))
    elif how == "code target":
        entry = json.loads(config.read_text())
        entry["generator"]["name"] = "subprocess.Popen"  # (files of 0.1.0 named it by `_target_`: test_legacy.py)
        config.write_text(json.dumps(entry))


@pytest.mark.parametrize(
    "how, message",
    [
        ("truncated", "does not match the SHA-256"),
        ("tampered", "does not match the SHA-256"),
        ("foreign", "not a safetensors file"),
        ("no config", "config.json (what rebuilds the network) is missing"),
        ("bad json", "not valid JSON"),
        ("other network", "do not fit the network"),
        ("code target", "refusing to build network"),
    ],
)
def test_a_damaged_or_foreign_folder_is_refused_in_one_line(trained_run, tmp_path, capsys, how, message):
    folder = load_generator(ckpt(trained_run, "cgan")).save_pretrained(tmp_path / "gen")
    _damage(folder, how)
    with pytest.raises(UserError, match=re.escape(message)):
        load_generator(folder)
    err = one_line_failure(capsys, main, f"ckpt_path={folder}", f"out={tmp_path / 'out'}")
    assert message in err
    assert not (tmp_path / "out").exists()


def test_a_source_is_a_model_name_or_a_checkpoint_not_both(trained_run, tmp_path, capsys):
    err = one_line_failure(capsys, main, "model=cgan", f"ckpt_path={ckpt(trained_run, 'cgan')}", f"out={tmp_path}/o")
    assert "not both" in err
    err = one_line_failure(capsys, main, "model=stylegan", f"out={tmp_path / 'o'}")
    assert "model='stylegan' is not one of: vanilla, dcgan, cgan" in err
    with pytest.raises(UserError, match="neither a bundled model"):
        load_generator("stylegan")
    assert not (tmp_path / "o").exists()


def test_a_generator_file_export_still_loads(trained_run, tmp_path):
    path = ckpt(trained_run, "dcgan")
    export_main([f"ckpt_path={path}", f"out={tmp_path / 'generator.pt'}"])
    generator, _ = read_generator(tmp_path / "generator.pt")
    reference, _ = read_generator(path)
    assert all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), reference.state_dict().values()))
