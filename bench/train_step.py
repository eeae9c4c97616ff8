"""Images per second of one DCGAN-64 training step: the classic reference loop against gan_core's.

    python bench/train_step.py                       # batches 64, 256, 1024 on CUDA; 64 on CPU
    python bench/train_step.py --compile             # gan_core's step with train.compile=true
    python bench/train_step.py --compile --compile-mode max-autotune   # and the compiler's kernel tuning
    python bench/train_step.py --batches 64 256 --steps 30 --cuda-graphs never
    python bench/train_step.py --world-size 4        # and gan_core's step under DDP on 4 GPUs
    python bench/train_step.py --fresh-fakes         # G's update draws new fakes (gan_core's default)

Both run in this process on the same device. The reference is the classic PyTorch DCGAN
example's step, written out here: 64x64 RGB, nz=100, ngf=ndf=64, fp32 (strict: cuDNN's TF32
is switched off for it unless `--reference-tf32`), Sigmoid + BCELoss, plain Adam, and
`.item()` on its five statistics every step (a host sync each). gan_core's step is the one
`ganpipe train` runs (`start_training` + `step_runner`, the body of `fit`), configured to do
the same work: DCGAN-64 with batch norm in G and D (D's keeping the statistics of real and
fake rows apart, as the reference's separate passes do), the non-saturating loss
(BCE on logits), no EMA, and G's update judging the fakes of D's update again
(`train.reuse_fakes`, as the reference does; `--fresh-fakes` draws new ones). On CUDA it
uses what the config chooses there: bf16 autocast, channels_last, fused Adam, the dataset
resident on the GPU, no host sync inside the step and the step replayed as one CUDA graph
(`train.cuda_graphs`); `--compile` adds torch.compile.

One JSON line per (implementation, batch): images/s, achieved TFLOP/s (FLOPs of one step
counted with torch's FlopCounterMode) and, for gan_core, the ratio to the reference.

With `--world-size N` (N > 1) gan_core's step also runs under DistributedDataParallel in N
processes (one GPU each with NCCL on CUDA, gloo on CPU), each on the given batch (so the
global batch is N times it), wrapped as Ray Train workers wrap it; one more JSON line gives
the total images/s and the scaling efficiency: images/s at N / (N x gan_core's images/s in
one process, measured just before).
"""

from __future__ import annotations

import argparse
import functools
import json
import socket
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gan_core.config import load_config
from gan_core.data import Dataset
from gan_core.training import Meter, resolve_device, start_training, step_runner
from gan_core.training.distributed import ddp
from gan_core.training.graphed import GraphedStep

NZ, NGF, NDF, CHANNELS, SIZE = 100, 64, 64, 3, 64


# --------------------------------------------------------------------------- the reference step


def reference_models() -> tuple[nn.Module, nn.Module]:
    def up(cin: int, cout: int, first: bool = False) -> list[nn.Module]:
        conv = nn.ConvTranspose2d(cin, cout, 4, 1 if first else 2, 0 if first else 1, bias=False)
        return [conv, nn.BatchNorm2d(cout), nn.ReLU(True)]

    def down(cin: int, cout: int, norm: bool = True) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), *([nn.BatchNorm2d(cout)] if norm else [])] + [
            nn.LeakyReLU(0.2, inplace=True)
        ]

    generator = nn.Sequential(
        *up(NZ, NGF * 8, first=True), *up(NGF * 8, NGF * 4), *up(NGF * 4, NGF * 2), *up(NGF * 2, NGF),
        nn.ConvTranspose2d(NGF, CHANNELS, 4, 2, 1, bias=False), nn.Tanh(),
    )  # fmt: skip
    discriminator = nn.Sequential(
        *down(CHANNELS, NDF, norm=False), *down(NDF, NDF * 2), *down(NDF * 2, NDF * 4), *down(NDF * 4, NDF * 8),
        nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
    )  # fmt: skip
    return generator, discriminator


class ReferenceStep:
    """D on a real batch (label 1) and a fake one (label 0), then G against D, BCELoss throughout."""

    def __init__(self, device: torch.device, batch: int, images: torch.Tensor) -> None:
        self.device, self.batch, self.images = device, batch, images
        self.generator, self.discriminator = (m.to(device) for m in reference_models())
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.loss = nn.BCELoss()
        self.cursor = 0

    def __call__(self) -> dict[str, float]:
        start = self.cursor % (len(self.images) - self.batch + 1)
        self.cursor += self.batch
        real = self.images[start : start + self.batch].to(self.device)
        ones = torch.ones(self.batch, device=self.device)
        zeros = torch.zeros(self.batch, device=self.device)

        self.discriminator.zero_grad()
        out_real = self.discriminator(real).view(-1)
        loss_real = self.loss(out_real, ones)
        loss_real.backward()
        fake = self.generator(torch.randn(self.batch, NZ, 1, 1, device=self.device))
        out_fake = self.discriminator(fake.detach()).view(-1)
        loss_fake = self.loss(out_fake, zeros)
        loss_fake.backward()
        self.opt_d.step()

        self.generator.zero_grad()
        out_g = self.discriminator(fake).view(-1)
        loss_g = self.loss(out_g, ones)
        loss_g.backward()
        self.opt_g.step()
        # The example prints these every step: five host syncs.
        return {
            "loss_d": (loss_real + loss_fake).item(),
            "loss_g": loss_g.item(),
            "d_x": out_real.mean().item(),
            "d_g_z1": out_fake.mean().item(),
            "d_g_z2": out_g.mean().item(),
        }


# --------------------------------------------------------------------------- gan_core's step


def gan_core_overrides(
    device: torch.device,
    batch: int,
    precision: str = "auto",
    memory_format: str = "auto",
    cuda_graphs: str = "auto",
    compile: bool = False,
    reuse_fakes: bool = True,
    compile_mode: str = "default",
) -> list[str]:
    """The config of gan_core's step that does the reference's work (bench/ray_gpu.py trains it too)."""
    return [
        "data.name=digits",  # replaced by the synthetic dataset; only the shape matters
        "model.name=dcgan", f"model.latent_dim={NZ}", f"model.g_width={NGF}", f"model.d_width={NDF}",
        "model.g_norm=batch", "model.d_norm=batch", "loss.name=nonsaturating",
        "optim.lr_g=2e-4", "optim.lr_d=2e-4", "optim.beta1=0.5",
        f"train.batch_size={batch}", "train.ema_decay=0", f"train.precision={precision}",
        f"train.memory_format={memory_format}", f"train.cuda_graphs={cuda_graphs}", f"train.compile={compile}",
        f"train.reuse_fakes={reuse_fakes}", f"train.compile_mode={compile_mode}",
        f"train.device={device.type}", "train.steps=1000000",
    ]  # fmt: skip


def synthetic_dataset(images: torch.Tensor) -> Dataset:
    return Dataset("synthetic-64", "images", images, images[:64])


class GanCoreStep:
    """`batch` is the global batch: with `world_size` workers each trains on batch / world_size."""

    def __init__(
        self,
        device: torch.device,
        batch: int,
        images: torch.Tensor,
        precision: str,
        memory_format: str = "auto",
        cuda_graphs: str = "auto",
        compile: bool = False,
        reuse_fakes: bool = True,
        compile_mode: str = "default",
        rank: int = 0,
        world_size: int = 1,
        wrap: Callable[[nn.Module], nn.Module] | None = None,
    ) -> None:
        config = load_config(
            None,
            gan_core_overrides(
                device, batch, precision, memory_format, cuda_graphs, compile, reuse_fakes, compile_mode
            ),
        )
        dataset = synthetic_dataset(images)
        self.state, phases = start_training(config, dataset, device, rank, world_size, wrap)
        self.run_step = step_runner(self.state, phases)
        self.meter = Meter()
        self.log_every = 100  # what `ganpipe train` does: metrics stay on the device between reads

    @property
    def graphed(self) -> bool:
        return isinstance(self.run_step, GraphedStep)

    def __call__(self) -> dict[str, float]:
        report = (self.state.step + 1) % self.log_every == 0
        self.run_step(self.meter, report)
        if report:
            self.meter.read()
        return {}


# --------------------------------------------------------------------------- timing


def with_tf32(allowed: bool, step: Callable[[], dict]) -> dict:
    """Run `step` with cuDNN's TF32 convolutions allowed or not (strict fp32), then restore."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = allowed
    try:
        return step()
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_step(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def time_steps(
    step, device: torch.device, warmup: int, steps: int, barrier: Callable[[], None] = lambda: None
) -> float:
    """Seconds for `steps` steps after `warmup` untimed ones; `barrier` lines up the processes of a DDP run."""
    for _ in range(warmup):
        step()
    synchronize(device)
    barrier()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    barrier()
    return time.perf_counter() - started


def synthetic_images(batch: int) -> torch.Tensor:
    """Uniform noise in [-1, 1], the same for a given batch in every process."""
    generator = torch.Generator().manual_seed(batch)
    return torch.rand(max(4 * batch, 1024), CHANNELS, SIZE, SIZE, generator=generator) * 2 - 1


def emit(line: dict) -> None:
    """One JSON line, numbers to 3 decimals."""
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in line.items()}), flush=True)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


# --------------------------------------------------------------------------- one process


def measure_one_process(name: str, device: torch.device, batch: int, args: argparse.Namespace) -> dict:
    """The JSON line of the reference or gan_core's step at `batch`, in this process."""
    images = synthetic_images(batch)
    torch.manual_seed(0)
    if name == "reference":
        step = ReferenceStep(device, batch, images)
        step = functools.partial(with_tf32, args.reference_tf32, step)
        flops = flops_per_step(step)
    else:
        # Counted on an eager twin: the FLOPs are the same, and counting (a dispatch mode) must not
        # meet the compiler or the graph capture of the step that is timed.
        reuse = not args.fresh_fakes
        flops = flops_per_step(
            GanCoreStep(device, batch, images, args.precision, cuda_graphs="never", reuse_fakes=reuse)
        )
        torch.manual_seed(0)
        step = GanCoreStep(
            device, batch, images, args.precision, args.memory_format, cuda_graphs=args.cuda_graphs,
            compile=args.compile, reuse_fakes=reuse, compile_mode=args.compile_mode,
        )  # fmt: skip
        step.log_every = getattr(args, "log_every", step.log_every)  # bench/ray_gpu.py's smoke run reports often
    started = time.perf_counter()
    seconds = time_steps(step, device, args.warmup, args.steps)
    warmup_s = time.perf_counter() - started - seconds  # the first steps' one-off costs: compilation, capture
    line = {
        "impl": name,
        "device": device_name(device),
        **({"tf32": args.reference_tf32} if name == "reference" else {}),
        "torch": torch.__version__,
        "batch": batch,
        "steps": args.steps,
        "images_per_s": args.steps * batch / seconds,
        "gflop_per_image": flops / batch / 1e9,
        "tflop_per_s": flops * args.steps / seconds / 1e12,
        "warmup_steps": args.warmup,
        "warmup_s": warmup_s,
    }
    if name == "gan_core":
        state = step.state
        line["memory_format"] = "channels_last" if state.memory_format == torch.channels_last else "contiguous"
        line["fused_adam"] = bool(state.opt_g.defaults.get("fused"))
        line["cuda_graph"] = step.graphed
        line["compiled"] = args.compile
        line["compile_mode"] = args.compile_mode if args.compile else None
        line["reuse_fakes"] = not args.fresh_fakes
        if getattr(args, "profile", 0):
            line["kernel_table"] = kernel_table(step, device, args.profile, line)
    del step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return line


# --------------------------------------------------------------------------- where the time goes

# Kinds of kernel, by name; the first that matches. Compiled code's fused kernels are Triton's.
KERNEL_KINDS = (
    ("triton (compiled, fused)", ("triton",)),
    ("layout change", ("nchwtonhwc", "nhwctonchw", "transpose")),
    ("batch norm", ("batch_norm", "batchnorm", "bn_fw", "bn_bw", "welford")),
    ("convolution / matmul", ("conv", "cudnn", "xmma", "gemm", "cutlass", "dgrad", "wgrad", "fprop", "winograd")),
    ("adam", ("adam", "multi_tensor")),
    ("elementwise", ("elementwise", "vectorized", "unrolled")),
    ("reduction", ("reduce",)),
    ("copy / cat / fill", ("copy", "cat", "memcpy", "memset", "fill")),
)
TOP_KERNELS = 15


def kernel_kind(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, keys in KERNEL_KINDS if any(key in lowered for key in keys)), "other")


def kernel_table(step, device: torch.device, steps: int, timed: dict) -> dict:
    """Profile `steps` more steps of `step` as it runs (graph replays and compiled code included):
    the GPU kernels' time per step by kind and the top kernels (on CPU: the operators' own time)."""
    cuda = device.type == "cuda"
    totals, wall = profiled(step, device, steps)
    profiled_as = "as timed"
    if cuda and not totals and isinstance(getattr(step, "run_step", None), GraphedStep):
        # No kernel seen inside the graph's replays: the same step (same weights, same compiled
        # code) launched kernel by kernel instead; kernel times are the graph's, launch gaps not.
        meter = step.meter
        totals, wall = profiled(lambda: step.run_step.eager_step(meter, False), device, steps)
        profiled_as = "eager (no kernel was seen inside the graph replays)"
    busy = sum(us for _, us in totals.values())
    kinds: dict[str, float] = {}
    for name, (_, us) in totals.items():
        kinds[kernel_kind(name)] = kinds.get(kernel_kind(name), 0.0) + us
    ranked = sorted(totals.items(), key=lambda item: -item[1][1])[:TOP_KERNELS]
    step_s = timed["batch"] / timed["images_per_s"]  # a step's time when timed, without the profiler
    return {
        "impl": "kernel_table",
        "of": timed["impl"],
        "device": timed["device"],
        "batch": timed["batch"],
        "compiled": timed.get("compiled"),
        "compile_mode": timed.get("compile_mode"),
        "cuda_graph": timed.get("cuda_graph"),
        "profiled_steps": steps,
        "profiled_as": profiled_as,
        "what": "GPU kernels" if cuda else "CPU operators (self time)",
        "ms_per_step_timed": 1e3 * step_s,
        "ms_per_step_profiled": 1e3 * wall / steps,
        "busy_ms_per_step": busy / 1e3 / steps,
        "busy_share_of_timed_step": busy / 1e6 / steps / step_s,
        "kernels_per_step": sum(calls for calls, _ in totals.values()) / steps,
        "kinds_ms_per_step": {
            kind: round(us / 1e3 / steps, 4) for kind, us in sorted(kinds.items(), key=lambda item: -item[1])
        },
        "top": [
            {
                "name": name[:120],
                "kind": kernel_kind(name),
                "calls_per_step": round(calls / steps, 2),
                "us_per_step": round(us / steps, 1),
                "share": round(us / busy, 4) if busy else 0.0,
            }
            for name, (calls, us) in ranked
        ],
    }


def profiled(step: Callable[[], object], device: torch.device, steps: int) -> tuple[dict[str, list[float]], float]:
    """{name: [calls, microseconds]} of the GPU kernels (on CPU: operators' self time) of `steps`
    calls of `step`, and their wall-clock seconds."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        wall = time.perf_counter() - started
    totals: dict[str, list[float]] = {}
    if cuda:
        for event in prof.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                entry = totals.setdefault(event.name, [0, 0.0])
                entry[0] += 1
                entry[1] += event.time_range.elapsed_us()
    else:
        for event in prof.key_averages():
            if event.self_cpu_time_total > 0:
                totals[event.key] = [event.count, float(event.self_cpu_time_total)]
    return totals, wall


def print_kernel_table(table: dict) -> None:
    """The table for a reader, each line starting with '#' (the JSON line follows it)."""
    print(
        f"# {table['what']}, gan_core at batch {table['batch']} (compiled: {table['compiled']}, "
        f"graph: {table['cuda_graph']}; profiled {table['profiled_as']}): {table['busy_ms_per_step']:.3f} ms "
        f"busy per step of {table['ms_per_step_timed']:.3f} ms timed ({table['kernels_per_step']:.0f} per step)"
    )
    for kind, ms in table["kinds_ms_per_step"].items():
        print(f"#   {kind:<26} {ms:9.4f} ms/step  {ms / max(table['busy_ms_per_step'], 1e-12):6.1%}")
    print(f"#   {'us/step':>9} {'share':>6} {'calls':>5}  kernel")
    for row in table["top"]:
        print(f"#   {row['us_per_step']:9.1f} {row['share']:6.1%} {row['calls_per_step']:5.1f}  {row['name'][:100]}")


# --------------------------------------------------------------------------- several processes (DDP)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ddp_worker(rank: int, world_size: int, port: int, batch: int, args: argparse.Namespace, results) -> None:
    """One DDP process: gan_core's step on `batch` samples of a global batch of world_size x batch."""
    cuda = args.device_type == "cuda"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        images = synthetic_images(batch * world_size)
        step = GanCoreStep(
            device, batch * world_size, images, args.precision, args.memory_format, compile=args.compile,
            reuse_fakes=not args.fresh_fakes, compile_mode=args.compile_mode, rank=rank, world_size=world_size,
            wrap=lambda module: ddp(module, device),
        )  # fmt: skip
        seconds = time_steps(step, device, args.warmup, args.steps, barrier=dist.barrier)
        if rank == 0:
            results.put(seconds)
    finally:
        dist.destroy_process_group()


def measure_ddp(device: torch.device, batch: int, args: argparse.Namespace, one_process: dict) -> dict:
    """The JSON line of gan_core's step under DDP in `args.world_size` processes, `batch` per process."""
    world_size = args.world_size
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(ddp_worker, args=(world_size, free_port(), batch, args, results), nprocs=world_size, join=True)
    seconds = results.get()
    rate = args.steps * batch * world_size / seconds
    return {
        "impl": "gan_core_ddp",
        "device": device_name(device),
        "torch": torch.__version__,
        "world_size": world_size,
        "batch_per_worker": batch,
        "global_batch": batch * world_size,
        "steps": args.steps,
        "images_per_s": rate,
        "images_per_s_per_worker": rate / world_size,
        "tflop_per_s": rate * one_process["gflop_per_image"] / 1e3,
        "scaling_efficiency": rate / (world_size * one_process["images_per_s"]),
    }


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default: 64 256 1024 (CUDA), 64 (CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 50 on CUDA, 5 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 10 / 2)")
    parser.add_argument("--precision", default="auto", help="gan_core's train.precision: auto, bf16 or fp32")
    parser.add_argument(
        "--memory-format",
        default="auto",
        choices=["auto", "channels_last", "contiguous"],
        help="gan_core's train.memory_format (auto: channels_last on CUDA and CPU)",
    )
    parser.add_argument(
        "--cuda-graphs",
        default="auto",
        choices=["auto", "always", "never"],
        help="gan_core's train.cuda_graphs (auto: one graph per step on CUDA where the run allows it)",
    )
    parser.add_argument("--compile", action="store_true", help="gan_core's train.compile: torch.compile G and D")
    parser.add_argument(
        "--compile-mode",
        default="default",
        choices=["default", "max-autotune"],
        help="gan_core's train.compile_mode (with --compile)",
    )
    parser.add_argument(
        "--fresh-fakes",
        action="store_true",
        help="gan_core's G update draws new fakes (train.reuse_fakes=false), not D's again as the reference does",
    )
    parser.add_argument(
        "--reference-tf32",
        action="store_true",
        help="let the reference's fp32 convolutions run as TF32 (torch's default; ~2.6x faster at batch 1024)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="STEPS",
        help="after timing, profile this many of gan_core's steps (torch.profiler): where the kernel time goes",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (in every process)")
    parser.add_argument(
        "--world-size", type=int, default=1, help="also run gan_core's step under DDP in this many processes"
    )
    args = parser.parse_args()
    if args.world_size < 1:
        parser.error("--world-size must be >= 1")
    device = resolve_device(args.device)
    if device.type == "cuda" and args.world_size > torch.cuda.device_count():
        parser.error(f"--world-size {args.world_size} needs as many GPUs; {torch.cuda.device_count()} visible")
    cuda = device.type == "cuda"
    args.device_type = device.type
    args.batches = args.batches or ([64, 256, 1024] if cuda else [64])
    args.steps = args.steps or (50 if cuda else 5)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 2)
    return args


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"

    for batch in args.batches:
        reference = measure_one_process("reference", device, batch, args)
        emit(reference)
        gan_core = measure_one_process("gan_core", device, batch, args)
        gan_core["ratio_to_reference"] = gan_core["images_per_s"] / reference["images_per_s"]
        table = gan_core.pop("kernel_table", None)
        emit(gan_core)
        if table is not None:
            print_kernel_table(table)
            emit(table)
        if args.world_size > 1:
            emit(measure_ddp(device, batch, args, gan_core))


if __name__ == "__main__":
    main()
