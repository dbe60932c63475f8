"""Ray job entry point for `emovid train`: trains on a GPU node when the cluster has one.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/train.py /shared/ferplus --out /shared/models/my_model.keras

Takes the same arguments as `emovid train`. Training runs as one Ray task on one node: it asks
for a GPU when the cluster has any, else for the CPUs of the largest node (a task cannot span
nodes, so the whole cluster's CPUs would never schedule); `--cpus N` asks for N instead.
`--smoke-test` trains one epoch on 64 images. The model file is written by the task: --out
must be on storage the training node and you both see.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emovid.cli import main as emovid_main  # noqa: E402


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--smoke-test", action="store_true", help="one epoch on 64 images")
    parser.add_argument("--cpus", type=int, help="CPUs for the training task (default: the largest node's)")
    args, rest = parser.parse_known_args(argv)
    if args.cpus is not None and args.cpus < 1:
        parser.error(f"--cpus: expected a whole number >= 1, got {args.cpus}")
    return args, rest


def largest_node_cpus(nodes: list[dict]) -> int:
    """CPUs of the biggest live node (``ray.nodes()`` entries): the most one task can get."""
    return max([int(n["Resources"].get("CPU", 0)) for n in nodes if n.get("Alive")] or [1]) or 1


def train_task(argv: list[str]) -> int:
    return emovid_main(["train", *argv])


def main(args: argparse.Namespace, rest: list[str]) -> int:
    import ray

    if args.smoke_test:
        rest = [*rest, "--epochs", "1", "--limit", "64"]
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    cpus = args.cpus or (1 if gpus else largest_node_cpus(ray.nodes()))
    remote = ray.remote(num_gpus=gpus, num_cpus=cpus, max_retries=0)(train_task)
    return ray.get(remote.remote(rest))


if __name__ == "__main__":
    import ray

    ray.init()
    sys.exit(main(*parse_args(sys.argv[1:])))
