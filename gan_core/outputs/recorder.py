"""Keeps what a run should leave behind: metric history (JSON lines), GIF frames, final pictures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from gan_core.data import Dataset
from gan_core.metrics.evaluate import generate
from gan_core.metrics.translation import translate
from gan_core.models import is_translator
from gan_core.pictures import labelled, loss_curves, render_samples, save_gif, translation_grid, translation_scatter
from gan_core.training.hooks import Hook
from gan_core.training.state import TrainState

CURVES = ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "g_rec_a", "g_rec_b", "coverage")


class RunRecorder(Hook):
    """Writes into `folder`: metrics.jsonl, frames/step-N.png, and at the end training.gif,
    samples.png and curves.png. On resume it drops history written after the checkpoint."""

    def __init__(self, folder: str | Path, dataset: Dataset) -> None:
        self.folder = Path(folder)
        self.frames = self.folder / "frames"
        self.history_path = self.folder / "metrics.jsonl"
        self.dataset = dataset

    def on_start(self, state: TrainState) -> None:
        self.frames.mkdir(parents=True, exist_ok=True)
        rows = [row for row in self.history() if row["step"] <= state.step]
        self.history_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        for frame in self.frames.glob("step-*.png"):
            if int(frame.stem.split("-")[1]) > state.step:
                frame.unlink()

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        with self.history_path.open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")

    def on_samples(self, step: int, samples: torch.Tensor, state: TrainState) -> None:
        training_picture(samples, state, self.dataset, frame_title(state, step)).save(
            self.frames / f"step-{step:06d}.png"
        )

    def on_end(self, state: TrainState) -> None:
        frames = sorted(self.frames.glob("step-*.png"))
        if frames:
            from PIL import Image

            save_gif([Image.open(f).convert("RGB") for f in frames], self.folder / "training.gif")
        loss_curves(self.history(), CURVES, self.folder / "curves.png", title=state.config.data.name)

    def history(self) -> list[dict[str, float]]:
        if not self.history_path.is_file():
            return []
        return [json.loads(line) for line in self.history_path.read_text().splitlines() if line.strip()]


PICTURE_POINTS = 2500  # a scatter plot needs many points; an image grid shows 64 samples
PICTURE_IMAGES = 64
PICTURE_TRANSLATIONS = 48  # input, translation, round trip: three tiles each


def sample_picture(generator: torch.nn.Module, dataset: Dataset, seed: int, title: str):
    """The picture of a generator: a grid of 64 images, or 2500 points over the true modes. For
    a translator: held-out inputs of A beside their translations (and round trips for images)."""

    if is_translator(generator):
        count = PICTURE_POINTS if dataset.kind == "points" else PICTURE_TRANSLATIONS
        return translation_picture(generator, dataset, dataset.test_x[:count], title)
    classes = generator.num_classes
    count = PICTURE_POINTS if dataset.kind == "points" else PICTURE_IMAGES
    if classes:  # whole rows of one sample per class
        count = classes * math.ceil(count / classes)
    samples, _ = generate(generator, count, seed)
    return render_samples(
        samples,
        dataset.modes,
        dataset.sigma,
        title,
        columns=classes or None,
        class_names=dataset.class_names,
    )


def translation_picture(translator: torch.nn.Module, dataset: Dataset, inputs: torch.Tensor, title: str = ""):
    """Images: each input of A | its translation A->B | its round trip A->B->A. Points: inputs
    and translations side by side, coloured by the mode of A they came from."""

    return translated_picture(dataset, inputs, *translate(translator, inputs), title)


def translated_picture(
    dataset: Dataset, inputs: torch.Tensor, translations: torch.Tensor, round_trips: torch.Tensor, title: str = ""
):
    """`translation_picture` of translations already made."""
    if dataset.kind == "points":
        target = dataset.target
        return translation_scatter(inputs, translations, dataset.modes, target.modes, target.sigma, title)
    legend = "input A | A->B | A->B->A"
    return labelled(translation_grid(inputs, translations, round_trips), f"{title}: {legend}" if title else legend)


def frame_title(state: TrainState, step: int) -> str:
    """What a training frame says it shows: the data and the step (a GIF is scrubbed by step)."""
    return f"{state.config.data.name}, step {step}"


def training_picture(fixed_samples: torch.Tensor, state: TrainState, dataset: Dataset, title: str = ""):
    """The frame of the training GIF: the fixed batch's samples (a translator's fixed inputs
    beside their translations), or for points a scatter of more samples from a fixed seed."""
    if is_translator(state.sampler):
        if dataset.kind == "points":
            return translation_picture(state.sampler, dataset, dataset.test_x[:PICTURE_POINTS], title)
        return translation_picture(state.sampler, dataset, state.fixed_latent[:PICTURE_TRANSLATIONS].cpu(), title)
    samples = samples_for_picture(fixed_samples, state)
    columns = state.sampler.num_classes or None
    if columns and samples.dim() == 4 and len(samples) >= columns:  # whole rows: one sample per class each
        samples = samples[: len(samples) // columns * columns]
    return render_samples(
        samples, dataset.modes, dataset.sigma, title, columns=columns, class_names=dataset.class_names
    )


@torch.no_grad()
def samples_for_picture(fixed_samples: torch.Tensor, state: TrainState, points: int = PICTURE_POINTS) -> torch.Tensor:
    """Images: the fixed batch as is. Points: a scatter needs more than 64, so draw `points` more
    from a fixed seed (the same every frame)."""
    if fixed_samples.dim() == 4:
        return fixed_samples

    samples, _ = generate(state.sampler, points, seed=state.config.eval.seed)
    return samples
