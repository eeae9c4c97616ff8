"""Pictures a person would rather look at: sample grids, 2-D scatter plots, training GIFs.

Written with Pillow (and matplotlib for scatter plots), never torchvision.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

NAME_MARGIN = 3  # pixels between a column's name and the grid
MIN_GRID_WIDTH = 512  # a 28-pixel Fashion-MNIST tile or an 8-pixel digit is a smudge on a screen at 1:1
CAPTION_SIZE = 16  # font size of a picture's title (Pillow's own font: nothing to install)
NAME_SIZE = 12  # font size of a column's class name


def image_grid(images: torch.Tensor, columns: int | None = None, scale: int | None = None, pad: int = 1) -> Image.Image:
    """(N, C, H, W) in [-1, 1] -> one RGB image, tiles upscaled (nearest, by a whole factor) so
    that the grid is at least MIN_GRID_WIDTH pixels wide."""
    images = images.detach().float().cpu().clamp(-1, 1)
    n, channels, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    scale = scale or max(1, math.ceil(MIN_GRID_WIDTH / (min(columns, n) * width)))
    pixels = ((images + 1) * 127.5).round().to(torch.uint8)
    if channels == 1:
        pixels = pixels.expand(n, 3, height, width)
    elif channels != 3:  # e.g. packed or odd channel counts: show the first channel
        pixels = pixels[:, :1].expand(n, 3, height, width)
    tile_h, tile_w = height * scale + pad, width * scale + pad
    canvas = np.full((rows * tile_h + pad, columns * tile_w + pad, 3), 40, dtype=np.uint8)
    tiles = pixels.permute(0, 2, 3, 1).numpy().repeat(scale, axis=1).repeat(scale, axis=2)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas[
            pad + r * tile_h : pad + r * tile_h + height * scale, pad + c * tile_w : pad + c * tile_w + width * scale
        ] = tile
    return Image.fromarray(canvas)


def scatter_plot(
    points: torch.Tensor, modes: torch.Tensor | None = None, sigma: float = 0.0, title: str = ""
) -> Image.Image:
    """2-D samples over the true modes (with their 3-sigma high-quality circles)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    points = points.detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.35, color="#1f77b4", label="generated")
    if modes is not None:
        m = modes.cpu().numpy()
        ax.scatter(m[:, 0], m[:, 1], s=30, marker="x", color="#d62728", label="modes")
        for x, y in m:
            ax.add_patch(plt.Circle((x, y), 3 * sigma, fill=False, color="#d62728", lw=0.6))
        span = np.abs(m).max() * 1.35 + 6 * sigma
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return _figure_image(fig)


def render_samples(
    samples: torch.Tensor,
    modes: torch.Tensor | None = None,
    sigma: float = 0.0,
    title: str = "",
    columns: int | None = None,
    class_names: Sequence[str] = (),
) -> Image.Image:
    """A grid for images (`columns` wide: a conditional generator's samples cycle through the
    classes, so one column per class puts each class in a column), a scatter plot for points.
    With one name per column, the grid is headed by the names: a column of sneakers reads as
    sneakers, not as class 7. A title (run, step) goes above either."""
    if samples.dim() != 4:
        return scatter_plot(samples, modes, sigma, title)
    grid = image_grid(samples, columns)
    if columns and len(class_names) == columns:
        grid = with_column_names(grid, class_names)
    return labelled(grid, title) if title else grid


def with_column_names(grid: Image.Image, names: Sequence[str], pad: int = 1) -> Image.Image:
    """`grid` (one column per name, `pad` pixels around its tiles) under a strip naming each column.

    The names are written upwards, one per column, ending at the grid: a 28-pixel tile is too
    narrow for "ankle boot" written across it.
    """
    tile = (grid.width - pad) / len(names)
    font = _font(NAME_SIZE)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [probe.textbbox((0, 0), name, font=font) for name in names]
    depth = max(box[2] for box in boxes) + 2 * NAME_MARGIN
    sideways = Image.new("RGB", (depth, grid.width), (20, 20, 20))  # drawn across, then turned upright
    draw = ImageDraw.Draw(sideways)
    for i, (name, box) in enumerate(zip(names, boxes, strict=True)):
        top = pad + i * tile + (tile - pad - (box[3] + box[1])) / 2  # the text's ink centred on the tile
        draw.text((NAME_MARGIN, top), name, fill=(230, 230, 230), font=font)
    strip = sideways.rotate(90, expand=True)
    out = Image.new("RGB", (grid.width, strip.height + grid.height), (20, 20, 20))
    out.paste(strip, (0, 0))
    out.paste(grid, (0, strip.height))
    return out


def translation_grid(inputs: torch.Tensor, *outputs: torch.Tensor, columns: int = 8, gap: int = 3) -> Image.Image:
    """Each input beside what became of it (e.g. translation, round trip), one group per input:
    the members of a group are split by a thin grey line, groups by a wider dark gap."""
    height = inputs.shape[-2]
    scale = max(1, 32 // height)
    enlarge = lambda x: x.detach().float().cpu().repeat_interleave(scale, -2).repeat_interleave(scale, -1)  # noqa: E731
    members = [enlarge(inputs)] + [enlarge(x) for x in outputs]
    line = torch.zeros(*members[0].shape[:-1], 1)  # 0 is mid-grey in [-1, 1]: visible on dark and light images
    pieces = [members[0]]
    for member in members[1:]:
        pieces += [line, member]
    return image_grid(torch.cat(pieces, dim=-1), columns=columns, scale=1, pad=gap)


def translation_scatter(
    inputs: torch.Tensor,
    translations: torch.Tensor,
    source_modes: torch.Tensor,
    target_modes: torch.Tensor,
    sigma: float,
    title: str = "",
) -> Image.Image:
    """2-D translation: inputs in A (left) and their translations in B (right), each point
    coloured by the mode of A it came from, over the true modes (and 3-sigma circles) of B."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    inputs, translations = inputs.detach().float().cpu(), translations.detach().float().cpu()
    origin = torch.cdist(inputs, source_modes.float()).argmin(1).numpy()
    colours = plt.get_cmap("tab10")(origin % 10)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2), dpi=100)
    panels = ((axes[0], inputs, source_modes, "domain A (inputs)"), (axes[1], translations, target_modes, "A -> B"))
    for ax, points, modes, name in panels:
        ax.scatter(points[:, 0].numpy(), points[:, 1].numpy(), s=2, alpha=0.4, c=colours)
        m = modes.cpu().numpy()
        ax.scatter(m[:, 0], m[:, 1], s=30, marker="x", color="black", label="modes")
        if modes is target_modes:
            for x, y in m:
                ax.add_patch(plt.Circle((x, y), 3 * sigma, fill=False, color="black", lw=0.6))
        span = np.abs(m).max() * 1.35 + 6 * sigma
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    return _figure_image(fig)


def _figure_image(fig) -> Image.Image:
    """A matplotlib figure as an RGB image (the figure is closed)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def labelled(image: Image.Image, text: str) -> Image.Image:
    """The image under a caption strip ('ring-gan, step 1200'); a caption wider than the image is
    cut at its edge rather than widening the picture."""
    strip = caption_height()
    out = Image.new("RGB", (image.width, image.height + strip), (20, 20, 20))
    out.paste(image, (0, strip))
    ImageDraw.Draw(out).text((4, 3), text, fill=(230, 230, 230), font=_font(CAPTION_SIZE))
    return out


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font at `size` (its bitmap font where Pillow lacks FreeType), loaded once."""
    return ImageFont.load_default(size=size)


def caption_height() -> int:
    """Pixels of the strip `labelled` adds: the caption font's line height and a margin."""
    return CAPTION_SIZE + 8


def save_gif(frames: Sequence[Image.Image], path: str | Path, frame_ms: int = 150, hold_last_ms: int = 1200) -> Path:
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    path = Path(path)
    durations = [frame_ms] * (len(frames) - 1) + [hold_last_ms]
    frames[0].save(path, save_all=True, append_images=list(frames[1:]), duration=durations, loop=0, optimize=False)
    return path


def loss_curves(history: Sequence[dict[str, float]], keys: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Line plots of the logged metrics against the step."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    keys = [k for k in keys if any(k in row for row in history)]
    fig, axes = plt.subplots(len(keys), 1, figsize=(6, 1.8 * max(1, len(keys))), dpi=100, sharex=True, squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=True):
        rows = [row for row in history if key in row]
        ax.plot([row["step"] for row in rows], [row[key] for row in rows], lw=1.2)
        ax.set_ylabel(key, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
