"""Sweeps through the real CLI: a multirun ends with its summary table (best first, a diverged job last), the
same table rebuilt from the files alone, an Optuna search run by the parallel (joblib) launcher, one-line errors."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from gan_lightning.config import CONFIG_DIR, check_overrides
from gan_lightning.errors import UserError
from tests.conftest import FAST, validation_real_row

ROOT = Path(__file__).resolve().parents[1]
# a Vanilla GAN for 3 batches, then one validation with the FID of 200 samples: val/fid and best_fid.ckpt exist
TINY = ["model=vanilla", *FAST]


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], check=False, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _rows(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory) -> Path:
    """Two jobs: job 0 with an absurd learning rate (diverges at once), job 1 a normal one."""
    cwd = tmp_path_factory.mktemp("grid")
    sweep = cwd / "sweep"
    result = _run("train.py", "-m", *TINY, "optimizer.lr=1e12,2e-4", f"hydra.sweep.dir={sweep}", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]  # the diverged job did not stop the sweep
    assert f"Sweep summary: {sweep / 'summary.md'}" in result.stdout
    return sweep


@pytest.mark.slow
def test_multirun_ends_with_a_summary_best_first_and_the_diverged_job_last(grid_sweep):
    rows = _rows(grid_sweep)
    assert [(r["job"], r["status"]) for r in rows] == [("1", "completed"), ("0", "diverged")]
    good, diverged = rows
    assert good["overrides"] == "optimizer.lr=0.0002"  # what differs between the jobs; the rest is common
    assert float(good["best val/fid"]) > 0 and good["best epoch"] == "0"
    assert good["final val/fid"] == good["best val/fid"]  # one epoch: the final validation is the best
    assert {"final val/kid_mean", "final val/classifier_score", "final val/min_class_share"} <= set(good)
    # beside every score, the same for as many real training images (against the same validation split): what a
    # perfect generator would score
    assert float(good["final val/real_fid"]) == pytest.approx(validation_real_row(200)["fid"], rel=1e-3)
    assert float(good["final val/real_fid"]) < float(good["final val/fid"])
    assert float(good["seconds"]) > 0
    assert good["best checkpoint"] == "1/checkpoints/best_fid.ckpt"
    assert (grid_sweep / good["best checkpoint"]).is_file()
    assert diverged["overrides"] == "optimizer.lr=1000000000000.0"
    assert diverged["best val/fid"] == "" and "training diverged" in diverged["message"]
    # the watchman's column: the diverged job says what went wrong, the good one that nothing did
    assert good["health"] == "no alarm" and diverged["health"] == "divergence@0"

    # each job's own record, and the Markdown table in the same order
    result = json.loads((grid_sweep / "1" / "metrics.json").read_text())
    assert result["status"] == "completed" and result["best"]["checkpoint"] == "checkpoints/best_fid.ckpt"
    assert result["health"] == []
    assert result["final"]["val/fid"] == pytest.approx(float(good["final val/fid"]))
    table = [line for line in (grid_sweep / "summary.md").read_text().splitlines() if line.startswith("| ")]
    assert table[0].startswith("| job | status | health | overrides | best val/fid |")
    assert table[1].startswith("| 1 | completed | no alarm | optimizer.lr=0.0002 |")
    assert table[2].startswith("| 0 | diverged | divergence@0 |")


@pytest.mark.slow
def test_summary_is_rebuilt_from_the_sweep_directory_alone(grid_sweep):
    written = {name: (grid_sweep / name).read_text() for name in ("summary.csv", "summary.md")}
    for name in written:
        (grid_sweep / name).unlink()
    result = _run("summarize_sweep.py", str(grid_sweep), cwd=grid_sweep.parent)
    assert result.returncode == 0, result.stderr
    assert {name: (grid_sweep / name).read_text() for name in written} == written
    assert "| 1 | completed |" in result.stdout


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with the bytes of each file (None for a folder)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@pytest.mark.slow
def test_a_sweep_never_shares_its_folder_with_another_started_in_the_same_second(tmp_path):
    """The default sweep folder is named by the second the multirun starts. The folders of the next minute are
    made first, each holding another sweep (a job folder and a summary): the multirun must take a folder of its own,
    leaving theirs alone, and write its jobs and its summary there."""
    from datetime import datetime, timedelta

    sweeps = tmp_path / "multirun" / "train"
    start = datetime.now()
    taken = [sweeps / (start + timedelta(seconds=s)).strftime("%Y-%m-%d_%H-%M-%S") for s in range(60)]
    for folder in taken:
        (folder / "0" / ".hydra").mkdir(parents=True)
        (folder / "0" / ".hydra" / "overrides.yaml").write_text("- model=dcgan\n")
        (folder / "0" / "metrics.json").write_text('{"status": "completed"}\n')
        (folder / "summary.md").write_text("another sweep\n")
    before = {folder: _tree(folder) for folder in taken}
    result = _run("train.py", "-m", *TINY, "~callbacks.quality", "~callbacks.best_checkpoint", "~logger",
                  "~callbacks.sample_grid", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {folder: _tree(folder) for folder in taken} == before
    (sweep,) = set(sweeps.iterdir()) - set(taken)
    assert sweep.name.rsplit("-", 1)[0] in {folder.name for folder in taken} and sweep.name.endswith("-2")
    assert (sweep / "0" / "checkpoints" / "last.ckpt").is_file() and (sweep / "summary.md").is_file()
    assert f"Sweep summary: {Path('multirun', 'train', sweep.name, 'summary.md')}" in result.stdout


@pytest.mark.slow
def test_a_sweep_dir_that_holds_an_earlier_sweep_is_refused(grid_sweep):
    before = _tree(grid_sweep)
    result = _run("train.py", "-m", *TINY, f"hydra.sweep.dir={grid_sweep}", cwd=grid_sweep.parent)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: hydra.sweep.dir={grid_sweep} already holds a sweep (")
    assert _tree(grid_sweep) == before


@pytest.mark.slow
def test_optuna_search_through_the_parallel_launcher(tmp_path):
    sweep = tmp_path / "sweep"
    result = _run("train.py", "-m", "hparams_search=fid_optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                  "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr  # both trials at once, in two processes
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    rows = _rows(sweep)
    assert sorted(r["job"] for r in rows) == ["0", "1"] and {r["status"] for r in rows} == {"completed"}
    assert float(rows[0]["best val/fid"]) <= float(rows[1]["best val/fid"])
    assert float(rows[0]["final val/fid"]) == pytest.approx(best.best_value)  # Optuna's best is the summary's first
    # the sampled values reached the job that Optuna calls best
    job = OmegaConf.load(sweep / rows[0]["job"] / ".hydra" / "config.yaml")
    for key, value in best.best_params.items():
        assert OmegaConf.select(job, key) == pytest.approx(value)


def test_search_space_keys_exist_and_every_bound_and_choice_is_valid():
    space = OmegaConf.load(CONFIG_DIR / "hparams_search" / "fid_optuna.yaml").hydra.sweeper.params
    parser = OverridesParser.create()
    as_choices = []
    for key, sweep in space.items():
        override = parser.parse_override(f"{key}={sweep}")
        if override.is_interval_sweep():
            values = [str(override.value().start), str(override.value().end)]
        else:
            values = list(override.sweep_string_iterator())
        as_choices.append(f"{key}={','.join(values)}")
    check_overrides(["hparams_search=fid_optuna", *as_choices])  # composes and validates each value


def test_unknown_search_is_one_line():
    with pytest.raises(UserError, match=r"^hparams_search=gridless: no such option; choose one of: fid_optuna$"):
        check_overrides(["hparams_search=gridless"])


@pytest.mark.parametrize("target", ["missing", "not_a_sweep"])
def test_summarize_refuses_what_is_not_a_sweep(tmp_path, target):
    run = tmp_path / "not_a_sweep"  # a single run's directory: its own .hydra, no job folders
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- model=vanilla\n")
    result = _run("summarize_sweep.py", str(tmp_path / target), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.strip().count("\n") == 0
    assert ("no such directory" if target == "missing" else "is not a sweep directory") in result.stderr
    assert not list(tmp_path.glob("**/summary.*"))
