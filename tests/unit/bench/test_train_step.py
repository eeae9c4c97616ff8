"""bench/train_step.py's kernel-time table: kinds of kernel by name, and the eager fallback when
the profiler sees no kernel inside CUDA graph replays."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCH = Path(__file__).resolve().parents[3] / "bench"


@pytest.fixture(scope="module")
def train_step():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("train_step", BENCH / "train_step.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize(
    "name, kind",
    [
        ("triton_per_fused__native_batch_norm_legit_functional_leaky_relu_0", "triton (compiled, fused)"),
        ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64", "convolution / matmul"),
        ("void cudnn::bn_fw_tr_1C11_singleread_spec<__nv_bfloat16, 512, true, 1, 2, 0>", "batch norm"),
        ("void at::native::batch_norm_collect_statistics_channels_last_kernel<float>", "batch norm"),
        ("void at::native::(anonymous namespace)::fused_adam_kernel<float>", "adam"),
        ("void nchwToNhwcKernel<__nv_bfloat16, __nv_bfloat16, float, true, false>", "layout change"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>", "elementwise"),
        ("aten::mkldnn_convolution", "convolution / matmul"),
        ("something_else", "other"),
    ],
)
def test_kernels_are_sorted_into_kinds_by_name(train_step, name, kind):
    assert train_step.kernel_kind(name) == kind


def test_table_of_a_cpu_step_ranks_the_operators_by_their_own_time(train_step):
    args = SimpleNamespace(warmup=1, steps=1, precision="auto", memory_format="auto", cuda_graphs="auto")
    images = train_step.synthetic_images(2)
    step = train_step.GanCoreStep(torch.device("cpu"), 2, images, args.precision)
    step()
    table = train_step.kernel_table(
        step, torch.device("cpu"), 1, {"impl": "gan_core", "device": "cpu", "batch": 2, "images_per_s": 10.0}
    )
    assert table["profiled_as"] == "as timed" and table["busy_ms_per_step"] > 0
    times = [row["us_per_step"] for row in table["top"]]
    assert times == sorted(times, reverse=True) and 0 < sum(row["share"] for row in table["top"]) <= 1.0001
    assert "convolution / matmul" in table["kinds_ms_per_step"]


def test_graphed_step_whose_replays_show_no_kernels_is_profiled_eagerly(train_step, monkeypatch):
    eager_calls = []
    graphed = train_step.GraphedStep.__new__(train_step.GraphedStep)  # no CUDA here: only what the table reads
    graphed.eager_step = lambda meter, report: eager_calls.append(report)
    step = SimpleNamespace(run_step=graphed, meter=object())
    results = iter([({}, 0.01), ({"sm90_xmma_fprop": [4, 400.0], "triton_poi_fused_0": [2, 100.0]}, 0.002)])
    calls = []

    def profiled(call, device, steps):  # the graph's replays show nothing; the eager steps do
        calls.append(call)
        if len(calls) == 2:
            for _ in range(steps):
                call()
        return next(results)

    monkeypatch.setattr(train_step, "profiled", profiled)
    timed = {"impl": "gan_core", "device": "H200", "batch": 64, "images_per_s": 64_000.0, "cuda_graph": True}
    table = train_step.kernel_table(step, torch.device("cuda"), 2, timed)
    assert eager_calls == [False, False]
    assert table["profiled_as"].startswith("eager") and table["busy_ms_per_step"] == pytest.approx(0.25)
    assert table["kinds_ms_per_step"] == {"convolution / matmul": 0.2, "triton (compiled, fused)": 0.05}
    assert table["busy_share_of_timed_step"] == pytest.approx(0.25)
