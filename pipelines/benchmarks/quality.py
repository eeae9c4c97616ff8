"""The mode-collapse benchmarks of the GAN literature, measured beside their published rows.

`ganpipe bench quality` (and `bench/quality.py`) runs this: for each benchmark (the 2-D ring and
grid with the PacGAN protocol, optionally stacked digits) it trains one preset over several
seeds with gan_core alone, evaluates every run with the protocol, and prints each seed, the
mean ± standard error and the published rows, then one JSON line per run and per benchmark.
Samples are drawn as the preset samples everywhere else: for a preset with Jacobian truncation
(`model.truncation` < 1) the truncated draws, and then also the generator's untruncated draws
in their own columns, so that what truncation adds is never hidden.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gan_core.config import load_config, preset_path

# (row, modes, high-quality %, reverse KL); None where the paper does not report it.
Published = tuple[str, float, float | None, float | None]

PUBLISHED: dict[str, list[Published]] = {
    "ring": [
        ("GAN (PacGAN T1)", 6.3, 98.2, 0.45),
        ("PacGAN2 (PacGAN T1)", 7.9, 95.6, 0.07),
        ("PacGAN3 (PacGAN T1)", 7.8, 97.7, 0.10),
        ("VEEGAN", 8.0, 52.9, None),
        ("GDPP", 8.0, 71.7, None),
    ],
    "grid": [
        ("GAN (PacGAN T1)", 17.3, 94.8, 0.70),
        ("PacGAN3 (PacGAN T1)", 24.6, 94.2, 0.06),
        ("PacGAN4 (PacGAN T1)", 24.8, 93.6, 0.04),
        ("VEEGAN", 24.6, 40.0, None),
        ("GDPP", 24.8, 68.5, None),
    ],
    "stacked": [
        ("DCGAN (PacGAN T2)", 78.9, None, 4.50),
        ("PacDCGAN2 (PacGAN T2)", 1000.0, None, 0.06),
    ],
}


@dataclass(frozen=True)
class Target:
    modes: float
    high_quality: float | None  # fraction
    kl: float

    def met(self, run: dict[str, float]) -> bool:
        return (
            run["modes"] >= self.modes
            and (self.high_quality is None or run["high_quality"] >= self.high_quality)
            and run["kl"] <= self.kl
        )


@dataclass(frozen=True)
class Benchmark:
    name: str
    preset: str
    quick_steps: int
    target: Target
    seconds: float = 180.0  # the time budget per run (on 2 CPU cores)


BENCHMARKS = {
    "ring": Benchmark("ring", "ring-hq", 300, Target(8, 0.98, 0.02)),
    "grid": Benchmark("grid", "grid-hq", 300, Target(25, 0.97, 0.02)),
    "stacked": Benchmark("stacked", "stacked-digits", 100, Target(1000, None, 0.05), seconds=float("inf")),
}

# The ablation ladder: a plain GAN with the preset's network, steps and base learning rate,
# then the preset's techniques added one at a time, cumulatively, so the last rung is the
# preset itself. Each technique is named with the overrides that take it out again.
Technique = tuple[str, list[str]]
_TECHNIQUES: list[Technique] = [
    ("R1", ["loss.r1_weight=0"]),
    ("EMA generator", ["train.ema_decay=0"]),
    ("2-d latent", ["model.latent_dim=64"]),
    ("least-squares loss", ["loss.name=nonsaturating"]),
    ("lr decay", ["optim.lr_schedule=constant"]),
    ("Jacobian truncation (keep 90%)", ["model.truncation=1"]),
]
# Stacked digits: the PacDCGAN2 as it was before these three changes took its KL from ~0.2 to ~0.1.
_STACKED_TECHNIQUES: list[Technique] = [
    ("D twice as wide (d_width 128)", ["model.d_width=64"]),
    ("batches of 256", ["train.batch_size=64"]),
    ("learning rates doubled", ["optim.lr_g=2e-4", "optim.lr_d=4e-4"]),
    ("twice the steps (18000)", ["train.steps=9000"]),
]


def ladder(techniques: list[Technique], base: str = "GAN (non-saturating, 64-d latent)") -> list[tuple[str, list[str]]]:
    """[(label, overrides)]: rung i has the first i techniques, every later one taken out."""
    rungs = []
    for i in range(len(techniques) + 1):
        removed = [override for _, overrides in techniques[i:] for override in overrides]
        label = base if i == 0 else f"+ {techniques[i - 1][0]}"
        rungs.append((label + (" = the preset" if i == len(techniques) else ""), removed))
    return rungs


ABLATIONS: dict[str, list[tuple[str, list[str]]]] = {
    "ring-hq": ladder(_TECHNIQUES),
    "grid-hq": [*ladder(_TECHNIQUES), ("the preset with PacGAN2 (pack 2)", ["model.pack=2"])],
    "stacked-digits": ladder(_STACKED_TECHNIQUES, base="PacDCGAN2, D width 64, batch 64"),
}


@dataclass
class Run:
    bench: str
    preset: str
    seed: int
    steps: int
    threads: int
    wall_s: float
    values: dict[str, float]
    label: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        row = {"bench": self.bench, "preset": self.preset, "label": self.label, "seed": self.seed}
        row.update(steps=self.steps, threads=self.threads, wall_s=round(self.wall_s, 1))
        row.update({k: round(v, 5) for k, v in self.values.items()})
        return row


def train_and_evaluate(
    bench: Benchmark,
    seed: int,
    steps: int | None,
    overrides: Sequence[str],
    threads: int,
    cache_dir: str | None,
    picture: str | None = None,
) -> Run:
    """One seed: gan_core's loop, then the full evaluation protocol on the (EMA) generator;
    with `picture` (a .png path), its samples there (truncated beside untruncated)."""
    # Here, not at the top: `ganpipe --help` reads BENCHMARKS from this module, without torch.
    import torch

    from gan_core.data import load_dataset
    from gan_core.metrics import Evaluator
    from gan_core.models.truncation import truncates, untruncated
    from gan_core.outputs.progress import ProgressPrinter
    from gan_core.training import fit

    torch.set_num_threads(threads)
    base = [f"train.seed={seed}"] + ([f"train.steps={steps}"] if steps else [])
    config = load_config(preset_path(bench.preset), [*base, *overrides])
    # No checkpoints or sample grids; a progress line every tenth of the run (reading the
    # metrics changes nothing in training), as a stacked-digits run takes an hour on a CPU core.
    total = config.train.steps
    quiet = [f"train.{key}={total}" for key in ("checkpoint_every", "sample_every")]
    config = load_config(None, [*quiet, f"train.log_every={max(1, total // 10)}"], base=config.to_dict())
    data = load_dataset(config.data.name, config.data.root, config.data.n_train, config.data.seed)
    evaluator = Evaluator(data, config.eval, cache_dir=cache_dir)
    started = time.perf_counter()
    state = fit(config, data, hooks=ProgressPrinter(prefix=f"{bench.name} {bench.preset} seed {seed}: "))
    wall = time.perf_counter() - started
    values = _protocol_values(bench, evaluator.evaluate(state.sampler))
    if truncates(state.sampler):  # also the generator's own draws, so that truncation's share shows
        with untruncated(state.sampler):
            plain = _protocol_values(bench, evaluator.evaluate(state.sampler))
        values.update({f"{key}_untruncated": value for key, value in plain.items() if "real" not in key})
    if picture:
        save_samples_picture(state.sampler, data, config.eval.seed, f"{bench.preset} seed {seed}", picture)
    return Run(bench.name, bench.preset, seed, config.train.steps, threads, wall, values)


def save_samples_picture(generator, dataset, seed: int, title: str, path: str) -> None:
    """The generator's samples as the protocol draws them; for a truncating generator, beside
    its untruncated draws from the same seed."""
    from PIL import Image  # here, not at the top: keeps `ganpipe --help` light

    from gan_core.models.truncation import truncates, untruncated
    from gan_core.outputs import sample_picture

    pictures = [sample_picture(generator, dataset, seed, title + (", truncated" if truncates(generator) else ""))]
    if truncates(generator):
        with untruncated(generator):
            pictures.append(sample_picture(generator, dataset, seed, title + ", untruncated"))
    canvas = Image.new("RGB", (sum(p.width for p in pictures), max(p.height for p in pictures)), "white")
    for i, image in enumerate(pictures):
        canvas.paste(image, (sum(p.width for p in pictures[:i]), 0))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def _protocol_values(bench: Benchmark, report: dict[str, dict[str, float]]) -> dict[str, float]:
    if bench.name == "stacked":
        values = {"modes": report["stacked_modes"]["value"], "kl": report["stacked_kl"]["value"]}
        values.update(real_modes=report["stacked_modes"]["real"], real_kl=report["stacked_kl"]["real"])
        return values
    return {
        "modes": report["modes"]["value"],
        "high_quality": report["high_quality"]["value"],
        "kl": report["reverse_kl"]["value"],
    }


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def summarise(bench: Benchmark, runs: list[Run], label: str = "") -> dict[str, object]:
    summary: dict[str, object] = {"bench": bench.name, "preset": bench.preset, "label": label, "runs": len(runs)}
    for key in runs[0].values:
        mean, se = mean_se([r.values[key] for r in runs])
        summary[f"{key}_mean"], summary[f"{key}_se"] = round(mean, 5), round(se, 5)
    summary["wall_s_max"] = round(max(r.wall_s for r in runs), 1)
    summary["threads"] = runs[0].threads
    summary["target_met_every_seed"] = all(bench.target.met(r.values) for r in runs)
    return summary


def _cell(mean: float | None, se: float | None = None, digits: int = 2, scale: float = 1.0) -> str:
    if mean is None:
        return "—"
    text = f"{mean * scale:.{digits}f}"
    if se is not None and se == se:
        text += f" ± {se * scale:.{digits}f}"
    return text


# (header, key of Run.values, digits, scale) of the metric columns, in order.
Column = tuple[str, str, int, float]


def _columns(bench: Benchmark, groups: list[tuple[str, list[Run]]]) -> list[Column]:
    stacked = bench.name == "stacked"
    columns: list[Column] = [("modes", "modes", 0 if stacked else 1, 1.0)]
    if not stacked:
        columns.append(("high-quality %", "high_quality", 1, 100.0))
    columns.append(("reverse KL", "kl", 3, 1.0))
    if any("kl_untruncated" in r.values for _, runs in groups for r in runs):  # a truncating preset
        columns.append(("modes untruncated", "modes_untruncated", 0 if stacked else 1, 1.0))
        if not stacked:
            columns.append(("high-quality % untruncated", "high_quality_untruncated", 1, 100.0))
        columns.append(("KL untruncated", "kl_untruncated", 3, 1.0))
    return columns


def table(bench: Benchmark, groups: list[tuple[str, list[Run]]], per_seed: bool = True) -> str:
    """Markdown: (per-seed rows), mean ± s.e. per group, then the published rows."""
    columns = _columns(bench, groups)
    head = "| " + " | ".join(["run", *(c[0] for c in columns), "wall s"]) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 2)]
    row = lambda cells: "| " + " | ".join(cells) + " |"  # noqa: E731
    for label, runs in groups:
        if per_seed:
            for r in runs:
                cells = [_cell(r.values.get(key), digits=d, scale=scale) for _, key, d, scale in columns]
                lines.append(row([f"{label} seed {r.seed}", *cells, f"{r.wall_s:.0f}"]))
        cells = []
        for _, key, digits, scale in columns:
            values = [r.values[key] for r in runs if key in r.values]
            cells.append(_cell(*mean_se(values), digits=digits, scale=scale) if values else "—")
        lines.append(row([f"**{label}** ({len(runs)} seeds)", *cells, f"≤ {max(r.wall_s for r in runs):.0f}"]))
    for name, modes, hq, kl in PUBLISHED[bench.name]:
        published = {"modes": modes, "high_quality": hq, "kl": kl}
        cells = [_cell(published.get(key), digits=max(d, 1) if key == "modes" else 2 if key == "kl" else d)
                 for _, key, d, _ in columns]  # fmt: skip
        lines.append(row([f"{name}, published", *cells, ""]))
    return "\n".join(lines)


def run_benchmark(
    bench: Benchmark,
    seeds: Sequence[int],
    steps: int | None,
    overrides: Sequence[str],
    threads: int,
    cache_dir: str | None,
    label: str,
    log: Callable[[str], None],
    jobs: int = 1,
    pictures: str | None = None,
) -> list[Run]:
    """Every seed, `jobs` at a time (separate processes: one core each is what these small nets use);
    with `pictures` (a folder), one picture of samples per run there."""
    args = [
        (bench, seed, steps, tuple(overrides), threads, cache_dir, _picture_path(pictures, bench, label, seed))
        for seed in seeds
    ]
    if jobs > 1 and len(seeds) > 1:
        context = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
        with ProcessPoolExecutor(min(jobs, len(seeds)), mp_context=context) as pool:
            pending = [pool.submit(train_and_evaluate, *a) for a in args]
            runs = [_logged(future.result(), label, log) for future in pending]
    else:
        runs = [_logged(train_and_evaluate(*a), label, log) for a in args]
    return runs


def _picture_path(folder: str | None, bench: Benchmark, label: str, seed: int) -> str | None:
    if not folder:
        return None
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or bench.preset
    return str(Path(folder) / f"{bench.name}-{slug}-seed{seed}.png")


def _logged(run: Run, label: str, log: Callable[[str], None]) -> Run:
    run.label = label
    values = " ".join(f"{k}={v:.4g}" for k, v in run.values.items())
    log(f"{run.bench} [{label}] seed {run.seed}: {values} ({run.wall_s:.0f} s, {run.threads} thread(s))")
    return run


@dataclass(frozen=True)
class QualityOptions:
    """What one `ganpipe bench quality` asks for; the defaults are the command's."""

    seeds: int = 5
    first_seed: int = 0
    steps: int | None = None
    benches: tuple[str, ...] = ()  # none: ring and grid, plus stacked with `stacked`
    preset: str | None = None
    overrides: tuple[str, ...] = ()
    stacked: bool = False
    stacked_seeds: int | None = None
    ablation: bool = False
    threads: int = 1
    jobs: int = 2
    quick: bool = False
    cache: str = "runs/.cache"
    jsonl: str | None = None
    pictures: str | None = None


def run(args: QualityOptions, log: Callable[[str], None] = print) -> int:
    names = args.benches or (["ring", "grid"] + (["stacked"] if args.stacked else []))
    lines: list[dict[str, object]] = []
    for name in names:
        bench = BENCHMARKS[name]
        if args.preset:
            _check_same_data(bench, args.preset, args.overrides)
            bench = Benchmark(bench.name, args.preset, bench.quick_steps, bench.target, bench.seconds)
        seeds = args.stacked_seeds if name == "stacked" and args.stacked_seeds else args.seeds
        steps = args.steps
        if args.quick:
            seeds, steps = min(seeds, 2), steps or bench.quick_steps
        seed_range = range(args.first_seed, args.first_seed + seeds)
        ladder = ABLATIONS.get(bench.preset, []) if args.ablation else []
        if args.ablation and not ladder:
            log(f"{name}: no ablation ladder for preset {bench.preset!r}; running the preset alone")
        groups = []
        for label, extra in ladder or [(bench.preset, [])]:
            runs = run_benchmark(
                bench,
                seed_range,
                steps,
                [*extra, *args.overrides],
                args.threads,
                args.cache,
                label,
                log,
                args.jobs,
                args.pictures,
            )
            groups.append((label, runs))
            lines += [r.as_json() for r in runs] + [summarise(bench, runs, label)]
        target = bench.target
        hq = f", high-quality >= {target.high_quality:.0%}" if target.high_quality is not None else ""
        print(f"\n## {name}: preset {bench.preset}, target {target.modes:g} modes{hq}, KL <= {target.kl:g}\n")
        print(table(bench, groups, per_seed=not args.ablation))
    print()
    for line in lines:
        print(_json_line(line))
    if args.jsonl:
        with open(args.jsonl, "a") as handle:
            handle.writelines(_json_line(line) + "\n" for line in lines)
    return 0


def _check_same_data(bench: Benchmark, preset: str, overrides: Sequence[str]) -> None:
    """A benchmark's metrics exist only for its own dataset (a digits preset on ring ended in KeyError)."""
    wanted = load_config(preset_path(bench.preset)).data.name
    given = load_config(preset_path(preset), overrides).data.name
    if given != wanted:
        raise ValueError(f"--preset {preset} trains on {given}; benchmark {bench.name} measures {wanted}")


def _json_line(line: dict[str, object]) -> str:
    """Strict JSON: a standard error of one seed is unknown, null rather than NaN (which JSON lacks)."""
    return json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in line.items()})
