from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_core.pictures import (
    MIN_GRID_WIDTH,
    caption_height,
    image_grid,
    labelled,
    loss_curves,
    render_samples,
    save_gif,
    scatter_plot,
)


def test_grid_tiles_and_upscales_small_images_by_a_whole_factor_to_512_pixels():
    grid = image_grid(torch.rand(10, 1, 8, 8) * 2 - 1, columns=5)
    tile = 8 * 13 + 1  # 5 columns of 8 px: 13 times is the least whole factor reaching 512
    assert grid.size == (5 * tile + 1, 2 * tile + 1) and grid.width >= MIN_GRID_WIDTH
    assert grid.mode == "RGB"


def test_a_titled_grid_has_its_title_above_the_tiles():
    samples = torch.ones(10, 1, 28, 28)  # white tiles: the caption strip is the only dark band
    plain, titled = render_samples(samples, columns=10), render_samples(samples, columns=10, title="run-1, step 400")
    assert titled.size == (plain.width, plain.height + caption_height()) and plain.width >= MIN_GRID_WIDTH
    strip = np.asarray(titled)[: caption_height()]
    assert (strip > 200).any() and (strip < 40).mean() > 0.5  # light text on a dark strip


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
    tile = 8 * 7 + 1  # 10 columns of 8x8, each upscaled 7 times (the grid reaches 512 px), one pixel apart
    assert picture.size == (10 * tile + 1, 7 * tile + 1)  # 70 samples: 7 whole rows of the 10 classes
    for row in range(7):
        centre = [(1 + column * tile + tile // 2, 1 + row * tile + tile // 2) for column in range(10)]
        shades = [picture.getpixel(point)[0] for point in centre]
        assert shades == [round((c / 9 * 2 - 1 + 1) * 127.5) for c in range(10)], (row, shades)
