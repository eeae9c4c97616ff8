"""`ganpipe sample`: look at a generator without serving it — its samples as a picture (and as
arrays), from a run folder, a checkpoint or the model registry.

The samples are the served model's for the same count, seed and label (one `generate`), so a
picture drawn here shows what a REST request with those values returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_core.metrics.evaluate import generate
from gan_core.metrics.translation import translate
from gan_core.models import is_translator
from gan_core.outputs.recorder import PICTURE_IMAGES, PICTURE_POINTS, PICTURE_TRANSLATIONS, translated_picture
from gan_core.pictures import render_samples
from pipelines.evaluate.sources import is_model_uri, load_generator
from pipelines.settings import Settings
from pipelines.storage.datasets import class_names_for, load_for
from pipelines.tracking.server import wait_for_server

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_COUNT = 10_000  # a grid of 10,000 64x64 images is already 6,500 pixels square


@dataclass(frozen=True)
class SampleRequest:
    source: str  # an MLflow model URI, a checkpoint file or a run folder
    out: Path  # the picture
    count: int | None = None  # None: the picture a run leaves (64 images, 2500 points, 48 translations)
    seed: int = 0
    label: int = -1  # a conditional generator's class; -1 cycles through them, one column per class
    arrays: Path | None = None  # also the samples as .npz

    def __post_init__(self) -> None:
        if self.out.suffix.lower() not in PICTURE_SUFFIXES:
            raise ValueError(f"--out {self.out}: a picture file is needed, ending in {', '.join(PICTURE_SUFFIXES)}")
        if self.arrays is not None and self.arrays.suffix != ".npz":
            raise ValueError(f"--arrays {self.arrays}: the file name must end in .npz")
        for option, path in (("--out", self.out), ("--arrays", self.arrays)):
            if path is not None and not path.parent.is_dir():
                raise FileNotFoundError(f"{option} {path}: folder {path.parent} does not exist")
        if self.count is not None and not 1 <= self.count <= MAX_COUNT:
            raise ValueError(f"--count {self.count} is not allowed: 1..{MAX_COUNT}")
        if self.seed < 0:
            raise ValueError(f"--seed {self.seed} is not allowed: an integer >= 0")


def sample_source(request: SampleRequest, settings: Settings, log: Callable[[str], None] = print) -> dict:
    """Draw, write the picture (and arrays); returns what was written, for the command's summary."""

    if is_model_uri(request.source):
        wait_for_server(settings.tracking_uri, settings.tracking_wait_s, log)
    generator, config, name = load_generator(request.source, settings)
    if is_translator(generator):
        if request.label != -1:
            raise ValueError(f"--label {request.label}: {name} translates samples; it draws no classes")
        picture, arrays, what = _translations(generator, config, request, name, log)
    else:
        picture, arrays, what = _samples(generator, config, request, name)
    picture.save(request.out)
    written = [str(request.out)]
    if request.arrays is not None:
        np.savez_compressed(request.arrays, **{key: value.numpy() for key, value in arrays.items()})
        written.append(str(request.arrays))
    return {"source": name, "samples": what, "seed": request.seed, "written": written}


def _samples(generator, config, request: SampleRequest, name: str):

    points = len(generator.sample_shape) == 1
    classes = generator.num_classes
    count = request.count or (PICTURE_POINTS if points else PICTURE_IMAGES)
    cycling = classes and request.label == -1
    if cycling and request.count is None:  # whole rows of one sample per class
        count = classes * math.ceil(count / classes)
    samples, labels = generate(generator, count, request.seed, label=request.label)
    modes, sigma = _modes(config) if points else (None, 0.0)
    names = class_names_for(config) if classes else ()
    title = f"{name}, seed {request.seed}"
    columns = classes if cycling else None
    picture = render_samples(samples, modes, sigma, title, columns=columns, class_names=names if cycling else ())
    arrays = {"samples": samples} if labels is None else {"samples": samples, "labels": labels}
    kind = "points" if points else "images"
    return picture, arrays, f"{count} {kind}{_of_class(classes, cycling, request.label, names)}"


def _of_class(classes: int, cycling: bool, label: int, names: tuple[str, ...]) -> str:
    """What the summary says of the classes drawn: " of class 7 (sneaker)" where classes have names."""
    if not classes:
        return ""
    if cycling:
        return " cycling through the classes"
    named = f" ({names[label]})" if label < len(names) else ""
    return f" of class {label}{named}"


def _translations(translator, config, request: SampleRequest, name: str, log: Callable[[str], None]):
    """Held-out samples of domain A (chosen by the seed) beside their translations."""
    import torch

    dataset = load_for(config)
    held_out = len(dataset.test_x)
    count = request.count or (PICTURE_POINTS if dataset.kind == "points" else PICTURE_TRANSLATIONS)
    if count > held_out:
        log(f"--count {count}: domain A holds {held_out} held-out samples; translating all of them")
        count = held_out
    chosen = torch.randperm(held_out, generator=torch.Generator().manual_seed(request.seed))[:count]
    inputs = dataset.test_x[chosen]
    translations, round_trips = translate(translator, inputs)
    picture = translated_picture(dataset, inputs, translations, round_trips, f"{name}, seed {request.seed}")
    arrays = {"inputs": inputs, "translations": translations, "round_trips": round_trips}
    return picture, arrays, f"{count} held-out inputs of A, translated"


def _modes(config):
    """The true modes of a 2-D dataset, drawn under its samples; none where it has none."""
    dataset = load_for(config)
    return dataset.modes, dataset.sigma
