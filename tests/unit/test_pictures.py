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
