"""The Python API is a door too: whatever a notebook passes to `load_generator` and the `Sampler`'s methods, the
answer is a result or the project's `UserError` with one line, never a raw TypeError, torch error or assertion."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gan_lightning
from gan_lightning import load_generator
from gan_lightning.errors import UserError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# anything a user might pass: small good values among wrong types, huge and negative integers, NaN and infinities
ANYTHING = st.one_of(st.integers(-3, 12), st.integers(min_value=2**33), st.integers(max_value=-(2**33)),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4), st.none(), st.booleans(),
                     st.lists(st.integers(0, 3), max_size=2), st.builds(np.int64, st.integers(0, 5)))


@pytest.fixture(scope="module")
def samplers():
    return {name: load_generator(name) for name in ("cgan", "vanilla", "infogan")}


def answers_or_refuses(call) -> None:
    try:
        result = call()
    except UserError as e:
        assert str(e) and "\n" not in str(e)
        return
    frames = result[0] if isinstance(result, tuple) else result
    assert isinstance(frames, np.ndarray) and frames.dtype == np.uint8


@SETTINGS
@given(model=st.sampled_from(["cgan", "vanilla", "infogan"]), n=ANYTHING, seed=ANYTHING, digit=ANYTHING,
       batch_size=ANYTHING)
def test_sample_answers_or_refuses_in_one_line(samplers, model, n, seed, digit, batch_size):
    key = "code" if model == "infogan" else "digit"
    answers_or_refuses(lambda: samplers[model].sample(n, seed=seed, batch_size=batch_size, **{key: digit}))


@SETTINGS
@given(model=st.sampled_from(["cgan", "vanilla", "infogan"]), method=st.sampled_from(["morph", "walk", "sweep",
       "codes_figure"]), seed=ANYTHING, frames=ANYTHING, span=ANYTHING, other=ANYTHING)
def test_animations_answer_or_refuse_in_one_line(samplers, model, method, seed, frames, span, other):
    sampler = samplers[model]
    calls = {"morph": lambda: sampler.morph(seed, seed_to=other, frames=frames),
             "walk": lambda: sampler.walk(seed, direction=other, span=span, frames=frames),
             "sweep": lambda: sampler.sweep(seed, frames_per_digit=frames),
             "codes_figure": lambda: sampler.codes_figure(seed, code_index=other, steps=frames, span=span)}
    answers_or_refuses(calls[method])


@pytest.mark.parametrize("source, device, message", [
    (123, "cpu", "source must be a bundled model's name"),
    (None, "cpu", "source must be a bundled model's name"),
    ("cgan", "tpu", "device must be 'cpu', 'cuda', 'cuda:N' or a torch.device, got 'tpu'"),
    ("cgan", [1], "device must be"),
])
def test_load_generator_refuses_what_it_cannot_load(source, device, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_generator(source, device=device)


def test_a_gpu_asked_for_where_there_is_none_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(UserError, match="there is no CUDA GPU on this machine"):
        load_generator("cgan", device="cuda")


@pytest.mark.parametrize("folder, options, message", [
    (5, {}, "folder must be a path, got 5"),
    ("{tmp}/out", {"dtype": "int8"}, "dtype='int8' is not one of: float32, float16"),
    ("{tmp}/out", {"overwrite": "yes"}, "overwrite must be True or False"),
])
def test_save_pretrained_refuses_bad_arguments_and_writes_nothing(samplers, tmp_path, folder, options, message):
    folder = folder.format(tmp=tmp_path) if isinstance(folder, str) else folder
    with pytest.raises(UserError, match=message):
        samplers["cgan"].save_pretrained(folder, **options)
    assert list(tmp_path.iterdir()) == []


def test_the_error_type_is_exported_at_the_top():
    assert gan_lightning.UserError is UserError


PEAK_PROBE = ("import resource, sys\nfrom gan_lightning import UserError, load_generator\n"
              "try:\n    load_generator(sys.argv[1])\nexcept UserError as e:\n    print('refused:', e)\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")


def _load_in_a_fresh_process(source: str) -> tuple[str, int]:
    """What `load_generator(source)` answers in a process of its own (its first line), and the process's peak MB."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PEAK_PROBE, source], capture_output=True, text=True, timeout=120,
                          check=True)
    lines = done.stdout.splitlines()
    return lines[0], int(lines[-1])


@pytest.mark.slow
@pytest.mark.parametrize("change", [{"ngf": 4096, "n_extra_layers": 30}, {"n_extra_layers": 10**9},
                                    {"noise_dim": 2**40}, {"image_shape": [1, 60000, 60000]}])
def test_absurd_sizes_in_a_generator_folder_are_refused_before_anything_is_allocated(samplers, tmp_path, change):
    """config.json's network sizes are read before the weights: a crafted one is refused in one line, and the
    process never grows beyond what loading a real model takes (peak memory measured in a fresh process)."""
    import json

    folder = samplers["cgan"].save_pretrained(tmp_path / "crafted")
    config = json.loads((folder / "config.json").read_text())
    config["generator"].update(change)
    (folder / "config.json").write_text(json.dumps(config))
    answer, peak = _load_in_a_fresh_process(str(folder))
    _, bundled_peak = _load_in_a_fresh_process("cgan")
    assert answer.startswith("refused: refusing to build network conv_generator")
    assert peak <= bundled_peak + 50  # MB: nothing of the network's size was allocated


@pytest.mark.slow
def test_absurd_sizes_in_a_checkpoint_are_refused_before_anything_is_allocated(trained_run, tmp_path):
    import torch

    checkpoint = torch.load(trained_run("dcgan") / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["networks"]["generator"]["ngf"] = 4096  # 1.3 billion parameters
    torch.save(checkpoint, tmp_path / "crafted.ckpt")
    answer, peak = _load_in_a_fresh_process(str(tmp_path / "crafted.ckpt"))
    _, honest_peak = _load_in_a_fresh_process(str(trained_run("dcgan") / "checkpoints" / "last.ckpt"))
    assert answer.startswith("refused: refusing to build network conv_generator") and "parameters" in answer
    assert peak <= honest_peak + 50


