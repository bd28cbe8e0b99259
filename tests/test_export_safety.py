"""Nothing lost on export, nothing shadowed silently: an earlier export is replaced only with `overwrite`, and then
only its two files; the package's model folders are never written; a bare bundled name means the bundled model, and
says so when the current folder holds one of that name. The bundled models are the sources."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from gan_lightning import load_generator, pretrained
from gan_lightning.errors import UserError
from gan_lightning.evaluate import default_report_path
from gan_lightning.export import main as export_main
from gan_lightning.generate import main as generate_main
from gan_lightning.pretrained import BUNDLED_DIR, CARD_FILES, CONFIG, WEIGHTS


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_failure(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        export_main(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def earlier_export(tmp_path, capsys) -> Path:
    """A folder holding an export of the bundled DCGAN, a model card (the shipped DCGAN's) and a file of the user's."""
    folder = tmp_path / "my_gan"
    export_main(["model=dcgan", f"out={folder}"])
    for name in CARD_FILES:
        shutil.copy(BUNDLED_DIR / "dcgan" / name, folder / name)
    (folder / "notes.txt").write_text("mine")
    capsys.readouterr()
    return folder


def test_an_export_over_an_earlier_one_is_refused_and_changes_nothing(earlier_export, capsys):
    before = snapshot(earlier_export)
    err = one_line_failure(capsys, "model=cgan", f"out={earlier_export}")
    assert "holds an export already" in err and "overwrite=true" in err
    assert snapshot(earlier_export) == before


def test_overwrite_replaces_the_export_and_keeps_every_other_file(earlier_export, capsys):
    before = snapshot(earlier_export)
    export_main(["model=cgan", f"out={earlier_export}", "overwrite=true"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "replaced config.json, model.safetensors; kept README.md, eval.json, notes.txt, samples.png" in err
    after = snapshot(earlier_export)
    assert after.keys() == before.keys()
    assert all(after[name] == before[name] for name in before if name not in (CONFIG, WEIGHTS))
    assert all(after[name] != before[name] for name in (CONFIG, WEIGHTS))
    np.testing.assert_array_equal(load_generator(earlier_export).sample(8, seed=0), load_generator("cgan").sample(8, seed=0))


def test_save_pretrained_refuses_an_earlier_export_unless_asked(earlier_export, capsys):
    vanilla = load_generator("vanilla")
    before = snapshot(earlier_export)
    with pytest.raises(UserError, match="holds an export already"):
        vanilla.save_pretrained(earlier_export)
    assert snapshot(earlier_export) == before
    vanilla.save_pretrained(earlier_export, overwrite=True)
    assert "replaced config.json, model.safetensors" in capsys.readouterr().err
    assert load_generator(earlier_export).name == "Vanilla GAN"
    assert all(snapshot(earlier_export)[name] == before[name] for name in (*CARD_FILES, "notes.txt"))


@pytest.mark.parametrize("overwrite", ["false", "true"])
def test_a_folder_of_other_files_is_refused_and_kept(tmp_path, capsys, overwrite):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")  # a README.md that is not an export's card
    err = one_line_failure(capsys, "model=cgan", f"out={folder}", f"overwrite={overwrite}")
    assert "holds other files (README.md)" in err
    assert snapshot(folder) == {"README.md": b"my notes"}


@pytest.mark.parametrize("out", ["cgan", "cgan/generator.pt", "mine"])
def test_the_packages_model_folders_are_never_written(capsys, out):
    before = snapshot(BUNDLED_DIR / "cgan")
    err = one_line_failure(capsys, "model=dcgan", f"out={BUNDLED_DIR / out}", "overwrite=true")
    assert "inside the installed package" in err and "pick another folder" in err
    with pytest.raises(UserError, match="inside the installed package"):
        load_generator("dcgan").save_pretrained(BUNDLED_DIR / out, overwrite=True)
    assert snapshot(BUNDLED_DIR / "cgan") == before
    assert not (BUNDLED_DIR / "mine").exists()


def test_packaging_alone_rebuilds_a_bundled_folder(tmp_path, monkeypatch, capsys):
    """The way `package_pretrained` writes (`_package=True`), into a copy of the package's folder."""
    dcgan = load_generator("dcgan")
    package_dir = tmp_path / "pretrained"
    shutil.copytree(BUNDLED_DIR / "cgan", package_dir / "cgan")
    monkeypatch.setattr(pretrained, "BUNDLED_DIR", package_dir)
    with pytest.raises(UserError, match="inside the installed package"):
        dcgan.save_pretrained(package_dir / "cgan", overwrite=True)
    pretrained.save_pretrained(dcgan.generator, "dcgan", dcgan.info["spec"], package_dir / "cgan", "float16",
                               overwrite=True, _package=True)
    assert load_generator(package_dir / "cgan").name == "DCGAN"


def test_overwrite_takes_true_or_false(tmp_path, capsys):
    err = one_line_failure(capsys, "model=cgan", f"out={tmp_path / 'gen'}", "overwrite=maybe")
    assert "overwrite must be true or false, got 'maybe'" in err
    assert not (tmp_path / "gen").exists()


def test_a_bare_bundled_name_is_the_bundled_model_and_says_so_when_a_folder_shadows_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert load_generator("cgan").name == "conditional GAN" and capsys.readouterr().err == ""
    export_main(["model=vanilla", "out=cgan"])  # ./cgan: a Vanilla GAN
    capsys.readouterr()
    assert load_generator("cgan").name == "conditional GAN"
    err = capsys.readouterr().err
    assert err == "note: cgan is the bundled model, not the folder ./cgan here; load that by its path, ./cgan " \
                  "(ckpt_path=./cgan in the tools)\n"
    assert load_generator("./cgan").name == "Vanilla GAN" and capsys.readouterr().err == ""
    # the tools: model=cgan (or no model at all) is the bundled model; ckpt_path=cgan is always the path
    generate_main(["model=cgan", "n=8", "out=bundled"])
    assert "note: cgan is the bundled model" in capsys.readouterr().err
    generate_main(["ckpt_path=cgan", "n=8", "out=folder"])
    assert "note" not in capsys.readouterr().err
    bundled, folder = (np.load(Path(name) / "samples.npz") for name in ("bundled", "folder"))
    np.testing.assert_array_equal(bundled["images"], load_generator("cgan").sample(8, seed=0))
    np.testing.assert_array_equal(folder["images"], load_generator("./cgan").sample(8, seed=0))
    assert "labels" in bundled and "labels" not in folder
    assert default_report_path("cgan") == Path("cgan.eval.json")
    assert default_report_path(Path("cgan")) == Path("cgan/eval.json")
