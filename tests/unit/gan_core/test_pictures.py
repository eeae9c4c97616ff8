from pathlib import Path

import torch
from PIL import Image

from gan_core.pictures import image_grid, labelled, loss_curves, save_gif, scatter_plot


def test_grid_tiles_and_upscales_small_images():
    grid = image_grid(torch.rand(10, 1, 8, 8) * 2 - 1, columns=5)
    assert grid.size == (5 * (32 + 1) + 1, 2 * (32 + 1) + 1)
    assert grid.mode == "RGB"


def test_grid_maps_minus_one_to_black_and_one_to_white():
    grid = image_grid(torch.stack([-torch.ones(3, 4, 4), torch.ones(3, 4, 4)]), columns=2, scale=1, pad=0)
    assert grid.getpixel((0, 0)) == (0, 0, 0) and grid.getpixel((4, 0)) == (255, 255, 255)


def test_scatter_and_gif(tmp_path: Path):
    frames = [labelled(scatter_plot(torch.randn(50, 2), torch.zeros(1, 2), 0.1), f"step {i}") for i in range(3)]
    path = save_gif(frames, tmp_path / "t.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 3


def test_loss_curves(tmp_path: Path):
    history = [{"step": s, "d_loss": 1.0 / s, "g_loss": s} for s in range(1, 6)]
    assert loss_curves(history, ["d_loss", "g_loss", "absent"], tmp_path / "c.png").stat().st_size > 1000


class _ShadeOfItsClass(torch.nn.Module):
    """A conditional generator whose every pixel says which class it was asked for."""

    latent_dim, num_classes = 4, 10

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, z, labels):
        return (labels.float() / 9 * 2 - 1).view(-1, 1, 1, 1).expand(-1, 1, 8, 8) + self.anchor


def test_a_conditional_generator_s_samples_show_one_class_per_column():
    """Its samples cycle through the 10 classes; laid out 8 to a row, neither rows nor columns were classes."""
    from types import SimpleNamespace

    from gan_core.outputs import sample_picture

    picture = sample_picture(
        _ShadeOfItsClass(), SimpleNamespace(kind="images", modes=None, sigma=0.0, class_names=()), 0, ""
    )
    tile = 32 + 1  # 8x8 upscaled to 32, one pixel apart
    assert picture.size == (10 * tile + 1, 7 * tile + 1)  # 70 samples: 7 whole rows of the 10 classes
    for row in range(7):
        shades = [picture.getpixel((1 + column * tile + 16, 1 + row * tile + 16))[0] for column in range(10)]
        assert shades == [round((c / 9 * 2 - 1 + 1) * 127.5) for c in range(10)], (row, shades)
