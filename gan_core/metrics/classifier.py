"""The feature classifier behind the image metrics (in place of Inception weights).

No pretrained network can be downloaded here, so gan_core trains a small CNN on the
labelled training split and uses its penultimate layer as the feature space for Fréchet
distance and precision/recall, and its class probabilities for the Inception-style score,
class coverage and stacked-digit modes. It is trained once per dataset and cached.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_core.data import Dataset
from gan_core.files import UnreadableFile, load_safely, save_atomically

FEATURE_DIM = 128


class FeatureClassifier(nn.Module):
    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        block = lambda i, o, s: [nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]  # noqa: E731
        self.features = nn.Sequential(
            *block(in_channels, 32, 1),
            *block(32, 64, 1),
            *block(64, 128, 2),
            *block(128, FEATURE_DIM, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, class probabilities) for every image, in eval mode, on CPU."""
        self.eval()
        feats, probs = [], []
        for chunk in x.split(batch):
            h = self.features(chunk.float())
            feats.append(h)
            probs.append(F.softmax(self.head(h), dim=1))
        return torch.cat(feats), torch.cat(probs)


def train_classifier(dataset: Dataset, epochs: int = 40, seed: int = 0, log=None) -> tuple[FeatureClassifier, float]:
    """Train on the train split (with 1-pixel shifts as augmentation); returns it and its test accuracy."""
    if not dataset.labelled or dataset.kind != "images":
        raise ValueError(f"the feature classifier needs labelled images; dataset {dataset.name!r} has none")
    dataset = dataset.source or dataset  # stacked digits: learn the single digits
    torch.manual_seed(seed)
    x, y = dataset.train_x, dataset.train_y
    model = FeatureClassifier(x.shape[1], dataset.num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps_per_epoch = max(1, len(x) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(steps_per_epoch):
            index = order[i * 64 : (i + 1) * 64]
            loss = F.cross_entropy(model(random_shift(x[index], gen)), y[index], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if log and (epoch + 1) % 10 == 0:
            log(f"feature classifier: epoch {epoch + 1}/{epochs}, loss {loss.item():.3f}")
    _, probs = model.embed(dataset.test_x)
    accuracy = float((probs.argmax(1) == dataset.test_y).float().mean())
    return model.eval(), accuracy


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


def classifier_key(dataset: Dataset, epochs: int, seed: int) -> str:
    """Identifies a classifier: the data it learned from and how."""
    dataset = dataset.source or dataset
    digest = hashlib.sha256()
    digest.update(json.dumps({"data": dataset.name, "epochs": epochs, "seed": seed, "arch": FEATURE_DIM}).encode())
    digest.update(dataset.train_x[: min(len(dataset.train_x), 4096)].numpy().tobytes())
    return f"{dataset.name}-{digest.hexdigest()[:12]}"


def load_or_train_classifier(
    dataset: Dataset, cache_dir: str | Path | None = None, epochs: int = 40, seed: int = 0, log=None
) -> tuple[FeatureClassifier, float]:
    """A cached classifier if `cache_dir` holds one for this data, else a freshly trained one (then cached)."""
    path = Path(cache_dir) / f"classifier-{classifier_key(dataset, epochs, seed)}.pt" if cache_dir else None
    source = dataset.source or dataset
    channels, classes = source.sample_shape[0], source.num_classes
    if path is not None and path.is_file():
        try:
            saved = load_safely(path)
        except UnreadableFile as error:  # derived data: trained again and replaced
            if log:
                log(f"cached classifier {error}; training it again")
        else:
            model = FeatureClassifier(channels, classes)
            model.load_state_dict(saved["weights"])
            return model.eval(), float(saved["test_accuracy"])
    model, accuracy = train_classifier(dataset, epochs, seed, log)
    if path is not None:
        save_atomically({"weights": model.state_dict(), "test_accuracy": accuracy}, path)
    return model, accuracy
