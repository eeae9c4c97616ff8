"""Search spaces: YAML files mapping dotted config keys to distributions.

    optim.lr_g: {loguniform: [1.0e-4, 2.0e-3]}
    loss.r1_weight: {choice: [0.0, 0.1, 1.0]}
    train.d_steps: {randint: [1, 4]}        # upper bound exclusive
    model.pack: {grid: [1, 2]}              # every value, crossed with the samples

Keys are checked against the config before anything runs: an unknown key or a value the
config refuses is an error naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gan_core.config import ConfigError, ExperimentConfig, load_config
from gan_core.strict_yaml import load_yaml

DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint", "grid")


@dataclass(frozen=True)
class Dimension:
    key: str  # dotted config key
    kind: str  # one of DISTRIBUTIONS
    args: tuple[Any, ...]

    def candidates(self) -> list[Any]:
        """Values to validate against the config (the bounds, or every option)."""
        return list(self.args)


def shipped_spaces() -> list[str]:
    folder = resources.files("pipelines.tune.spaces")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def space_path(name_or_path: str) -> Path:
    if name_or_path in shipped_spaces():
        return Path(str(resources.files("pipelines.tune.spaces").joinpath(f"{name_or_path}.yaml")))
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"search space {name_or_path!r} is neither a file nor a shipped space ({', '.join(shipped_spaces())})"
        )
    return path


def load_space(name_or_path: str, base: ExperimentConfig) -> list[Dimension]:
    path = space_path(name_or_path)
    try:
        content = load_yaml(path.read_text())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"search space {path} is not valid YAML{where}: {error.problem or error}") from None
    if not isinstance(content, dict) or not content:  # an empty space ran one trial of the base config
        example = "optim.lr_g: {loguniform: [1.0e-4, 1.0e-3]}"
        raise ConfigError(f"search space {path} must map dotted keys to distributions, e.g. {example}")
    dimensions = []
    for key, spec in content.items():
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise ConfigError(
                f"search space {path}: {key} must be one of {{{': ..., '.join(DISTRIBUTIONS)}: ...}}, got {spec!r}"
            )
        kind, args = next(iter(spec.items()))
        args = tuple(_number(a) for a in (args if isinstance(args, list | tuple) else (args,)))
        if kind in ("uniform", "loguniform", "randint") and (len(args) != 2 or not args[0] < args[1]):
            raise ConfigError(f"search space {path}: {key}: {kind} needs [low, high] with low < high, got {list(args)}")
        if kind in ("choice", "grid") and not args:
            raise ConfigError(f"search space {path}: {key}: {kind} needs at least one value")
        dimension = Dimension(str(key), kind, args)
        for value in dimension.candidates():  # every value must be one the config accepts
            apply_overrides(base, {dimension.key: value if kind != "randint" else int(value)})
        dimensions.append(dimension)
    return dimensions


def _number(value: Any) -> Any:
    """YAML 1.1 reads 1e-4 (no dot) as a string: such a value becomes the number it spells."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            return value
    return value


def apply_overrides(base: ExperimentConfig, params: dict[str, Any]) -> ExperimentConfig:
    """`base` with dotted-key values applied (validated like any override)."""
    nested = base.to_dict()
    for key, value in params.items():
        if key.count(".") != 1:
            raise ConfigError(f"search key {key!r} must be section.key")
        section, name = key.split(".")
        if section not in nested or name not in nested[section]:
            raise ConfigError(f"search key {key!r} is not a config key")
        nested[section][name] = value.item() if hasattr(value, "item") else value
    return load_config(base=nested)


def to_tune(dimensions: list[Dimension]) -> dict[str, Any]:
    from ray import tune

    build = {
        "uniform": lambda a: tune.uniform(*a),
        "loguniform": lambda a: tune.loguniform(*a),
        "choice": lambda a: tune.choice(list(a)),
        "randint": lambda a: tune.randint(*a),
        "grid": lambda a: tune.grid_search(list(a)),
    }
    return {d.key: build[d.kind](d.args) for d in dimensions}


def pbt_mutations(dimensions: list[Dimension]) -> dict[str, Any]:
    """PBT may perturb only what can change mid-training: optimiser and loss weights. A choice is
    handed over as a plain list, the only form Ray's PBT resamples or steps along: any other
    mutation it multiplies by 0.8 or 1.2, which fails on strings (optim.lr_schedule) and takes
    numbers out of the listed set."""
    mutable = [
        d for d in dimensions if d.kind != "grid" and d.key.startswith(("optim.", "loss.")) and d.key != "loss.name"
    ]
    space = to_tune([d for d in mutable if d.kind != "choice"])
    space.update({d.key: list(d.args) for d in mutable if d.kind == "choice"})
    return space
