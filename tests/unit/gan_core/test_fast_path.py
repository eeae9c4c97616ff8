"""The fast path, as far as it runs on CPU, computes the plain fp32 step.

On CUDA the step runs with channels_last conv weights and image data, fused Adam and bf16
autocast. The first two are what a CPU run does as well, so here a few steps of them are compared with the
plain step: contiguous (NCHW) layout and the single-tensor (for-loop) Adam, both in fp32.
bf16 is left out: its rounding (about 3 significant digits) would hide a wrong learning rate.
"""

from pathlib import Path

import pytest
import torch

from gan_core.config import load_config
from gan_core.data import load_dataset
from gan_core.training import (
    Meter,
    generator_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
    start_training,
    train_step,
)

# A tiny DCGAN on 3-channel 8x8 images (so that channels_last is a real change of layout).
TINY = [
    "data.name=stacked-digits", "data.n_train=500", "model.name=dcgan", "model.latent_dim=16",
    "model.g_width=16", "model.d_width=16", "model.g_norm=batch", "model.d_norm=batch",
    "train.batch_size=64", "train.precision=fp32", "train.device=cpu", "train.ema_decay=0.9",
]  # fmt: skip
STEPS = 3
# Both paths do the same arithmetic in a different order (NHWC convolution kernels; one fused
# Adam kernel instead of a loop), so they differ by fp32 rounding (eps 1.2e-7) carried through a
# few layers and steps: measured 1.6e-6 on the updates and 2.2e-7 on the losses (torch 2.13).
# The tolerances leave ~60x room above that and are still ~100x below what a 1% change of one
# learning rate does to them (1.5e-3 and 1.7e-3 at least), which the last test checks.
UPDATE_RTOL = 1e-4  # |update_fast - update_plain| / |update_plain|, over all of G's (or D's) weights
LOSS_RTOL = 1e-5  # per reported metric and step


@pytest.fixture(scope="module")
def data():
    return load_dataset("stacked-digits", n_train=500)


@pytest.fixture(scope="module")
def plain(data):
    """The reference: contiguous layout, the for-loop Adam, fp32."""
    return _run(data, "train.memory_format=contiguous", plain=True)


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])  # logical order, any layout


def _run(data, *overrides: str, plain: bool = False, steps: int = STEPS, resume_from=None):
    """`steps` training steps; returns the state, the weights it started from and the metrics of each step."""
    config = load_config(overrides=[*TINY, *overrides])
    state, phases = start_training(config, data, resume_from=resume_from)
    if plain:  # the reference optimiser, written out here rather than taken from gan_core
        optim = config.optim
        betas = (optim.beta1, optim.beta2)
        state.opt_g = torch.optim.Adam(state.generator.parameters(), lr=optim.lr_g, betas=betas, foreach=False)
        state.opt_d = torch.optim.Adam(state.discriminator.parameters(), lr=optim.lr_d, betas=betas, foreach=False)
    start = {"G": _flat(state.generator), "D": _flat(state.discriminator)}
    metrics = []
    while state.step < steps:
        meter = Meter()
        train_step(state, phases, meter, report=True)
        metrics.append(meter.read())
    return state, start, metrics


def _update_gaps(fast, plain) -> dict[str, float]:
    """Relative distance between the two runs' weight updates, for G, D and the EMA generator."""
    (f_state, start_weights, _), (p_state, _, _) = fast, plain
    gaps = {}
    for name, f_module, p_module in (
        ("G", f_state.generator, p_state.generator),
        ("D", f_state.discriminator, p_state.discriminator),
        ("EMA", f_state.ema.model, p_state.ema.model),
    ):
        start = start_weights["D" if name == "D" else "G"]  # the same in both runs (checked)
        f_update, p_update = _flat(f_module) - start, _flat(p_module) - start
        gaps[name] = float((f_update - p_update).norm() / p_update.norm())
    return gaps


def _loss_gap(fast, plain) -> float:
    pairs = [(f[k], p[k]) for f, p in zip(fast[2], plain[2], strict=True) for k in p]
    return max(abs(f - p) / max(abs(p), 1e-12) for f, p in pairs)


def test_fast_path_is_what_the_cpu_run_uses(data):
    state, _, _ = _run(data, "train.memory_format=channels_last", steps=0)
    cl = torch.channels_last
    assert state.memory_format == cl
    convs = [p for p in state.generator.parameters() if p.dim() == 4] + [
        p for p in state.discriminator.parameters() if p.dim() == 4
    ]
    assert convs and all(p.is_contiguous(memory_format=cl) and not p.is_contiguous() for p in convs)
    assert state.batches.x.is_contiguous(memory_format=cl) and not state.batches.x.is_contiguous()
    assert state.opt_g.defaults["fused"] and state.opt_d.defaults["fused"]

    auto, _, _ = _run(data, steps=0)  # auto means channels_last on CPU too (oneDNN's fast layout)
    assert auto.memory_format == cl and auto.batches.x.is_contiguous(memory_format=cl)


def test_mlp_ignores_channels_last(data):
    state, _, _ = _run(data, "model.name=mlp", "train.memory_format=channels_last", steps=0)
    assert state.memory_format == torch.contiguous_format and state.batches.x.is_contiguous()


def test_fast_path_matches_the_plain_fp32_step(data, plain):
    fast = _run(data, "train.memory_format=channels_last")
    assert torch.equal(plain[1]["G"], fast[1]["G"]) and torch.equal(plain[1]["D"], fast[1]["D"])
    assert all(gap < UPDATE_RTOL for gap in _update_gaps(fast, plain).values()), _update_gaps(fast, plain)
    assert _loss_gap(fast, plain) < LOSS_RTOL
    assert [sorted(m) for m in fast[2]] == [sorted(m) for m in plain[2]]


@pytest.mark.parametrize("changed", ["optim.lr_g=2.02e-4", "optim.lr_d=2.02e-4", "train.seed=1"])
def test_the_comparison_notices_a_one_percent_change(data, plain, changed: str):
    fast = _run(data, "train.memory_format=channels_last", changed)
    gaps = _update_gaps(fast, plain)
    assert max(gaps.values()) > 10 * UPDATE_RTOL, gaps
    assert _loss_gap(fast, plain) > 10 * LOSS_RTOL


def test_channels_last_resumes_exactly_and_its_checkpoint_serves(data, tmp_path: Path):
    straight, _, _ = _run(data, "train.memory_format=channels_last", steps=2 * STEPS)
    first, _, _ = _run(data, "train.memory_format=channels_last")
    path = save_checkpoint(first.checkpoint(), tmp_path / "ckpt.pt")
    resumed, _, _ = _run(data, "train.memory_format=channels_last", steps=2 * STEPS, resume_from=load_checkpoint(path))
    for name in ("generator", "discriminator"):
        assert torch.equal(_flat(getattr(straight, name)), _flat(getattr(resumed, name)))
    assert torch.equal(_flat(straight.ema.model), _flat(resumed.ema.model))

    # Served from the checkpoint, the (contiguous) EMA generator draws what the channels_last one does.
    served = generator_from_checkpoint(load_checkpoint(path))
    first.ema.model.eval()
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(served(z), first.ema.model(z), rtol=1e-5, atol=1e-6)


def test_a_contiguous_checkpoint_resumes_under_channels_last(data):
    """Adam's moments come back NCHW; fused Adam must still see them in the parameters' layout."""
    straight = _run(data, "train.memory_format=contiguous", steps=2 * STEPS)
    first, _, _ = _run(data, "train.memory_format=contiguous")
    resumed = _run(data, "train.memory_format=channels_last", steps=2 * STEPS, resume_from=first.checkpoint())
    for param, moments in resumed[0].opt_d.state.items():
        assert moments["exp_avg"].stride() == param.stride()
    straight_updates = {"G": _flat(straight[0].generator), "D": _flat(straight[0].discriminator)}
    for name, module in (("G", resumed[0].generator), ("D", resumed[0].discriminator)):
        since = resumed[1][name]
        gap = (_flat(module) - straight_updates[name]).norm() / (straight_updates[name] - since).norm()
        assert gap < UPDATE_RTOL, (name, float(gap))


def test_a_checkpoint_of_a_cuda_graphed_run_resumes_on_cpu(data):
    """A graphed run's Adam is capturable (its step counts on the GPU); that flag must not follow
    its checkpoint to a CPU run, where Adam refuses it."""
    first, _, _ = _run(data)
    checkpoint = first.checkpoint()
    for name in ("opt_g", "opt_d"):
        for group in checkpoint[name]["param_groups"]:
            group["capturable"] = True
    resumed, _, metrics = _run(data, steps=STEPS + 1, resume_from=checkpoint)
    assert resumed.step == STEPS + 1 and not resumed.opt_d.param_groups[0]["capturable"]
