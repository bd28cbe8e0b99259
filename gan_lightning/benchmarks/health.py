"""Does the training watchman fire on runs that have a problem, and only on those?

`python scripts/benchmark_health.py --epochs 4`

Trains each case below with `python scripts/train.py` (seed 0, `--epochs` epochs of full MNIST) into
`<out>/<case>`: runs that go wrong in a known way (one for each alarm) and, beside them, the default models, which
should raise no alarm. A case whose folder holds a finished run is not trained again (`--retrain` forces it). Then it replays
every run's logs with the watchman's rules (`gan_lightning.callbacks.health.replay`), checks that they give the
alarms the run raised live (`health.json`), prints one table (each case's alarms, the epoch of each, and whether
the expected one fired) and draws `health.png`: per case, the signal of its alarm against its threshold and the
validation FID, with the moment each alarm fired.
"""

import argparse
import importlib.util
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from gan_lightning.callbacks.health import CHANCE_LOSS, TrainingHealth, replay
from gan_lightning.errors import TrainingInterrupted, UserError, fail, stop
from gan_lightning.files import write_file

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path("outputs/benchmark_health")

# case -> (overrides, the alarm expected: None for none at all)
CASES = {
    # G never learns (its learning rate 0: the key that tests use to freeze G): D separates at once. On the DCGAN's
    # recipe before today's (experiment=dcgan_sngan), whose hinge-loss D it saturates in the first epoch
    "frozen_g": (["experiment=dcgan_sngan", "optimizer.generator.lr=0"], "saturation"),
    # The Vanilla GAN's cases run on the budget they were measured at (budget=default: batches of 32, a validation
    # after every epoch), not on its default's (every 2nd epoch), so that 4 epochs hold 4 validations to judge.
    # D's learning rate 100 times the default. The Vanilla GAN's D swings to confidently wrong outputs (its loss
    # far above chance); the DCGAN's spectrally normalised D cannot, and its run only learns more slowly
    "d_lr_0.02_vanilla": (["model=vanilla", "budget=default", "optimizer.d_lr=0.02"], "divergence"),
    "d_lr_0.02": (["experiment=dcgan_sngan", "optimizer.d_lr=0.02"], None),
    # the Vanilla GAN's G frozen, with the watchman told to call a stall after 2 validations without an FID better by
    # 10 (by default 5 validations, and any improvement counts: a frozen G's FID of 8,150 moves by a few points
    # from one validation to the next, the noise of 2000 samples)
    "stall": (["model=vanilla", "budget=default", "optimizer.generator.lr=0", "callbacks.health.stall_patience=2",
               "callbacks.health.stall_min_delta=10"], "stall"),
    # the Vanilla GAN without its guards against collapse (minibatch std, EMA), G's learning rate 100 times D's: G
    # chases whatever D cannot yet tell apart, and draws a few images
    "collapse": (["model=vanilla", "budget=default", "model.discriminator.minibatch_std=0", "model.ema_decay=0",
                  "optimizer.lr=2e-3", "optimizer.d_lr=2e-5"], "collapse"),
    "vanilla": (["model=vanilla"], None),
    "dcgan": (["model=dcgan"], None),
    "cgan": (["model=cgan"], None),
}


def train_case(case: str, epochs: int, out: Path, retrain: bool) -> Path:
    """The case's run folder, trained unless it already holds a finished run of these overrides."""
    folder = out / case
    overrides = [*CASES[case][0], f"trainer.max_epochs={epochs}", "seed=0", "trainer.enable_progress_bar=false"]
    result = folder / "metrics.json"
    if result.is_file() and not retrain:
        recorded = (folder / ".hydra" / "overrides.yaml").read_text()
        status = json.loads(result.read_text()).get("status", "")
        if all(o in recorded for o in overrides) and (status == "completed" or status.startswith("stopped: ")):
            return folder
    if folder.exists():  # a case of other settings, or one stopped half-way: trained again from its start
        print(f"training {case} again from its start: {folder} holds an unfinished or other run", flush=True)
        shutil.rmtree(folder)
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), *overrides, f"hydra.run.dir={folder}"]
    print(f"training {case}: {' '.join(overrides)}", flush=True)
    run = subprocess.Popen(command)
    # SIGTERM to the benchmark reaches the run too, which saves its checkpoint and stops (Ctrl-C reaches both)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: run.send_signal(signal.SIGTERM))
    try:
        code = _wait(run)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code in (128 + signal.SIGTERM, 128 + signal.SIGINT):
        raise TrainingInterrupted(signal.Signals(code - 128).name, folder / "checkpoints" / "last.ckpt")
    if code != 0:
        raise UserError(f"the run of case {case} failed (exit code {code}); its log: {folder / 'train.log'}")
    return folder


def _wait(run: subprocess.Popen) -> int:
    """The run's exit code, once it has ended: a Ctrl-C here waits for the run, which got it too and saves first."""
    while True:
        try:
            return run.wait()
        except KeyboardInterrupt:
            continue


def signal_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """(epoch, value) per logged epoch of what the plot shows: validation FID, D's epoch-mean loss and the
    coverage fractions of the real row."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (folder,) = {p.parent for p in run_dir.glob("tensorboard/events.out.tfevents.*")}
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0}).Reload()
    scalars = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}
    epochs = scalars.get("epoch", {})

    def curve(tag: str) -> list[tuple[int, float]]:
        return [(int(epochs.get(step, i)), value) for i, (step, value) in enumerate(sorted(scalars.get(tag, {}).items()))]

    curves = {"val/fid": curve("val/fid"), "train/d_loss_epoch": curve("train/d_loss_epoch")}
    for name in ("min_class_share", "recall"):
        real = dict(curve(f"val/real_{name}"))
        curves[f"{name} / real"] = [(e, v / real[e]) for e, v in curve(f"val/{name}") if real.get(e)]
    return curves


def plot(runs: dict[str, tuple[Path, list]], path: Path) -> None:
    """One panel per case: the signal of the alarm it should raise (a healthy case: the collapse signals, the
    likeliest false alarm) against its threshold, the validation FID (right axis, log), and a red line at each
    alarm, named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = TrainingHealth(dirpath=".").rules
    columns = min(4, len(runs))
    rows = -(-len(runs) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.set_visible(False)
    for ax, (case, (run_dir, alarms)) in zip(axes.flat, runs.items(), strict=False):
        curves, expected = signal_curves(run_dir), CASES[case][1]
        loss = OmegaConf.load(run_dir / ".hydra" / "config.yaml").model.loss
        if expected == "stall":
            ax.plot(*zip(*curves["val/fid"], strict=True), marker=".", label="val FID")
        elif expected in ("saturation", "divergence"):
            ax.plot(*zip(*curves["train/d_loss_epoch"], strict=True), marker=".", label=f"D's {loss} loss (epoch mean)")
            threshold = (rules["saturation_threshold"][loss] if expected == "saturation"
                         else rules["divergence_factor"] * CHANCE_LOSS[loss])
            ax.axhline(threshold, color="grey", linestyle="--", label=f"{expected} threshold")
            ax.set_yscale("symlog", linthresh=0.1)
        else:
            for name in ("min_class_share / real", "recall / real"):
                ax.plot(*zip(*curves[name], strict=True), marker=".", label=name)
            ax.axhline(rules["collapse_absent"], color="grey", linestyle="--", label="rarest class absent")
        fid_axis = ax.twinx()
        if expected != "stall":
            fid_axis.plot(*zip(*curves["val/fid"], strict=True), color="black", alpha=0.4, marker=".", label="val FID")
            fid_axis.set_yscale("log")
        for alarm in alarms:
            ax.axvline(alarm.epoch, color="red", alpha=0.5)
            ax.text(alarm.epoch, 0.98, f" {alarm.name}", color="red", fontsize=8, va="top",
                    transform=ax.get_xaxis_transform())
        ax.set_title(f"{case} (expected: {expected or 'no alarm'})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_xticks(range(len(curves["val/fid"])))
        lines, labels = ax.get_legend_handles_labels()
        fid_lines, fid_labels = fid_axis.get_legend_handles_labels()
        ax.legend(lines + fid_lines, labels + fid_labels, fontsize=7, loc="lower left")
    figure.tight_layout()
    write_file(path, lambda file: figure.savefig(file, format="png", dpi=80), key="--out")
    plt.close(figure)


def main(argv=None) -> None:
    try:
        benchmark(argv)
    except UserError as e:
        fail(e)
    except (TrainingInterrupted, KeyboardInterrupt) as e:
        stop(e, "the finished cases are kept in --out; the same command goes on (the interrupted case from its start)")


def benchmark(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each case's run")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the runs go")
    parser.add_argument("--retrain", action="store_true", help="train again the cases that have a run")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be a positive integer, got {args.epochs}")
    if importlib.util.find_spec("matplotlib") is None:  # found missing before the training, not after
        raise UserError("benchmark_health.py draws its plot with matplotlib, which is not installed: "
                        "pip install -e '.[bench]'")
    runs, lines = {}, []
    for case in args.cases:
        run_dir = train_case(case, args.epochs, args.out, args.retrain)
        alarms = replay(run_dir)
        # what the logs cannot show: a NaN loss, which stops the run before it is logged (evidence null)
        live = [(a["name"], a["epoch"]) for a in json.loads((run_dir / "health.json").read_text())
                if None not in a["evidence"].values()]
        replayed = [(a.name, a.epoch) for a in alarms]
        expected = CASES[case][1]
        fired = [a for a in alarms if a.name == expected]
        ok = bool(fired) if expected else not alarms
        lines.append(f"| {case} | {expected or 'none'} | "
                     f"{', '.join(f'{a.name} at epoch {a.epoch}' for a in alarms) or 'no alarm'} | "
                     f"{'yes' if live == replayed else f'NO (live: {live})'} | {'PASS' if ok else 'FAIL'} |")
        runs[case] = (run_dir, alarms)
    print(f"\nThe watchman on {args.epochs}-epoch runs (seed 0; epochs counted from 0)\n")
    print("| case | expected | alarms | replay = live | |\n|---|---|---|---|---|")
    print("\n".join(lines))
    picture = args.out / "health.png"
    plot(runs, picture)
    print(f"\nsignals, thresholds and alarms: {picture}")
