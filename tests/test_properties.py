"""Property tests (hypothesis): whatever a user types, every entry point (train, generate, evaluate, export, demo)
answers bad input with one `error:` line and exit code 2, never a traceback, and leaves its output as it was.

The `*_refuses_*` tests draw any number of other settings, good or bad, and end the command line with one value
that cannot work (a file where a folder goes, a folder under a file, a truncated or foreign checkpoint, a
number out of range, a huge integer, a list where a path goes...): the command must refuse it.
"""

import contextlib
import io
import os
import socket
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan_lightning.checks import MAX_SEED
from gan_lightning.config import check_overrides
from gan_lightning.errors import UserError

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---- what every test needs: files to point at, a way to run an entry point and to compare folders ----------


@pytest.fixture(scope="module")
def files(trained_run, tmp_path_factory) -> dict[str, str]:
    """Placeholders for the paths a drawn value may name: real checkpoints and several kinds of bad file."""
    folder = tmp_path_factory.mktemp("files")
    vanilla = trained_run("vanilla") / "checkpoints" / "last.ckpt"
    cgan = trained_run("cgan") / "checkpoints" / "last.ckpt"
    (folder / "random.bin").write_bytes(bytes(range(256)) * 8)
    (folder / "truncated.ckpt").write_bytes(cgan.read_bytes()[: cgan.stat().st_size // 2])
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "epoch": 3}, folder / "foreign.pt")
    (folder / "a_folder").mkdir()
    return {
        "{vanilla}": str(vanilla),
        "{cgan}": str(cgan),
        "{random}": str(folder / "random.bin"),
        "{truncated}": str(folder / "truncated.ckpt"),
        "{foreign}": str(folder / "foreign.pt"),
        "{missing}": str(folder / "missing.ckpt"),
        "{a_folder}": str(folder / "a_folder"),
    }


def workspace(tmp_path_factory) -> Path:
    """A fresh folder holding a file (`taken`) and an output folder with earlier results (`out`)."""
    work = tmp_path_factory.mktemp("work")
    (work / "taken").write_text("a file, not a folder")
    (work / "out").mkdir()
    for name in ("keep.txt", "samples.png", "report.json", "generator.pt"):
        (work / "out" / name).write_text(f"an earlier {name}")
    return work


def fill(value: str, files: dict[str, str], work: Path) -> str:
    for placeholder, path in {**files, "{taken}": str(work / "taken"), "{out}": str(work / "out")}.items():
        value = value.replace(placeholder, path)
    return value


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def run(main, argv: list[str], cwd: Path | None = None) -> tuple[int, str]:
    """main(argv) as the shell would run it -> (exit code, stderr)."""
    stderr, here = io.StringIO(), os.getcwd()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            if cwd is not None:
                os.chdir(cwd)
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code
        finally:
            os.chdir(here)
    return code, stderr.getvalue()


def assert_refused(code, err: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def argument(pair: tuple[str, str], files: dict[str, str], work: Path) -> str:
    key, value = pair
    return f"{key}={fill(value, files, work)}"


HUGE = st.one_of(st.integers(2**63, 2**80), st.integers(-(2**80), -(2**63))).map(str)
NEGATIVE = st.integers(-(2**40), -1).map(str)
NOT_A_NUMBER = st.sampled_from(["abc", "1.5", "nan", "inf", "-inf", "true", "[1]", "{}", "null", "''"])
NOT_A_PATH = st.sampled_from(["5", "1.5", "true", "[1,2]", "{}", "''"])
BAD_FILES = st.sampled_from(["{random}", "{truncated}", "{foreign}", "{missing}", "{a_folder}", "{taken}"])
# an output folder that cannot be: a file, under a file, on a file system that makes no folders
BAD_FOLDERS = st.sampled_from(["{taken}", "{taken}/sub", "{taken}/sub/deeper", "/proc/gan-lightning-test/out"])


def pairs(keys: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    return st.one_of(*(st.tuples(st.just(key), values) for key, values in keys.items()))


# ---- train ------------------------------------------------------------------------------------------------------

VALUES = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["null", "true", "false", "[]", "[1,2]", "{}", "''", "abc", "1e-3", "0x10", "${seed}", "???"]),
    st.text(max_size=12),
)
TRAIN_KEYS = st.sampled_from([
    "model.noise_dim", "model.grid_cols", "optimizer.lr", "data.batch_size", "data.val_size", "trainer.max_epochs",
    "seed", "model", "data.rotation", "callbacks.last_checkpoint.every_n_batches", "ckpt_path", "paths.output_dir",
])


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(TRAIN_KEYS, VALUES), min_size=1, max_size=3))
def test_train_pre_check_accepts_or_names_the_problem(overrides):
    try:
        check_overrides([f"{key}={value}" for key, value in overrides], with_hydra=True)
    except UserError as e:
        assert str(e).strip() and "\n" not in str(e)


TINY = [
    "model=vanilla", "~callbacks.quality", "~callbacks.best_checkpoint", "~logger", "data.batch_size=16",
    "trainer.accelerator=cpu", "trainer.limit_train_batches=1", "trainer.limit_val_batches=0",
]
TRAIN_OTHER = pairs({
    "seed": st.integers(-3, 2**33).map(str),
    "trainer.max_epochs": st.integers(-2, 3).map(str),
    "callbacks.last_checkpoint.every_n_batches": st.integers(-1, 3).map(str),
    "optimizer.lr": st.sampled_from(["1e-3", "0", "-1", "1e12"]),
    "data.rotation": st.sampled_from(["0", "10", "200", "x"]),
})
TRAIN_BAD = pairs({
    "seed": st.one_of(HUGE, NEGATIVE, st.integers(2**32, 2**62).map(str), NOT_A_NUMBER.filter(lambda v: v != "null")),
    "callbacks.last_checkpoint.every_n_batches": st.one_of(NEGATIVE, NOT_A_NUMBER),
    "callbacks.sample_grid.every_n_epochs": st.integers(-(2**70), 0).map(str),
    "trainer.max_epochs": st.one_of(st.integers(-(2**70), -2).map(str), NOT_A_NUMBER.filter(lambda v: v != "null")),
    "model.noise_dim": st.one_of(st.integers(-(2**70), 0).map(str), NOT_A_NUMBER),
    "data.batch_size": st.one_of(st.integers(-(2**70), 0).map(str), NOT_A_NUMBER),
    "model": st.sampled_from(["foo", "vanilla,foo", "[1]"]),
    "data.rotation": st.sampled_from(["-1", "181", "1e400", "x"]),
    # a checkpoint of another model (the cGAN's, while the model is the vanilla GAN), or no checkpoint at all
    "ckpt_path": st.one_of(st.sampled_from(["{cgan}", "last"]), BAD_FILES, NOT_A_PATH),
    "hydra.run.dir": BAD_FOLDERS.filter(lambda v: not v.startswith("/proc")),
    "paths.output_dir": st.one_of(BAD_FOLDERS.filter(lambda v: not v.startswith("/proc")), NOT_A_PATH),
    "runs_dir": NOT_A_PATH,
    # Lightning's own checks of the trainer, made by the run as it builds the trainer
    "trainer.precision": st.sampled_from(["17", "x", "bf17-mixed"]),
    "trainer.devices": st.sampled_from(["0", "[]", "x"]),
    "trainer.strategy": st.sampled_from(["foo", "deepspeed_stage_9"]),
    "trainer.accelerator": st.sampled_from(["tpu", "mps", "foo"]),
    "trainer.gradient_clip_val": st.sampled_from(["0.5", "1"]),
    "trainer.accumulate_grad_batches": st.sampled_from(["2", "0"]),
})


@pytest.mark.slow
@SETTINGS
@given(other=st.lists(TRAIN_OTHER, max_size=3), bad=TRAIN_BAD)
def test_train_refuses_bad_input_and_leaves_nothing_behind(files, tmp_path_factory, other, bad):
    """Refused before Hydra makes a run folder (values, folders, the checkpoint's path), or by the run while it
    builds its objects (Lightning's checks of the trainer, a checkpoint of another model), which then takes its
    folder away: either way one line, exit code 2, and the workspace byte for byte as it was."""
    from gan_lightning import train

    work = workspace(tmp_path_factory)
    (work / "outputs" / "train" / "2020-01-01_00-00-00").mkdir(parents=True)  # an earlier run, no last.ckpt
    (work / "outputs" / "train" / "2020-01-01_00-00-00" / "keep.txt").write_text("an earlier run")
    before = snapshot(work)
    argv = ["train.py", *TINY, *(argument(pair, files, work) for pair in [*other, bad])]
    with mock.patch.object(sys, "argv", argv):
        code, err = run(lambda _: train.main(), [], cwd=work)
    assert_refused(code, err)
    assert snapshot(work) == before  # no run folder, nothing replaced


@pytest.mark.slow
def test_train_refuses_a_checkpoint_of_another_model_in_one_line(files, tmp_path):
    """The audit's case: a cGAN checkpoint resumed as the vanilla GAN once gave a page of "size mismatch"."""
    from gan_lightning import train

    argv = ["train.py", *TINY, f"ckpt_path={files['{cgan}']}"]
    with mock.patch.object(sys, "argv", argv):
        code, err = run(lambda _: train.main(), [], cwd=tmp_path)
    assert_refused(code, err)
    assert "was saved by another model (model: 'cgan' in the checkpoint, 'vanilla' here" in err
    assert list(tmp_path.iterdir()) == []


# ---- generate -----------------------------------------------------------------------------------------------

GENERATE_VALUES = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(["null", "all", "true", "1.5", "-0.5", "nan", "inf", "[1]", "x", "", "sample", "morph",
                     "sweep", "walk", "progress", "9", "10", "cuda"]),
)
GENERATE_KEYS = st.sampled_from([
    "mode", "n", "seed", "digit", "batch_size", "grid_max", "png", "idx", "frames", "fps", "scale", "seed_to",
    "digit_to", "direction", "span", "device", "run_dir",
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(GENERATE_KEYS, GENERATE_VALUES), max_size=4))
def test_generate_never_crashes_and_never_touches_files_on_error(trained_run, tmp_path_factory, args):
    from gan_lightning.generate import main

    out = tmp_path_factory.mktemp("out")
    before = {"keep.txt": b"not ours", "samples.png": b"an older grid", "morph.gif": b"an older morph"}
    for name, content in before.items():
        (out / name).write_bytes(content)
    ckpt = trained_run("cgan") / "checkpoints" / "last.ckpt"
    code, err = run(main, [f"ckpt_path={ckpt}", f"out={out}", *(f"{key}={value}" for key, value in args)])
    if code:
        assert_refused(code, err)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # an error leaves `out` as it was
    else:
        assert (out / "keep.txt").read_bytes() == b"not ours"  # only the mode's own outputs are replaced


GENERATE_OTHER = pairs({
    "mode": st.sampled_from(["sample", "morph", "sweep", "walk"]),  # (progress writes into run_dir, not out)
    "n": st.integers(1, 12).map(str),
    "seed": st.integers(0, MAX_SEED).map(str),
    "digit": st.sampled_from(["all", "3", "null"]),
    "frames": st.integers(2, 4).map(str),
    "idx": st.sampled_from(["true", "false"]),
})
GENERATE_BAD = pairs({
    "out": st.one_of(BAD_FOLDERS, NOT_A_PATH),
    "ckpt_path": st.one_of(BAD_FILES, NOT_A_PATH),
    "seed": st.one_of(HUGE, NEGATIVE, NOT_A_NUMBER),
    "seed_to": st.one_of(HUGE, NEGATIVE, NOT_A_NUMBER.filter(lambda v: v != "null")),
    "n": st.one_of(st.integers(-(2**70), 0).map(str), NOT_A_NUMBER),
    "digit": st.one_of(HUGE, st.integers(10, 2**70).map(str), NEGATIVE, st.sampled_from(["x", "1.5", "[1]"])),
    "span": st.sampled_from(["0", "-1", "inf", "nan", "x"]),
    "device": st.sampled_from(["cuda:99", "meta", "gpu", "[0]", "5"]),
    "mode": st.sampled_from(["bogus", "5", "[1]"]),
})


@SETTINGS
@given(other=st.lists(GENERATE_OTHER, max_size=3), bad=GENERATE_BAD)
def test_generate_refuses_bad_paths_and_huge_numbers_and_leaves_out_alone(files, tmp_path_factory, other, bad):
    from gan_lightning.generate import main

    work = workspace(tmp_path_factory)
    before = snapshot(work)
    args = [f"ckpt_path={files['{cgan}']}", f"out={work / 'out'}", *(argument(p, files, work) for p in [*other, bad])]
    assert_refused(*run(main, args))
    assert snapshot(work) == before


# ---- evaluate ---------------------------------------------------------------------------------------------------

EVALUATE_OTHER = pairs({
    "n": st.integers(2, 40).map(str),
    "seed": st.integers(0, MAX_SEED).map(str),
    "batch_size": st.integers(1, 64).map(str),
    "out": st.sampled_from(["{out}/report.json", "{out}/new/report.json"]),
})
EVALUATE_BAD = pairs({
    "out": st.one_of(st.sampled_from(["{out}", "{taken}/report.json", "{taken}/sub/report.json",
                                      "/proc/gan-lightning-test/report.json"]), NOT_A_PATH),
    "ckpt_path": st.one_of(BAD_FILES, NOT_A_PATH),
    "n": st.one_of(st.integers(-(2**70), 1).map(str), st.integers(10_001, 2**80).map(str), NOT_A_NUMBER),
    "seed": st.one_of(HUGE, NEGATIVE, NOT_A_NUMBER),
    "batch_size": st.one_of(st.integers(-(2**70), 0).map(str), NOT_A_NUMBER),
    "device": st.sampled_from(["cuda:99", "meta", "gpu", "[0]", "5"]),
    "bogus": st.just("1"),
})


@SETTINGS
@given(other=st.lists(EVALUATE_OTHER, max_size=3), bad=EVALUATE_BAD)
def test_evaluate_refuses_bad_input_and_leaves_its_report_alone(files, tmp_path_factory, other, bad):
    from gan_lightning.evaluate import main

    work = workspace(tmp_path_factory)
    before = snapshot(work)
    args = [f"ckpt_path={files['{cgan}']}", "n=20", f"out={work / 'out' / 'report.json'}",
            *(argument(p, files, work) for p in [*other, bad])]
    assert_refused(*run(main, args))
    assert snapshot(work) == before


# ---- export -----------------------------------------------------------------------------------------------------

EXPORT_BAD = pairs({
    "out": st.one_of(st.sampled_from(["{out}", "{taken}/g.pt", "{taken}/sub/g.pt", "{cgan}",
                                      "/proc/gan-lightning-test/g.pt"]), NOT_A_PATH),
    "ckpt_path": st.one_of(BAD_FILES, NOT_A_PATH),
    "model": st.sampled_from(["cgan", "stylegan", "[1,2]", "7"]),  # with ckpt_path given, any model is one too many
    "dtype": st.sampled_from(["float64", "half", "1"]),
    "bogus": st.just("1"),
})


@SETTINGS
@given(bad=EXPORT_BAD)
def test_export_refuses_bad_input_and_leaves_out_alone(files, tmp_path_factory, bad):
    from gan_lightning.export import main as export_main

    work = workspace(tmp_path_factory)
    before, checkpoint = snapshot(work), Path(files["{cgan}"]).read_bytes()
    args = [f"ckpt_path={files['{cgan}']}", f"out={work / 'out' / 'generator.pt'}", argument(bad, files, work)]
    assert_refused(*run(export_main, args))
    assert snapshot(work) == before and Path(files["{cgan}"]).read_bytes() == checkpoint


# ---- demo -------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def busy_port():
    """A port that some other program is serving on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


DEMO_BAD = pairs({
    # 999.1.1.1 is no address at all; 192.0.2.1 (a documentation address) is not one of this machine's
    "host": st.one_of(st.sampled_from(["999.1.1.1", "192.0.2.1", "''"]), NOT_A_PATH),
    "port": st.one_of(st.sampled_from(["{busy}", "0", "65536"]), HUGE, NEGATIVE, NOT_A_NUMBER),
    "max_samples": st.one_of(st.integers(-(2**70), 0).map(str), HUGE),
    "max_frames": st.one_of(st.integers(-(2**70), 1).map(str), HUGE),
    "scale": st.sampled_from(["0", "17", "x"]),
    "device": st.sampled_from(["cuda:99", "meta", "[0]"]),
    "ckpt_path": st.one_of(BAD_FILES, NOT_A_PATH),
})


@SETTINGS
@given(bad=DEMO_BAD)
def test_demo_refuses_bad_settings_before_it_serves(files, busy_port, tmp_path_factory, bad):
    pytest.importorskip("gradio", reason='Gradio is missing; pip install -e ".[demo]"')
    from gan_lightning import demo

    work = workspace(tmp_path_factory)
    key, value = bad
    args = [f"ckpt_path={files['{cgan}']}", f"port={free_port()}",
            f"{key}={fill(value, files, work).replace('{busy}', str(busy_port))}"]
    with mock.patch.object(demo.gr.Blocks, "launch", side_effect=AssertionError(f"{bad} was not refused")):
        assert_refused(*run(demo.main, args))


def test_demo_on_an_address_of_no_machine_says_so_in_one_line(files):
    """The audit's case: host=999.1.1.1 gave the server's own `ERROR:` line, then a hint to change the port."""
    pytest.importorskip("gradio", reason='Gradio is missing; pip install -e ".[demo]"')
    from gan_lightning import demo

    with mock.patch.object(demo.gr.Blocks, "launch", side_effect=AssertionError("the server was started")):
        code, err = run(demo.main, [f"ckpt_path={files['{cgan}']}", "host=999.1.1.1", f"port={free_port()}"])
    assert_refused(code, err)
    assert err.startswith("error: host=999.1.1.1: not an address of this machine") and "port=" not in err


# what the page's widgets may send, and what a hand-made request to Gradio's API may send instead
PAGE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-5, 40),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-3, 3),
    st.sampled_from(["all", "3", "11", "-1", " 3", "x", "", "1.5"]),
    st.lists(st.integers(0, 3), max_size=2),
)


@pytest.fixture(scope="module")
def explorer(files):
    """What the demo page's buttons call, on the cGAN checkpoint."""
    pytest.importorskip("gradio", reason='Gradio is missing; pip install -e ".[demo]"')
    from gan_lightning.demo import Explorer
    from gan_lightning.sampling import Sampler

    samplers = {name: Sampler.load(files[f"{{{name}}}"]) for name in ("cgan", "vanilla")}
    return Explorer(samplers, max_samples=30, max_frames=6, scale=1)


@SETTINGS
@given(model=st.one_of(st.sampled_from(["cgan", "vanilla"]), PAGE_VALUES), digit=PAGE_VALUES, seed=PAGE_VALUES,
       n=PAGE_VALUES, offsets=st.lists(PAGE_VALUES, min_size=4, max_size=4),
       between=st.sampled_from(["digits", "seeds", "x"]), digit_to=PAGE_VALUES, seed_to=PAGE_VALUES, frames=PAGE_VALUES)
def test_demo_page_answers_any_request_with_pictures_or_a_message(explorer, model, digit, seed, n, offsets, between,
                                                                 digit_to, seed_to, frames):
    for request in (lambda: explorer.samples(model, digit, seed, n, *offsets),
                    lambda: explorer.morph(model, between, digit, digit_to, seed, seed_to, frames)):
        try:
            answer = request()
        except UserError as e:  # shown in the page by the handler
            assert str(e).strip() and "\n" not in str(e)
        else:
            assert (isinstance(answer, np.ndarray) and answer.dtype == np.uint8) or Path(answer).is_file()
