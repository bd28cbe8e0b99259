"""torch.hub entry points: `torch.hub.load("<owner>/gan-lightning", "cgan")` gives the bundled conditional GAN.

Each returns a `gan_lightning.sampling.Sampler` (`.sample(16, digit=7, seed=0)`, `.morph`, `.walk`, `.sweep`);
the weights ship inside the repository, so nothing is downloaded beyond it. `generator` opens your own
checkpoint or generator folder: `torch.hub.load(repo, "generator", path="outputs/.../last.ckpt")` (torch.hub keeps
the name `source` for itself).
"""

from gan_lightning import load_generator

dependencies = ["torch", "torchvision", "lightning", "hydra", "omegaconf", "torchmetrics", "safetensors"]


def vanilla(device: str = "cpu"):
    """The bundled Vanilla GAN (fully connected)."""
    return load_generator("vanilla", device)


def dcgan(device: str = "cpu"):
    """The bundled DCGAN."""
    return load_generator("dcgan", device)


def cgan(device: str = "cpu"):
    """The bundled conditional GAN: `.sample(n, digit=7)`."""
    return load_generator("cgan", device)


def infogan(device: str = "cpu"):
    """The bundled InfoGAN: `.sample(n, code=3, continuous=(1.0, 0.0))`; its codes were learnt without labels."""
    return load_generator("infogan", device)


def fashion_cgan(device: str = "cpu"):
    """The bundled conditional GAN of Fashion-MNIST: `.sample(n, label="Sneaker")` (or the class's index, 7)."""
    return load_generator("fashion_cgan", device)


def generator(path: str = "cgan", device: str = "cpu"):
    """Any generator: a bundled model's name, a training checkpoint, or a folder written by `save_pretrained`."""
    return load_generator(path, device)
