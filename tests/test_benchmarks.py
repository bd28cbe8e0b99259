"""The benchmarks measure what they claim: the bare loop does the project's steps, the recipe table's checks."""

import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from gan_lightning.benchmarks import quality, recipes
from gan_lightning.benchmarks.recipes import check_targets, side_by_side
from gan_lightning.benchmarks.throughput import bare_loop, lightning_loop, plain_optimizers
from gan_lightning.config import compose_config
from gan_lightning.data import ImageDataModule
from gan_lightning.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("recipe", [
    [],
    ["model.loss=hinge", "model.discriminator.spectral_norm=true", "model.ema_decay=0.99", "model.d_steps=2"],
    ["model.loss=wgan-gp", "optimizer.d_lr=4e-4"],
    ["model.gradient_clip_val=0.05"],
    ["model=dcgan", "model.generator.ngf=8", "model.discriminator.ndf=8"],
    ["model.augment=[translation,cutout]", "model.loss=wgan-gp"],
    ["model=cgan", "model.generator.ngf=8", "model.discriminator.ndf=8", "model.class_loss_weight=0.5"],
], ids=["bce", "hinge-sn-ema-dsteps", "wgan-gp-ttur", "clipped", "dcgan-channels-last", "diffaugment-wgan-gp",
        "cgan-class-loss"])
def test_bare_loop_takes_exactly_the_steps_of_the_project_loop(recipe):
    """Same initial weights, same batches, same seed: both loops end with the same weights, so the throughput
    benchmark compares like with like. In fp32, whatever precision the machine would pick: there both loops
    compute bit for bit the same."""
    initial, bare, project = _train_both(recipe, n_batches=4, precision="32-true")
    assert [k for k in bare if not torch.equal(bare[k], initial[k])]  # training happened
    for key in bare:
        torch.testing.assert_close(bare[key], project[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("recipe", [[], ["model=dcgan", "model.generator.ngf=8", "model.discriminator.ndf=8"]],
                         ids=["vanilla", "dcgan-channels-last"])
def test_bare_loop_takes_the_steps_of_the_project_loop_under_bf16_autocast(recipe):
    """Under bf16 autocast (the CPU fast path on a CPU with native bf16) the two loops round differently, by
    about 1e-8 in a step's update: compared after one batch, where a real difference (a missing or extra cast,
    step or clip) moves a weight by about the learning rate, 4e-4 to 8e-4. Later batches amplify the rounding (Adam's
    first steps are about lr * sign(gradient)), so a longer comparison could not tell the two apart."""
    initial, bare, project = _train_both(recipe, n_batches=1, precision="bf16-mixed")
    assert [k for k in bare if not torch.equal(bare[k], initial[k])]
    for key in bare:
        torch.testing.assert_close(bare[key], project[key], rtol=0, atol=2e-6, msg=key)


def _train_both(recipe: list[str], n_batches: int, precision: str) -> tuple[dict, dict, dict]:
    """The initial state dict, and the state dicts after the bare loop and the project's loop trained a copy of it
    on the same first `n_batches` batches (batch 16), from the same seed."""
    dm = ImageDataModule(batch_size=16)
    dm.setup()
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(n_batches)]
    with tempfile.TemporaryDirectory() as tmp:
        model = [] if any(r.startswith("model=") for r in recipe) else ["model=vanilla"]
        cfg = compose_config([*model, *recipe, "data.batch_size=16", f"paths.output_dir={tmp}",
                              "trainer=cpu", f"trainer.precision={precision}", "trainer.max_epochs=1",
                              f"trainer.limit_train_batches={n_batches}", "trainer.limit_val_batches=0",
                              "~callbacks.best_checkpoint", "~callbacks.quality",
                              "trainer.enable_model_summary=false", "~callbacks.cpu_threads"])
        torch.manual_seed(0)
        initial = instantiate(cfg.model, image_shape=dm.image_shape, num_classes=dm.num_classes)
        bare, project = copy.deepcopy(initial), copy.deepcopy(initial)
        warmup = min(1, n_batches - 1)
        torch.manual_seed(1)
        bare_loop(bare, batches, warmup=warmup, device=torch.device("cpu"), precision=precision)
        torch.manual_seed(1)
        lightning_loop(project, cfg, batches, warmup=warmup)
    states = initial.state_dict(), bare.state_dict(), project.state_dict()
    assert states[1].keys() == states[2].keys()
    return states


def test_plain_loop_is_pytorch_as_it_comes_and_the_project_runs_fused_and_channels_last():
    cfg = compose_config(["model=dcgan", "~callbacks.quality", "~callbacks.best_checkpoint"])
    gan = instantiate(cfg.model, image_shape=(1, 28, 28), num_classes=10)
    assert all(opt.defaults["fused"] for opt in gan.configure_optimizers())
    assert not any(opt.defaults["fused"] for opt in plain_optimizers(gan))
    assert [opt.defaults["lr"] for opt in plain_optimizers(gan)] == [cfg.optimizer.lr, cfg.optimizer.d_lr]
    gan.configure_model()  # what the Trainer calls before training
    convs = [m.weight for m in gan.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


def test_recipe_targets_pass_and_fail_on_the_issue_thresholds():
    shares = {"min_class_share": 0.08}
    rows = {("dcgan", "baseline"): {"fid": 100.0, **shares}, ("dcgan", "default"): {"fid": 20.0, **shares},
            ("cgan", "default"): {"label_accuracy": 0.979, "min_class_share": 0.1}}
    lines = check_targets(rows)
    assert lines[0].startswith("PASS default DCGAN FID 20.00")
    assert lines[1].startswith("FAIL default cGAN label accuracy 0.9790")
    assert all(line.startswith("PASS") for line in lines[2:]) and len(lines) == 4
    rows["dcgan", "default"]["fid"] = 20.5
    rows["dcgan", "default"]["min_class_share"] = 0.069
    lines = check_targets(rows)
    assert lines[0].startswith("FAIL") and lines[2].startswith("FAIL default dcgan")


def test_quality_targets_pass_and_fail_on_the_quality_issue_thresholds():
    real = {"precision": (0.8, 0.01), "recall": (0.8, 0.01)}
    models = {
        "cgan": {"precision": (0.7201, 0.0), "recall": (0.7199, 0.0), "label_accuracy": (0.985, 0.0),
                 "cas": (0.9751, 0.0), "real_accuracy": (0.99, 0.0),
                 "memorised_share": (0.01, 0.0), "test_memorised_share": (0.01, 0.0)},
        "vanilla": {"recall": (0.6001, 0.1)},
    }
    assert quality.check_targets(models, real) == [
        "PASS cgan: precision 0.720 = 0.900 of the real row's 0.800 >= 0.9",
        "FAIL cgan: recall 0.720 = 0.900 of the real row's 0.800 >= 0.9",  # 0.8999: the mean, not its rounding
        "PASS cgan: label accuracy 0.9850 >= 0.985",
        "PASS cgan: CAS 0.9751 within 1.5 points of the real-trained classifier's 0.9900",
        "PASS cgan: memorised share 0.0100 <= 2 x real test images' 0.0100",
        "PASS vanilla: recall 0.600 = 0.750 of the real row's 0.800 >= 0.75",
    ]
    models["cgan"].update(label_accuracy=(0.9849, 0.0), cas=(0.9740, 0.0), memorised_share=(0.0201, 0.0))
    lines = quality.check_targets(models, real)
    assert [line.split(":")[0] for line in lines if line.startswith("FAIL")] == ["FAIL cgan"] * 4
    # Fashion-MNIST's targets: its own (its real row reads 0.93 of its labels), only the conditional GAN's
    assert quality.check_targets(models, real, "fashion_mnist")[:3] == [
        "PASS cgan: precision 0.720 = 0.900 of the real row's 0.800 >= 0.85",
        "PASS cgan: recall 0.720 = 0.900 of the real row's 0.800 >= 0.85",
        "PASS cgan: label accuracy 0.9849 >= 0.9",
    ]
    assert not any(line.startswith(("PASS vanilla", "FAIL vanilla"))
                   for line in quality.check_targets(models, real, "fashion_mnist"))
    # a dataset the benchmark has no targets for (a third one): checked against its real row only
    assert [line.split(":")[1].split()[0] for line in quality.check_targets(models, real, "kmnist")] == [
        "CAS", "memorised"]


def test_the_quality_benchmark_trains_each_model_at_its_own_budget():
    """Without --epochs, each model's epochs are its config's (the DCGAN's budget: 7), not one number for all."""
    assert quality.own_budgets() == {"vanilla": 28, "dcgan": 7, "cgan": 10}


def test_quality_table_gives_mean_and_std_over_seeds():
    row = quality.aggregate([{"fid": 10.0, "precision": 0.7}, {"fid": 12.0, "precision": 0.8}, {"fid": 14.0}])
    assert row == {"fid": (12.0, 2.0)}  # precision is not in every seed's result: no half-mean
    table = quality.format_table({"dcgan, 10 epochs": row}).splitlines()
    assert table[2].startswith("| dcgan, 10 epochs | 12.00 ± 2.00 | - |")
    assert quality.mean_std([0.5]) == (0.5, 0.0)


@pytest.mark.slow
def test_quality_scores_are_kept_beside_the_run_and_reused(trained_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes((trained_run("cgan") / "checkpoints" / "last.ckpt").read_bytes())
    record = {"checkpoint": str(checkpoint), "seed": 0}
    scores = quality.score(record, n=100, cas_n=200, cas_epochs=1)
    assert {"fid", "precision", "recall", "label_accuracy", "memorised_share", "test_memorised_share", "cas",
            "real_accuracy"} <= set(scores)
    monkeypatch.setattr(quality.Sampler, "load", lambda *a, **k: pytest.fail("scored again"))
    assert quality.score(record, n=100, cas_n=200, cas_epochs=1) == scores
    with pytest.raises(pytest.fail.Exception):  # other settings: scored again
        quality.score(record, n=101, cas_n=200, cas_epochs=1)


@pytest.mark.slow
def test_quality_plot_draws_each_runs_validation_curves(trained_run, tmp_path):
    from PIL import Image

    curves = quality.validation_curves(trained_run("vanilla"))
    assert set(curves) == {"fid", "precision", "recall", "minutes"} and len(curves["fid"]) == len(curves["minutes"]) == 1
    assert 0 < curves["minutes"][0] < 10
    quality.plot_curves({"vanilla": {("default", 0): curves, ("default", 1): curves},
                         "dcgan": {("default", 0): quality.validation_curves(trained_run("dcgan"))}},
                        tmp_path / "quality.png")
    width, height = Image.open(tmp_path / "quality.png").size
    assert width > height / 2 > 100


@pytest.mark.slow
def test_the_time_to_quality_plot_takes_labelled_run_folders(trained_run, tmp_path):
    """`scripts/plot_time_to_quality.py LABEL=RUN_DIR ... --out PNG`: a column per model, read from each run's
    config; a folder that is not a run, or an existing --out, is refused in one line and nothing is written."""
    from PIL import Image

    out = tmp_path / "ttq.png"
    quality.plot_runs([f"default={trained_run('vanilla')}", f"other recipe={trained_run('cgan')}", "--out", str(out)])
    width, height = Image.open(out).size
    assert width > height / 2 > 100
    with pytest.raises(UserError, match="exists: give another path"):
        quality.plot_runs([f"default={trained_run('vanilla')}", "--out", str(out)])
    with pytest.raises(UserError, match="give LABEL=RUN_DIR"):
        quality.plot_runs([str(trained_run("vanilla")), "--out", str(tmp_path / "none.png")])
    with pytest.raises(UserError, match="a training run's folder"):
        quality.plot_runs([f"x={tmp_path}", "--out", str(tmp_path / "none.png")])
    assert not (tmp_path / "none.png").exists()


def test_runs_of_other_seeds_go_to_their_own_folders(tmp_path):
    assert recipes.run_folder(tmp_path, "cgan", "default", 0) == tmp_path / "cgan" / "default"
    assert recipes.run_folder(tmp_path, "cgan", "default", 2) == tmp_path / "cgan" / "default-seed2"


def test_side_by_side_puts_each_models_seed_grid_left_of_its_default_grid():
    grids = {("dcgan", "baseline"): np.full((10, 20), 1, np.uint8), ("dcgan", "default"): np.full((10, 20), 2, np.uint8),
             ("cgan", "baseline"): np.full((14, 20), 3, np.uint8), ("cgan", "default"): np.full((14, 20), 4, np.uint8)}
    picture = side_by_side(grids, ["dcgan", "cgan"])
    assert picture.shape == (10 + 12 + 14, 20 + 12 + 20)
    assert (picture[:10, :20] == 1).all() and (picture[:10, 32:] == 2).all()
    assert (picture[22:, :20] == 3).all() and (picture[22:, 32:] == 4).all()


def _finished_run(out, model, recipe, epochs, **change):
    """A result.json as a finished benchmark run leaves it, with its recipe changed by `change`."""
    folder = out / model / recipe
    record = {"overrides": recipes.overrides(model, recipe), "epochs": epochs, "seed": 0,
              "recipe": recipes.resolved_recipe(recipes.run_config(model, recipe, epochs, 0, folder))}
    for key, value in change.items():
        record["recipe"]["model"][key] = value
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"a finished run's checkpoint")
    record.update(minutes=1.0, resumed=False, checkpoint=str(folder / "checkpoints" / "last.ckpt"))
    (folder / "result.json").write_text(json.dumps(record))
    return record


def test_recipe_benchmark_reuses_a_finished_run_of_the_same_recipe(tmp_path):
    record = _finished_run(tmp_path, "vanilla", "default", 10)
    assert recipes.run("vanilla", "default", 10, 0, tmp_path) == record  # returned at once: no training


def test_recipe_benchmark_refuses_a_run_of_another_recipe_in_one_line(tmp_path, capsys):
    """A default changed since the run was trained: its numbers would be printed under today's recipe."""
    _finished_run(tmp_path, "vanilla", "default", 10, noise_dim=12)
    before = (tmp_path / "vanilla" / "default" / "result.json").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        recipes.main(["--runs", "vanilla/default", "--out", str(tmp_path), "--train-only"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another recipe" in err and "--out" in err and "--retrain" in err
    assert (tmp_path / "vanilla" / "default" / "result.json").read_bytes() == before  # nothing overwritten
    with pytest.raises(SystemExit):  # the quality benchmark shares the runs, and the check
        quality.main(["--epochs", "vanilla=10", "--out", str(tmp_path)])
    assert "another recipe" in capsys.readouterr().err
    # scoring its 10-epoch checkpoint without training is refused the same way
    (tmp_path / "vanilla" / "default" / "checkpoints" / "epoch_009.ckpt").write_bytes(b"an epoch's checkpoint")
    with pytest.raises(SystemExit):
        recipes.main(["--runs", "vanilla/default", "--out", str(tmp_path), "--at-epoch", "10"])
    assert "another recipe" in capsys.readouterr().err


def test_recipe_benchmark_refuses_a_run_of_a_longer_budget_in_one_line(tmp_path, capsys):
    """A finished 20-epoch run asked for as a 10-epoch one: resumed, nothing would train, and the 20-epoch
    checkpoint would be scored as the 10-epoch result."""
    _finished_run(tmp_path, "vanilla", "default", 20)
    folder = tmp_path / "vanilla" / "default"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        recipes.main(["--runs", "vanilla/default", "--out", str(tmp_path), "--epochs", "10", "--train-only"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {folder} holds a run of 20 epochs, longer than the 10 asked for")
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # nothing overwritten
    with pytest.raises(SystemExit):  # the quality benchmark shares the runs, and the check
        quality.main(["--epochs", "vanilla=10", "--out", str(tmp_path)])
    assert "holds a run of 20 epochs, longer than the 10 asked for" in capsys.readouterr().err


def test_throughput_benchmark_on_a_busy_machine_prints_its_table_and_stops_its_spinners(capsys):
    from gan_lightning.benchmarks.throughput import main

    threads = torch.get_num_threads()
    try:
        main(["--device", "cpu", "--models", "vanilla", "--batches", "4", "--warmup", "1", "--repeats", "1",
              "--busy", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "CPU, 1 threads, 1 other process spinning" in out
    # each model at its own batch size, as it trains (its budget's), unless --batch-size says otherwise
    batch = compose_config(["model=vanilla"]).data.batch_size
    assert f"| vanilla | {batch} | 32-true, fused Adam |" in out or f"| vanilla | {batch} | bf16-mixed, fused Adam |" in out
    import subprocess

    spinning = subprocess.run(["pgrep", "-f", "while True: pass"], capture_output=True, text=True, check=False).stdout.split()
    assert not spinning


def _stopped_by_sigterm(command: list[str], started: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """Start a long tool, send it SIGTERM once its run has trained a few seconds, and return how it ended."""
    import signal
    import time

    tool = subprocess.Popen([sys.executable, *command], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(8)  # into the first epoch
    tool.send_signal(signal.SIGTERM)
    stdout, stderr = tool.communicate(timeout=180)
    return subprocess.CompletedProcess(command, tool.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["benchmark_health.py", "benchmark_recipes.py"])
def test_a_long_tool_stopped_by_sigterm_keeps_the_run_resumable_and_says_so_in_one_line(tmp_path, tool):
    out = tmp_path / "out"
    if tool == "benchmark_health.py":  # each case a training process of its own, which the signal is passed to
        args, run = ["--cases", "vanilla", "--epochs", "1"], out / "vanilla"
    else:  # trained in the tool's own process
        args, run = ["--runs", "vanilla/default", "--epochs", "1", "--train-only"], out / "vanilla" / "default"
    done = _stopped_by_sigterm([str(ROOT / "scripts" / tool), *args, "--out", str(out)], run / "tensorboard",
                               tmp_path)
    assert done.returncode == 143, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("stopped by SIGTERM: the finished")
    assert "Traceback" not in done.stderr
    assert (run / "checkpoints" / "last.ckpt").is_file()  # the half-done run was saved where it stopped
