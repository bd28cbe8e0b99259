"""DiffAugment (`model.augment`): what each augmentation does to images and their gradients, and that in training
D sees reals and fakes through it, in the D step and in the G step."""

import pytest
import torch

from gan_lightning.errors import UserError
from gan_lightning.models import GAN
from gan_lightning.models import losses as losses_module
from gan_lightning.models.augment import AUGMENTATIONS, BACKGROUND, cutout, diff_augment, translation
from gan_lightning.options import parse_policy
from gan_lightning.train import train
from tests.conftest import compose_run

POLICY = ("translation", "cutout")


def _images(b: int = 64, h: int = 28, w: int = 28) -> torch.Tensor:
    """Images (B, 1, H, W) in [-1, 1] with no pixel at the background value, so that every pixel of an augmented
    image equal to it was filled in by the augmentation."""
    return torch.empty(b, 1, h, w).uniform_(-0.9, 1.0)


@pytest.mark.parametrize("policy", [("translation",), ("cutout",), POLICY])
def test_augmentations_keep_shape_and_range_and_draw_from_torchs_global_rng(policy):
    x = _images()
    torch.manual_seed(3)
    out = diff_augment(x, policy)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= -1 and out.max() <= 1
    changed = [not torch.equal(a, b) for a, b in zip(out, x)]
    assert sum(changed) > len(x) // 2  # each image its own draw (a zero shift leaves one as it was)
    # the global RNG, whose state checkpoints carry: the same state draws the same augmentation, and it advances
    torch.manual_seed(3)
    assert torch.equal(diff_augment(x, policy), out)
    assert not torch.equal(diff_augment(x, policy), out)


def test_translation_shifts_each_image_whole_by_at_most_an_eighth_and_fills_with_the_background():
    x = torch.full((200, 1, 28, 28), BACKGROUND)
    x[:, 0, 10:18, 12:16] = torch.linspace(0, 1, 32).view(8, 4)  # a patch in the middle, room to move 4 pixels
    out = translation(x)
    shifts = set()
    for image, moved in zip(x[:, 0], out[:, 0]):
        ys, xs = torch.nonzero(moved != BACKGROUND, as_tuple=True)
        dy, dx = int(ys.min()) - 10, int(xs.min()) - 12
        assert abs(dy) <= 4 and abs(dx) <= 4  # 28 / 8 = 3.5, rounded
        assert torch.equal(moved[10 + dy : 18 + dy, 12 + dx : 16 + dx], image[10:18, 12:16])  # the patch, unchanged
        assert (moved != BACKGROUND).sum() == 32
        shifts.add((dy, dx))
    assert len(shifts) > 40  # of the 81 possible shifts


def test_cutout_blanks_one_square_of_half_the_image_cut_by_its_edges():
    out = cutout(_images(500))[:, 0]
    for image in out:
        rows, cols = torch.nonzero(image == BACKGROUND, as_tuple=True)
        top, bottom, left, right = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
        height, width = bottom - top + 1, right - left + 1
        assert len(rows) == height * width  # one filled rectangle
        assert 7 <= height <= 14 and 7 <= width <= 14  # 14 x 14, or what of it lies inside the image
        assert height == 14 or top == 0 or bottom == 27
        assert width == 14 or left == 0 or right == 27
    # a centre in 0..28 covers min(c + 7, 28) - max(c - 7, 0) rows, 350 / 29 on average, and as many columns
    assert (out == BACKGROUND).float().mean().item() == pytest.approx((350 / 29 / 28) ** 2, rel=0.05)


@pytest.mark.parametrize("policy", [("translation",), ("cutout",), POLICY])
def test_gradients_flow_back_through_the_augmentation_to_the_pixels_d_sees(policy):
    x = _images().requires_grad_(True)
    out = diff_augment(x, policy)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    # every output pixel is one input pixel or the background: the input pixel gets its output pixel's weight, the
    # pixels moved out of the image or cut out none
    shown = out.detach() != BACKGROUND
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad != 0).sum() == shown.sum() > 0
    assert torch.allclose(x.grad.sum(), (weights * shown).sum(), atol=1e-3)


@pytest.mark.parametrize("policy, names", [
    (None, ()), ([], ()), ("", ()), ("translation", ("translation",)), ("translation,cutout", POLICY),
    (["cutout", "translation"], ("cutout", "translation")),
])
def test_a_policy_is_a_list_or_a_string_of_names(policy, names):
    assert parse_policy(policy) == names
    assert set(AUGMENTATIONS) == {"translation", "cutout"}


@pytest.mark.parametrize("policy, message", [
    (["rotate"], "model.augment: unknown augmentation 'rotate'; choose from translation, cutout"),
    ("translation,color", "model.augment: unknown augmentation 'color'; choose from translation, cutout"),
    (3, "model.augment must be a list of augmentations, e.g. model.augment=[translation,cutout], or null; got 3"),
    ([1, 2], "model.augment must be a list of augmentations"),
])
def test_a_bad_policy_is_refused_in_one_line(policy, message):
    with pytest.raises(UserError) as error:
        parse_policy(policy)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_d_sees_reals_and_fakes_through_the_augmentation_in_the_d_step_and_the_g_step(tmp_path, monkeypatch):
    """A conditional GAN trained for a few real batches with `model.augment=[translation,cutout]`: in every training
    batch the real batch and G's images (detached in the D step, with their graph in the G step) go through the
    augmentation, and D is called on exactly what it returns."""
    events = []  # in order: ("batch", real), ("G", fakes), ("augment", input, output), ("D", input)

    def spy(images, policy):
        out = diff_augment(images, policy)
        assert policy == POLICY
        events.append(("augment", images, out))
        return out

    training_step = GAN.training_step

    def recorded_step(self, batch, batch_idx):
        if not getattr(self, "_recorded", False):  # hooks on the networks, recording their training calls only
            self.generator.register_forward_hook(lambda m, args, out: events.append(("G", out)) if m.training else None)
            self.discriminator.register_forward_pre_hook(
                lambda m, args: events.append(("D", args[0])) if m.training else None)
            self._recorded = True
        events.append(("batch", batch[0]))
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(losses_module, "diff_augment", spy)
    monkeypatch.setattr(GAN, "training_step", recorded_step)
    metrics = train(compose_run(tmp_path, "model=cgan", "model.augment=[translation,cutout]"))

    assert (tmp_path / "checkpoints" / "last.ckpt").is_file() and "val/fid" in metrics
    steps = [i for i, event in enumerate(events) if event[0] == "batch"]
    assert len(steps) == 3
    for start, end in zip(steps, [*steps[1:], len(events)]):
        (_, real), (_, fake), *rest = events[start:end]
        assert [event[0] for event in rest] == ["augment", "augment", "D", "D", "augment", "D"]
        (_, real_in, real_seen), (_, fake_in, fake_seen), (_, d_real), (_, d_fake), (_, g_in, g_seen), (_, d_g) = rest
        # D step: the real batch and the detached fakes, each augmented, are what D sees
        assert real_in is real and d_real is real_seen and not torch.equal(real_seen, real)
        assert fake_in.data_ptr() == fake.data_ptr() and not fake_in.requires_grad
        assert d_fake is fake_seen and not torch.equal(fake_seen, fake_in)
        # G step: the fakes with their graph, so G's gradient flows back through the augmentation
        assert g_in is fake and g_in.requires_grad and g_seen.requires_grad and d_g is g_seen
        assert not torch.equal(g_seen, fake_seen)  # a new draw
