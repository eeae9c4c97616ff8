import pytest
import torch

from gan_core.config import load_config
from gan_core.models import MODELS
from gan_core.models.parts import pack_samples


def _build(name: str, shape, classes=0, **model):
    config = load_config(overrides=[f"model.name={name}", *[f"model.{k}={v}" for k, v in model.items()]])
    return MODELS.get(name)(config.model, shape, classes)


@pytest.mark.parametrize("size", [8, 16, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size: int, channels: int):
    gan = _build("dcgan", (channels, size, size), g_width=8, d_width=8)
    x = gan.generator(torch.randn(4, gan.generator.latent_dim))
    assert x.shape == (4, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    out = gan.discriminator(x)
    assert out.logit.shape == (4,) and out.class_logits is None


def test_dcgan_rejects_other_sizes():
    with pytest.raises(ValueError, match=r"square images of \[8, 16, 28, 32, 64\] pixels, not 12"):
        _build("dcgan", (1, 12, 12))


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)])
def test_mlp_shapes(shape):
    gan = _build("mlp", shape, g_width=16, d_width=16)
    x = gan.generator(torch.randn(6, gan.generator.latent_dim))
    assert x.shape == (6, *shape)
    assert gan.discriminator(x).logit.shape == (6,)


@pytest.mark.parametrize("name", ["mlp", "dcgan"])
def test_acgan_has_a_class_head_and_a_conditional_generator(name: str):
    gan = _build(name, (1, 8, 8), classes=10, conditioning="acgan", g_width=8, d_width=8)
    labels = torch.arange(6) % 10
    z = torch.randn(6, gan.generator.latent_dim)
    x = gan.generator(z, labels)
    out = gan.discriminator(x, labels)
    assert out.class_logits.shape == (6, 10)
    assert not torch.allclose(x, gan.generator(z, (labels + 1) % 10))  # labels change the output
    with pytest.raises(ValueError, match="pass labels"):
        gan.generator(z)


def test_projection_discriminator_uses_labels():
    gan = _build("mlp", (1, 8, 8), classes=10, conditioning="projection", g_width=8, d_width=8)
    x = torch.randn(4, 1, 8, 8)
    a = gan.discriminator(x, torch.zeros(4, dtype=torch.long)).logit
    b = gan.discriminator(x, torch.ones(4, dtype=torch.long)).logit
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("name,shape", [("mlp", (2,)), ("dcgan", (1, 16, 16))])
def test_pacgan_packs_samples(name, shape):
    gan = _build(name, shape, pack=4, g_width=8, d_width=8)
    x = gan.generator(torch.randn(8, gan.generator.latent_dim))
    assert gan.discriminator(x).logit.shape == (2,)
    with pytest.raises(ValueError, match="cannot be packed in groups of 4"):
        gan.discriminator(x[:6])


def test_pack_samples_groups_consecutive_samples():
    x = torch.arange(12.0).reshape(6, 2)
    packed = pack_samples(x, 3)
    assert packed.tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]


@pytest.mark.parametrize("norm", ["batch", "spectral", "layer", "none"])
def test_discriminator_norms(norm: str):
    gan = _build("dcgan", (1, 16, 16), d_norm=norm, g_width=8, d_width=8)
    assert gan.discriminator(torch.randn(4, 1, 16, 16)).logit.shape == (4,)
