"""Mode-collapse benchmarks (PacGAN protocol) over several seeds, beside the published tables.

    python bench/quality.py                          # ring-hq and grid-hq, 5 seeds each
    python bench/quality.py --quick                  # smoke: 2 seeds, a few hundred steps
    python bench/quality.py --bench stacked --seeds 3
    python bench/quality.py --bench ring --ablation --seeds 3

The same as `ganpipe bench quality ...` (pipelines/benchmarks/quality.py). Prints, per
benchmark, a markdown table (each seed, mean ± standard error, the published rows), then one
JSON line per run and per benchmark.
"""

from __future__ import annotations

import sys

from pipelines.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", "quality", *sys.argv[1:]]))
