"""Every frame of a conditional generator's training GIF is whole rows, one sample per class."""

from types import SimpleNamespace

import torch

from gan_core.outputs.recorder import training_picture


def test_a_conditional_frame_drops_the_ragged_last_row():
    classes, fixed_batch = 10, 64
    shades = (torch.arange(fixed_batch) % classes).float() / (classes - 1) * 2 - 1
    fixed_samples = shades.view(-1, 1, 1, 1).expand(-1, 1, 8, 8)
    state = SimpleNamespace(sampler=SimpleNamespace(num_classes=classes))
    dataset = SimpleNamespace(kind="images", modes=None, sigma=0.0, class_names=())
    picture = training_picture(fixed_samples, state, dataset)
    tile = 8 * 7 + 1  # 8x8 upscaled 7 times (ten columns reach 512 px), one pixel apart
    assert picture.size == (classes * tile + 1, 6 * tile + 1)  # 60 of the 64: six whole rows
