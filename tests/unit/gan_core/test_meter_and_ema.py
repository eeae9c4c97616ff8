"""The running metric sums and the EMA keep their state in place on the device (what lets a CUDA
graph replay them), and compute what they did before they did."""

import torch
from torch import nn

from gan_core.training import Meter
from gan_core.training.ema import EMA


def test_meter_means_and_fresh_start_keep_the_same_sums():
    meter = Meter()
    meter.add({"loss": torch.tensor(1.0), "acc": torch.tensor(0.5)})
    meter.add({"loss": torch.tensor(3.0)})
    sums = {name: tensor.data_ptr() for name, tensor in meter._sums.items()}
    assert meter.read() == {"loss": 2.0, "acc": 0.5}
    assert meter.read() == {}  # nothing counted since
    meter.add({"loss": torch.tensor(5.0)})
    assert meter.read() == {"loss": 5.0}  # the old sum was zeroed, not carried over
    assert {name: tensor.data_ptr() for name, tensor in meter._sums.items()} == sums


def test_meter_sums_and_counts_can_come_apart():
    """A graph replay adds to the sums on the device; the host counts one step per replay."""
    meter = Meter()
    meter.accumulate({"loss": torch.tensor(2.0)})
    meter.accumulate({"loss": torch.tensor(4.0)})
    meter.count(["loss", "loss"])
    assert meter.read() == {"loss": 3.0}


def _model(value: float) -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


def test_ema_warms_up_as_one_over_the_step_count():
    model = _model(0.0)
    ema = EMA(model, decay=0.999)
    expected = 0.0
    for step in range(1, 30):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(step))
        ema.update(model)
        decay = min(0.999, (1 + step) / (10 + step))
        expected = decay * expected + (1 - decay) * step
        for p in ema.model.parameters():
            torch.testing.assert_close(p, torch.full_like(p, expected), rtol=1e-6, atol=0)
    # Buffers (batch-norm statistics) are copied, not averaged.
    assert torch.equal(ema.model[1].running_mean, model[1].running_mean)


def test_a_restarted_ema_continues_the_warm_up():
    straight, resumed = EMA(_model(0.0), 0.999), EMA(_model(0.0), 0.999)
    target = _model(1.0)
    for _ in range(6):
        straight.update(target)
    resumed.restart_at(5)
    resumed.model.load_state_dict(_after_five(target).state_dict())
    resumed.update(target)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)


def _after_five(target: nn.Module) -> nn.Module:
    ema = EMA(_model(0.0), 0.999)
    for _ in range(5):
        ema.update(target)
    return ema.model
