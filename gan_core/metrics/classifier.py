"""The feature classifier behind the image metrics (in place of Inception weights).

No pretrained network can be downloaded here, so gan_core trains a small CNN on the
labelled training split and uses its penultimate layer as the feature space for Fréchet
distance and precision/recall, and its class probabilities for the Inception-style score,
class coverage and stacked-digit modes. It is trained once per dataset and cached.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_core.config import EvalConfig
from gan_core.data import Dataset
from gan_core.files import UnreadableFile, load_safely, save_atomically

FEATURE_DIM = 128
BATCH = 64
# Images this wide start with a stride-2 convolution. At full resolution a 28x28 image cost the
# first two blocks 12x an 8x8 one, and 40 epochs of MNIST would have taken about 90 minutes
# on 2 CPU cores (bench/classifier.py); 8x8 digits keep their full-resolution stem.
STRIDED_STEM_FROM = 24
PROGRESS_LINES = 4  # during training: at a quarter, half, three quarters and the end
# Datasets whose classes survive a left-right mirror: the classifier also learns from mirrored
# images there. A mirrored shirt is a shirt; a mirrored 3 is no digit, so digits never are.
MIRRORED = frozenset({"fashion-mnist"})
# Datasets whose classes differ in fine detail (a shirt's buttons and collar against a T-shirt
# or a pullover): their wide images meet a full-resolution first convolution, and the second
# block halves them instead, at nearly the same cost. A stride-2 stem on raw pixels reads one
# pixel in two; digits do not need more. On Fashion-MNIST, 400,000 mirrored images: 91.4% with
# the stride-2 stem, 92.0% with this one (bench/classifier.py, docs/evaluation.md).
FINE_STEM = frozenset({"fashion-mnist"})


class FeatureClassifier(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: int, fine_stem: bool = False) -> None:
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        stem_stride, second_stride = _strides(image_size, fine_stem)
        block = lambda i, o, s: [nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]  # noqa: E731
        self.features = nn.Sequential(
            *block(in_channels, 32, stem_stride),
            *block(32, 64, second_stride),
            *block(64, 128, 2),
            *block(128, FEATURE_DIM, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))
        # oneDNN's NHWC convolutions: 8-25% faster on CPU for these sizes (as for the GANs).
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, class probabilities) for every image, in eval mode, on CPU."""
        self.eval()
        feats, probs = [], []
        for chunk in x.split(batch):
            h = self.features(chunk.float().contiguous(memory_format=torch.channels_last))
            feats.append(h)
            probs.append(F.softmax(self.head(h), dim=1))
        return torch.cat(feats), torch.cat(probs)


def _strides(image_size: int, fine_stem: bool = False) -> tuple[int, int]:
    """Strides of the first two blocks: wide images are halved once, by the stem or (fine_stem) the second."""
    if image_size < STRIDED_STEM_FROM:
        return 1, 1
    return (1, 2) if fine_stem else (2, 1)


def new_classifier(dataset: Dataset) -> FeatureClassifier:
    """An untrained classifier shaped for `dataset` (its channels, classes, size and recipe)."""
    _, channels, _, size = dataset.train_x.shape
    return FeatureClassifier(channels, dataset.num_classes, size, fine_stem=dataset.name in FINE_STEM)


def training_steps(n_train: int, epochs: int, max_images: int) -> int:
    """Optimizer steps: `epochs` passes over the training split, but at most `max_images` images.

    A small set (1,438 digits) gets its epochs; MNIST's 60,000 stop at the image budget, a few
    epochs, which is where such a network's test accuracy levels off.
    """
    return max(1, min(epochs * _steps_per_epoch(n_train), max_images // BATCH))


def _steps_per_epoch(n_train: int) -> int:
    return max(1, n_train // BATCH)  # an epoch's last partial batch is skipped


def train_classifier(
    dataset: Dataset, epochs: int = 40, seed: int = 0, log=None, max_images: int = EvalConfig.classifier_images
) -> tuple[FeatureClassifier, float]:
    """Train on the train split (with 1-pixel shifts as augmentation, and mirroring for MIRRORED data);
    returns it and its test accuracy."""
    if not dataset.labelled or dataset.kind != "images":
        raise ValueError(f"the feature classifier needs labelled images; dataset {dataset.name!r} has none")
    dataset = dataset.source or dataset  # stacked digits: learn the single digits
    torch.manual_seed(seed)
    x, y = dataset.train_x, dataset.train_y
    model = new_classifier(dataset)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = training_steps(len(x), epochs, max_images)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    progress = _Progress(steps, log)
    mirror = dataset.name in MIRRORED
    model.train()
    for step, index in zip(range(steps), _shuffled_batches(len(x), gen), strict=False):
        images = random_shift(x[index], gen)
        if mirror:
            images = random_mirror(images, gen)
        images = images.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(images), y[index], label_smoothing=0.05)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        progress.after(step + 1, loss)
    _, probs = model.embed(dataset.test_x)
    accuracy = float((probs.argmax(1) == dataset.test_y).float().mean())
    return model.eval(), accuracy


def _shuffled_batches(n: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches of BATCH, a fresh order each epoch."""
    while True:
        order = torch.randperm(n, generator=gen)
        for i in range(_steps_per_epoch(n)):
            yield order[i * BATCH : (i + 1) * BATCH]


class _Progress:
    """Says, a few times while the classifier trains, how far it is and how long is left."""

    def __init__(self, steps: int, log) -> None:
        self.steps, self.log, self.start = steps, log, time.monotonic()
        self.marks = {math.ceil(steps * k / PROGRESS_LINES) for k in range(1, PROGRESS_LINES + 1)}

    def after(self, step: int, loss: torch.Tensor) -> None:
        if self.log is None or step not in self.marks:
            return
        elapsed = time.monotonic() - self.start
        rate = step * BATCH / max(elapsed, 1e-9)
        left = (self.steps - step) * BATCH / rate
        self.log(
            f"feature classifier: {step * BATCH:,}/{self.steps * BATCH:,} images ({step / self.steps:.0%}), "
            f"loss {loss.item():.3f}, {rate:,.0f} images/s"
            + (f", about {left:.0f} s left" if step < self.steps else "")
        )


def random_shift(x: torch.Tensor, gen: torch.Generator, pixels: int = 1) -> torch.Tensor:
    """Translate each image by up to `pixels` in each direction (padding with the background, -1)."""
    _, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * pixels + 1, (len(x),), generator=gen)
    dy = torch.randint(0, 2 * pixels + 1, (len(x),), generator=gen)
    out = torch.empty_like(x)
    for i in range(2 * pixels + 1):
        for j in range(2 * pixels + 1):
            pick = (dy == i) & (dx == j)
            if pick.any():
                out[pick] = padded[pick, :, i : i + h, j : j + w]
    return out


def random_mirror(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image mirrored left to right with probability one half."""
    flip = torch.rand(len(x), generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def classifier_key(dataset: Dataset, epochs: int, seed: int, max_images: int = EvalConfig.classifier_images) -> str:
    """Identifies a classifier: the data it learned from and how."""
    dataset = dataset.source or dataset
    recipe = {
        "data": dataset.name,
        "steps": training_steps(len(dataset.train_x), epochs, max_images),
        "seed": seed,
        "arch": [FEATURE_DIM, _strides(dataset.train_x.shape[-1])[0]],
    }
    # Only where set: the keys of the classifiers trained before these existed stay valid.
    if dataset.name in MIRRORED:
        recipe["mirror"] = True
    if dataset.name in FINE_STEM:
        recipe["fine_stem"] = True
    digest = hashlib.sha256()
    digest.update(json.dumps(recipe).encode())
    digest.update(dataset.train_x[: min(len(dataset.train_x), 4096)].numpy().tobytes())
    return f"{dataset.name}-{digest.hexdigest()[:12]}"


def load_or_train_classifier(
    dataset: Dataset,
    cache_dir: str | Path | None = None,
    epochs: int = 40,
    seed: int = 0,
    log=None,
    max_images: int = EvalConfig.classifier_images,
) -> tuple[FeatureClassifier, float]:
    """A cached classifier if `cache_dir` holds one for this data, else a freshly trained one (then cached)."""
    path = Path(cache_dir) / f"classifier-{classifier_key(dataset, epochs, seed, max_images)}.pt" if cache_dir else None
    source = dataset.source or dataset
    if path is not None and path.is_file():
        try:
            saved = load_safely(path)
        except UnreadableFile as error:  # derived data: trained again and replaced
            if log:
                log(f"cached classifier {error}; training it again")
        else:
            model = new_classifier(source)
            model.load_state_dict(saved["weights"])
            return model.eval(), float(saved["test_accuracy"])
    model, accuracy = train_classifier(dataset, epochs, seed, log, max_images)
    if path is not None:
        save_atomically({"weights": model.state_dict(), "test_accuracy": accuracy}, path)
    return model, accuracy
