"""An MNIST-sized stand-in made from scikit-learn's 8x8 digits, written as the four IDX files.

The real MNIST files cannot be downloaded here, so this builds data of MNIST's shape and size to
time the 28x28 path (`ganpipe prepare mnist --root DIR`, training, the feature classifier):
each image is one 8x8 digit scaled to 20x20, turned, scaled and shifted at random, on a 28x28
black canvas, as MNIST centres its 20x20 digits. Training images come from the digits' training
split and test images from its test split, so test accuracy is measured on unseen writers.
Its figures are not MNIST's: the strokes are the 8x8 originals, blurred by the scaling.

    python bench/mnist_standin.py DIR                  # 60,000 + 10,000 images, as MNIST
    python bench/mnist_standin.py DIR --train 6000 --test 1000
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gan_core.data.idx import write_idx
from gan_core.data.images import IDX_FILES, load_digits

CANVAS, DIGIT = 28, 20


def jittered_digits(x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 28x28 images (0 = background) and their labels, drawn from 8x8 digits in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(x), (n,), generator=gen)
    digits = F.interpolate((x[picks] + 1) / 2, size=DIGIT, mode="bilinear", align_corners=False)
    canvas = F.pad(digits, ((CANVAS - DIGIT) // 2,) * 4)
    angle = (torch.rand(n, generator=gen) - 0.5) * math.radians(30)  # up to 15 degrees either way
    scale = 0.9 + 0.2 * torch.rand(n, generator=gen)
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * (4 / CANVAS)  # up to 2 pixels either way
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(canvas.shape), align_corners=False)
    images = F.grid_sample(canvas, grid, align_corners=False).clamp(0, 1)
    return (images[:, 0] * 255).round().to(torch.uint8).numpy(), y[picks].to(torch.uint8).numpy()


def write_standin(folder: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    digits = load_digits()
    train_x, train_y = jittered_digits(digits.train_x, digits.train_y, n_train, seed)
    test_x, test_y = jittered_digits(digits.test_x, digits.test_y, n_test, seed + 1)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train_images": train_x, "train_labels": train_y, "test_images": test_x, "test_labels": test_y}
    for key, array in arrays.items():
        write_idx(folder / IDX_FILES[key], array)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where to write the four IDX files")
    parser.add_argument("--train", type=int, default=60_000, help="training images (MNIST has 60,000)")
    parser.add_argument("--test", type=int, default=10_000, help="test images (MNIST has 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.train < 1 or args.test < 1:
        parser.error(f"--train and --test must be >= 1, got {args.train} and {args.test}")
    folder = write_standin(args.folder, args.train, args.test, args.seed)
    print(f"wrote {args.train} training and {args.test} test images (28x28) to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
