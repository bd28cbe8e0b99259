import time

import pytest
import torch

from gan_lightning.errors import UserError
from gan_lightning.networks import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from gan_lightning.networks.spec import build_network, network_spec

IMAGE_SHAPE = (1, 28, 28)
PAIRS = [(MLPGenerator, MLPDiscriminator), (DCGANGenerator, DCGANDiscriminator)]


@pytest.mark.parametrize("generator_cls, discriminator_cls", PAIRS)
@pytest.mark.parametrize("num_classes", [0, 10])
def test_shapes_and_ranges(generator_cls, discriminator_cls, num_classes):
    torch.manual_seed(0)
    generator = generator_cls(noise_dim=16, image_shape=IMAGE_SHAPE, num_classes=num_classes)
    discriminator = discriminator_cls(image_shape=IMAGE_SHAPE, num_classes=num_classes)
    labels = torch.arange(6) % 10 if num_classes else None
    images = generator(torch.randn(6, 16), labels)
    assert images.shape == (6, *IMAGE_SHAPE)
    assert images.min() >= -1 and images.max() <= 1
    logits = discriminator(images, labels)
    assert logits.shape == (6,)
    # logits, not probabilities: the loss is BCE-with-logits
    assert not isinstance(discriminator.net[-1], torch.nn.Sigmoid)


def _first_layer_input(module, *inputs):
    captured = {}

    def hook(layer, args, output):
        captured["x"] = args[0]

    handle = module.net[0].register_forward_hook(hook)
    module(*inputs)
    handle.remove()
    return captured["x"]


def test_dcgan_generator_gets_one_hot_vector_after_noise():
    generator = DCGANGenerator(noise_dim=16, image_shape=IMAGE_SHAPE, num_classes=10)
    z, labels = torch.randn(4, 16), torch.tensor([0, 3, 7, 9])
    x = _first_layer_input(generator, z, labels)
    assert x.shape == (4, 26, 1, 1)  # (B, noise_dim + K, 1, 1)
    assert torch.equal(x[:, :16, 0, 0], z)
    assert torch.equal(x[:, 16:, 0, 0], torch.nn.functional.one_hot(labels, 10).float())


def test_dcgan_discriminator_gets_one_hot_maps_after_image():
    discriminator = DCGANDiscriminator(image_shape=IMAGE_SHAPE, num_classes=10)
    images, labels = torch.rand(3, *IMAGE_SHAPE) * 2 - 1, torch.tensor([2, 5, 8])
    x = _first_layer_input(discriminator, images, labels)
    assert x.shape == (3, 11, 28, 28)  # (B, C + K, H, W)
    assert torch.equal(x[:, :1], images)
    for i, label in enumerate(labels.tolist()):
        maps = x[i, 1:]
        assert torch.all(maps[label] == 1)
        assert maps.sum() == 28 * 28  # every other map is zero


def test_conditional_generator_output_depends_on_label():
    torch.manual_seed(0)
    generator = DCGANGenerator(noise_dim=16, image_shape=IMAGE_SHAPE, num_classes=10).eval()
    z = torch.randn(1, 16).repeat(2, 1)
    a, b = generator(z, torch.tensor([3, 5]))
    assert not torch.allclose(a, b)


def test_dcgan_init_follows_the_paper():
    torch.manual_seed(0)
    generator = DCGANGenerator(noise_dim=100, image_shape=IMAGE_SHAPE, ngf=64)
    conv, bn = generator.net[0], generator.net[1]
    assert abs(conv.weight.std().item() - 0.02) < 0.002
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and bn.bias.abs().max() == 0


@pytest.mark.parametrize("shape", [(1, 30, 30), (1, 28, 32)])
def test_dcgan_rejects_image_sizes_it_cannot_make(shape):
    with pytest.raises(ValueError, match="divisible by 4|square"):
        DCGANGenerator(noise_dim=8, image_shape=shape)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_dcgan_extra_layers_add_3x3_convs_at_the_half_size_map(batch_norm):
    torch.manual_seed(0)
    shapes = {}

    def record(name):
        return lambda layer, args, output: shapes.setdefault(name, []).append(tuple(output.shape[1:]))

    generator = DCGANGenerator(noise_dim=16, image_shape=IMAGE_SHAPE, ngf=8, n_extra_layers=2)
    discriminator = DCGANDiscriminator(IMAGE_SHAPE, ndf=8, batch_norm=batch_norm, n_extra_layers=2)
    for name, net in (("g", generator), ("d", discriminator)):
        for layer in net.net:
            if type(layer) is torch.nn.Conv2d and layer.kernel_size == (3, 3):
                layer.register_forward_hook(record(name))
    logits = discriminator(generator(torch.randn(3, 16)))
    assert logits.shape == (3,)
    assert shapes == {"g": [(16, 14, 14)] * 2, "d": [(8, 14, 14)] * 2}
    # no extra layers: the classic DCGAN, nothing 3x3
    plain = DCGANDiscriminator(IMAGE_SHAPE, ndf=8, n_extra_layers=0)
    assert not any(getattr(layer, "kernel_size", None) == (3, 3) for layer in plain.net)
    with pytest.raises(ValueError, match="n_extra_layers"):
        DCGANGenerator(noise_dim=16, image_shape=IMAGE_SHAPE, n_extra_layers=-1)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_dcgan_fc_units_add_infogans_fully_connected_layer_to_g_and_d(batch_norm):
    torch.manual_seed(0)
    generator = DCGANGenerator(noise_dim=16, image_shape=IMAGE_SHAPE, ngf=8, fc_units=32)
    discriminator = DCGANDiscriminator(IMAGE_SHAPE, ndf=8, batch_norm=batch_norm, fc_units=24, head_outputs=5)
    # G: the noise goes through 32 units before its first map; D's logit and head read its 24 units
    assert generator.fc[0].in_features == 16 and generator.net[0].in_channels == 32
    linears = [layer for layer in discriminator.net if isinstance(layer, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(16 * 7 * 7, 24), (24, 1)]
    assert any(isinstance(layer, torch.nn.BatchNorm1d) for layer in discriminator.net) == batch_norm
    assert discriminator.class_head.in_features == 24
    logits, head = discriminator(generator(torch.randn(3, 16)), with_classes=True)
    assert logits.shape == (3,) and head.shape == (3, 5)
    # 0 (the default) is the classic DCGAN, its state dict unchanged
    plain = DCGANGenerator(noise_dim=16, image_shape=IMAGE_SHAPE, ngf=8)
    assert plain.fc is None and not any(key.startswith("fc") for key in plain.state_dict())
    with pytest.raises(ValueError, match="fc_units"):
        DCGANDiscriminator(IMAGE_SHAPE, fc_units=-1)


# resolves to subprocess.Popen through the modules that gan_lightning.networks.common imports
POPEN = "gan_lightning.networks.common.torch.ctypes.util.subprocess.Popen"


def test_build_network_refuses_a_path_that_leads_out_of_the_networks(tmp_path):
    marker = tmp_path / "POPEN_RAN"
    with pytest.raises(UserError, match=r"refusing to build network .*Popen.*not one of this project's networks"):
        build_network({"_target_": POPEN, "args": ["touch", str(marker)]})
    time.sleep(0.5)  # a Popen started by mistake would have touched it by now
    assert not marker.exists()


@pytest.mark.parametrize("cls", [DCGANGenerator, DCGANDiscriminator, MLPGenerator, MLPDiscriminator])
def test_every_network_is_rebuilt_from_its_spec(cls):
    kwargs = {"image_shape": IMAGE_SHAPE, "num_classes": 0}
    if "Generator" in cls.__name__:
        kwargs["noise_dim"] = 16
    assert type(build_network(network_spec(cls, **kwargs))) is cls
