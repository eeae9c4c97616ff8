"""How long the evaluation's feature classifier takes to train, and how accurate it gets.

It trains once per dataset (then it is cached), before the first evaluation of a run on that
data. On MNIST-sized data that first evaluation waits for it.

    python bench/classifier.py                          # the MNIST-sized stand-in, default budget
    python bench/classifier.py --root DIR               # an MNIST-style IDX folder (real MNIST)
    python bench/classifier.py --images 100000 200000   # one run per image budget
    python bench/classifier.py --data digits            # scikit-learn's 8x8 digits
    python bench/classifier.py --data fashion-mnist     # Debian's Fashion-MNIST (or --root DIR)

Prints one JSON line per run: images seen, seconds, images/s and test accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from gan_core.config import EvalConfig
from gan_core.data.images import load_digits, load_fashion_mnist, load_idx_folder
from gan_core.metrics.classifier import BATCH, train_classifier, training_steps

sys.path.insert(0, str(Path(__file__).parent))
from mnist_standin import write_standin  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["standin", "digits", "fashion-mnist"], default="standin")
    parser.add_argument(
        "--root", default="", help="an IDX folder: real MNIST instead of the stand-in, or Fashion-MNIST's files"
    )
    parser.add_argument("--images", type=int, nargs="+", default=[EvalConfig.classifier_images])
    parser.add_argument("--epochs", type=int, default=EvalConfig.classifier_epochs)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        if args.data == "fashion-mnist":  # its folder, else Debian's
            dataset = load_fashion_mnist(args.root)
        elif args.root:
            dataset = load_idx_folder("mnist", args.root)
        elif args.data == "standin":
            dataset = load_idx_folder("mnist-standin", write_standin(Path(scratch), 60_000, 10_000))
        else:
            dataset = load_digits()
        for budget in args.images:
            start = time.perf_counter()
            _, accuracy = train_classifier(dataset, args.epochs, max_images=budget, log=print)
            seconds = time.perf_counter() - start
            seen = training_steps(len(dataset.train_x), args.epochs, budget) * BATCH
            record = {"data": dataset.name, "size": dataset.train_x.shape[-1], "train": len(dataset.train_x),
                      "images": seen, "epochs": round(seen / len(dataset.train_x), 2), "seconds": round(seconds, 1),
                      "images_per_s": round(seen / seconds), "test_accuracy": round(accuracy, 4),
                      "threads": args.threads}  # fmt: skip
            print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
