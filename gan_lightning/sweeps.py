"""Sweeps: what each job of a multirun leaves behind, and the summary table of a whole sweep.

Every training job writes `metrics.json` into its run directory (`run_job`): how it ended, its final metrics,
its best value of the optimized metric (and the epoch and checkpoint of it), how long it trained, and the training
watchman's alarms (`health`, empty when none fired). When a
multirun ends, the `SweepSummary` Hydra callback (conf/hydra/default.yaml) reads the job directories and writes
`summary.csv` and `summary.md` into the sweep directory, best job first, with a health column (so a collapsed job
does not pass for a merely bad one); `python scripts/summarize_sweep.py
SWEEP_DIR` rebuilds them from the files alone. Nothing here imports torch: summarizing is quick.
"""

import argparse
import csv
import io
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from gan_lightning.errors import TrainingDiverged, TrainingInterrupted, TrainingStopped, UserError, fail
from gan_lightning.files import Staging, write_json

log = logging.getLogger(__name__)

RESULT = "metrics.json"  # in each job's run directory
HEALTH = "health.json"  # in the same: the training watchman's alarms so far (`gan_lightning.callbacks.health`)
SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"  # in the sweep directory
COMPLETED = "completed"


# ---- one job ------------------------------------------------------------------------------------------------


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _is_rank_zero() -> bool:
    """False in the other processes of a multi-device run (only rank 0 writes files)."""
    try:
        from lightning.fabric.utilities.rank_zero import rank_zero_only  # set to the global rank by the Trainer

        return getattr(rank_zero_only, "rank", 0) == 0
    except ImportError:  # pragma: no cover - lightning is a dependency; the environment is the fallback
        return all(os.environ.get(var, "0") == "0" for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def _finite(value: Any) -> float | None:
    """A metric as a JSON-safe float: NaN and infinities become None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _best_checkpoint(cfg: DictConfig, metric: str, run_dir: Path) -> dict[str, Any] | None:
    """The best value of `metric`, its epoch and checkpoint: read from the checkpoint that the `ModelCheckpoint`
    callback monitoring `metric` kept (None: no such callback, or it saved nothing)."""
    for name, callback in (cfg.get("callbacks") or {}).items():
        if callback is None or callback.get("monitor") != metric or "{" in str(callback.get("filename", "{")):
            continue
        path = Path(callback.dirpath) / f"{callback.filename}.ckpt"
        if not path.is_file():
            return None
        from gan_lightning.checkpoint import load_checkpoint  # here: torch loads only when a checkpoint is read

        checkpoint = load_checkpoint(path)
        states = [s for s in checkpoint.get("callbacks", {}).values()
                  if isinstance(s, dict) and s.get("monitor") == metric]
        value = _finite(states[0].get("best_model_score")) if states else None
        try:
            path = path.resolve().relative_to(run_dir.resolve())
        except ValueError:  # a checkpoint folder outside the run directory: keep the full path
            pass
        return {"value": value, "epoch": checkpoint.get("epoch"), "checkpoint": str(path), "callback": name}
    return None


def run_job(cfg: DictConfig, train: Callable[[DictConfig], dict[str, float]]) -> dict[str, float]:
    """`train(cfg)`, timed, with how it went written to `<paths.output_dir>/metrics.json`; returns its metrics.

    In a multirun a job that diverges does not stop the sweep: it is recorded as `diverged` and returns the
    optimized metric as +inf, the worst value there is. (Optuna cannot take NaN: the Optuna sweeper 1.3 then
    crashes the whole study, hydra issue #2237; a NaN metric is returned as +inf too.) Everything else that
    stops a job is recorded and raised as before.
    """
    metric = cfg.get("optimized_metric")
    started, status, message, metrics = time.perf_counter(), "failed", None, {}
    try:
        metrics = train(cfg)
        status = COMPLETED
    except TrainingStopped as e:  # the watchman stopped it, as asked: not an error, and not completed either
        status, message, metrics = f"stopped: {e.alarm}", str(e), e.metrics
    except TrainingDiverged as e:
        status, message = "diverged", str(e)
        if not _in_multirun():
            raise
        log.error("%s; the sweep goes on (this job's %s counts as +inf)", e, metric)
        metrics = {}
    except BaseException as e:
        status = "interrupted" if isinstance(e, (TrainingInterrupted, KeyboardInterrupt)) else (
            "error" if isinstance(e, UserError) else "failed")
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        # a user error is one line; of anything else (a traceback from another process...) the last line says most
        if isinstance(e, UserError):
            message = lines[0] if lines else type(e).__name__
        else:
            message = f"{type(e).__name__}: {lines[-1]}" if lines else type(e).__name__
        raise
    finally:
        seconds = time.perf_counter() - started
        if _is_rank_zero():
            _write_result(cfg, status, message, metrics, seconds)
    if metric and (status != COMPLETED or (metric in metrics and _finite(metrics[metric]) is None)):
        metrics = {**metrics, metric: math.inf}
    return metrics


def _write_result(cfg: DictConfig, status: str, message: str | None, metrics: dict, seconds: float) -> None:
    run_dir = Path(cfg.paths.output_dir)
    metric = cfg.get("optimized_metric")
    try:
        best = _best_checkpoint(cfg, metric, run_dir) if metric else None
    except UserError as e:  # an unreadable best checkpoint: say so, keep the rest of the record
        best, message = None, message or str(e)
    write_json(run_dir / RESULT, {
        "status": status,
        "message": message,
        "optimized_metric": metric,
        "final": {name: _finite(value) for name, value in sorted(metrics.items())},
        "best": best,
        "seconds": round(seconds, 3),
        "health": _read_health(run_dir),
    })


def _read_health(run_dir: Path) -> list[dict[str, Any]]:
    """The watchman's alarms (`HEALTH`): none when it did not run or wrote nothing."""
    try:
        alarms = json.loads((run_dir / HEALTH).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return alarms if isinstance(alarms, list) else []


# ---- a sweep ------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One job of a sweep, as its directory tells it."""

    name: str  # its directory, relative to the sweep directory
    overrides: list[str]
    status: str
    message: str | None = None
    final: dict[str, float | None] = field(default_factory=dict)
    best_value: float | None = None
    best_epoch: int | None = None
    checkpoint: str | None = None  # relative to the sweep directory when inside it
    seconds: float | None = None
    health: list[str] = field(default_factory=list)  # the watchman's alarms, as "name@epoch"


@dataclass
class Summary:
    sweep_dir: Path
    metric: str
    maximize: bool
    jobs: list[Job]  # best first
    common: list[str]  # the overrides every job shares (the `overrides` column holds the others)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _job_dirs(sweep_dir: Path) -> list[Path]:
    found = [p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")]
    return sorted((d for d in found if d != sweep_dir), key=lambda d: _natural(d.relative_to(sweep_dir).as_posix()))


def _read_job(sweep_dir: Path, job_dir: Path) -> Job:
    name = job_dir.relative_to(sweep_dir).as_posix()
    overrides = [str(o) for o in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")]
    try:
        result = json.loads((job_dir / RESULT).read_text())
    except FileNotFoundError:  # still running, or killed before it could write
        return Job(name, overrides, "unfinished")
    except json.JSONDecodeError:
        return Job(name, overrides, "unreadable", message=f"{RESULT} is not valid JSON")
    best = result.get("best") or {}
    checkpoint = best.get("checkpoint")
    if checkpoint and not Path(checkpoint).is_absolute():
        checkpoint = (Path(name) / checkpoint).as_posix()
    health = [f"{a.get('name')}@{a.get('epoch')}" for a in result.get("health") or [] if isinstance(a, dict)]
    return Job(name, overrides, result.get("status", "unreadable"), result.get("message"), result.get("final") or {},
               best.get("value"), best.get("epoch"), checkpoint, result.get("seconds"), health)


def _sweep_settings(sweep_dir: Path, job_dirs: list[Path]) -> tuple[str, bool]:
    """The optimized metric and whether higher is better, as the sweep ran with them."""
    metric, direction = None, None
    for path in [sweep_dir / "multirun.yaml", *(d / ".hydra" / "hydra.yaml" for d in job_dirs[:1]),
                 *(d / ".hydra" / "config.yaml" for d in job_dirs[:1])]:
        if not path.is_file():
            continue
        cfg = OmegaConf.load(path)
        metric = metric or OmegaConf.select(cfg, "optimized_metric", throw_on_resolution_failure=False)
        direction = direction or OmegaConf.select(cfg, "hydra.sweeper.direction", throw_on_resolution_failure=False)
    return str(metric or "val/fid"), str(direction).lower() == "maximize"


def summarize(sweep_dir: str | Path) -> Summary:
    """Read every job directory of `sweep_dir`: the jobs best first, then those without a value (failed,
    diverged, unfinished) in job order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        what = "not a directory" if sweep_dir.exists() else "no such directory"
        raise UserError(f"{sweep_dir}: {what}; give a sweep directory such as multirun/train/<date>_<time>")
    job_dirs = _job_dirs(sweep_dir)
    if not job_dirs:
        raise UserError(f"{sweep_dir} is not a sweep directory: no job folders with .hydra/overrides.yaml in it; "
                        "give one such as multirun/train/<date>_<time>")
    metric, maximize = _sweep_settings(sweep_dir, job_dirs)
    jobs = [_read_job(sweep_dir, d) for d in job_dirs]

    def score(job: Job) -> float | None:
        if job.status != COMPLETED and not job.status.startswith("stopped: "):
            return None
        return job.best_value if job.best_value is not None else job.final.get(metric)

    ranked = sorted((j for j in jobs if score(j) is not None), key=lambda j: -score(j) if maximize else score(j))
    rest = [j for j in jobs if score(j) is None]
    common = [o for o in jobs[0].overrides if all(o in j.overrides for j in jobs)] if len(jobs) > 1 else []
    return Summary(sweep_dir, metric, maximize, ranked + rest, common)


def _columns(summary: Summary) -> list[str]:
    metric = summary.metric
    finals = sorted({k for j in summary.jobs for k in j.final if k.startswith("val/") and k != metric})
    return ["job", "status", "health", "overrides", f"best {metric}", "best epoch", f"final {metric}",
            *(f"final {k}" for k in finals), "seconds", "best checkpoint", "message"]


def _row(summary: Summary, job: Job, columns: list[str]) -> dict[str, Any]:
    row = {"job": job.name, "status": job.status, "health": " ".join(job.health) or ("-" if job.status in ("unfinished", "unreadable") else "no alarm"),
           "overrides": " ".join(o for o in job.overrides if o not in summary.common),
           f"best {summary.metric}": job.best_value, "best epoch": job.best_epoch,
           "seconds": None if job.seconds is None else round(job.seconds, 1),
           "best checkpoint": job.checkpoint, "message": job.message}
    row.update({c: job.final.get(c.removeprefix("final ")) for c in columns if c.startswith("final ")})
    return row


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_csv(summary: Summary) -> str:
    columns = _columns(summary)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for job in summary.jobs:
        writer.writerow({k: "" if v is None else v for k, v in _row(summary, job, columns).items()})
    return out.getvalue()


def to_markdown(summary: Summary) -> str:
    columns = _columns(summary)
    order = "higher" if summary.maximize else "lower"
    lines = [f"# Sweep {summary.sweep_dir.name}", "",
             (f"{len(summary.jobs)} jobs, best `{summary.metric}` first ({order} is better); failed and unfinished "
              "jobs last. Checkpoint paths are relative to this folder."), ""]
    if summary.common:
        lines += ["Every job: `" + " ".join(summary.common) + "`", ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for job in summary.jobs:
        row = _row(summary, job, columns)
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_summary(sweep_dir: str | Path) -> Summary:
    """`summary.csv` and `summary.md` in the sweep directory, from what its job directories hold."""
    summary = summarize(sweep_dir)
    with Staging("sweep_dir") as staging:  # both or neither
        for name, text in ((SUMMARY_CSV, to_csv(summary)), (SUMMARY_MD, to_markdown(summary))):
            staging.file(summary.sweep_dir / name).write_text(text)
    return summary


class SweepSummary(Callback):
    """Hydra callback: when a multirun ends, its summary table in the sweep directory."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not all(os.environ.get(var, "0") == "0" for var in ("RANK", "LOCAL_RANK")):  # only rank 0 writes
            return
        try:
            summary = write_summary(config.hydra.sweep.dir)
        except UserError as e:
            print(f"no sweep summary: {e}")
            return
        best = summary.jobs[0]
        value = best.best_value if best.best_value is not None else best.final.get(summary.metric)
        outcome = f"best: job {best.name}, {summary.metric} = {_cell(value)}" if value is not None else (
            f"no job has a value of {summary.metric}")
        print(f"Sweep summary: {summary.sweep_dir / SUMMARY_MD} (and {SUMMARY_CSV}); {outcome}")


def main(argv: list[str] | None = None) -> None:
    """`python scripts/summarize_sweep.py SWEEP_DIR`: rebuild a sweep's summary.csv and summary.md."""
    parser = argparse.ArgumentParser(description=main.__doc__.split(":", 1)[1].strip())
    parser.add_argument("sweep_dir", help="the sweep directory, e.g. multirun/train/<date>_<time>")
    args = parser.parse_args(argv)
    try:
        summary = write_summary(args.sweep_dir)
    except UserError as e:
        fail(e)
    print(to_markdown(summary), end="")
    print(f"\nwritten: {summary.sweep_dir / SUMMARY_CSV}, {summary.sweep_dir / SUMMARY_MD}")
