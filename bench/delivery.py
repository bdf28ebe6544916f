#!/usr/bin/env python3
"""Print the bytes and time it takes to deliver two worker image tags to the worker hosts.

Runs against the hosts and the registry of the molecule `workers` scenario, which must be up:

    tests/molecule.sh converge -s workers        # hosts, engines, registry, first image
    .venv/bin/python bench/delivery.py           # the two newest worker tags that share layers
    .venv/bin/python bench/delivery.py --first lakehouse-tick/airflow-worker:aaa --second ...:bbb

Each host first forgets both tags (and their layers), so the first delivery is a cold one; the
second delivery of a tag that differs in one layer (e.g. a changed worker requirement: the venv
layer, while the PyTorch/TensorFlow layer is shared) should move only that layer. The figures
come from the registry role's module (registry sizes of the layers the engine transferred, and
the bytes each host's interface received); nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INVENTORIES = [REPO / "inventory/hosts.yml", REPO / "molecule/workers/inventory/hosts.yml"]
HOSTS = ["lt-hosts-worker-1", "lt-hosts-worker-2"]


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def layers(ref: str) -> list[str]:
    return json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref))


def pick_pair(prefix: str) -> tuple[str, str]:
    """The two tags (older first) whose layer lists share the most leading layers, newest pair on ties."""
    rows = [json.loads(line) for line in docker("image", "ls", "--format", "{{json .}}", prefix).splitlines()]
    refs = [f"{row['Repository']}:{row['Tag']}" for row in sorted(rows, key=lambda r: r["CreatedAt"])]
    best, best_shared = None, -1
    for i, older in enumerate(refs):
        for newer in refs[i + 1:]:
            a, b = layers(older), layers(newer)
            shared = next((n for n, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            if shared >= best_shared:
                best, best_shared = (older, newer), shared
    if best is None:
        sys.exit(f"need two {prefix} tags on this host; name them with --first and --second")
    return best


def module(hosts: str, state: str, image: str, registry: str) -> dict:
    """Run the registry role's delivery module on the hosts; {host: result}."""
    args = json.dumps({"state": state, "images": [image], "registry": registry})
    cmd = [str(REPO / ".venv/bin/ansible"), hosts, "-M", str(REPO / "roles/registry/library"),
           "-m", "registry_image", "-a", args]
    for inventory in INVENTORIES:
        cmd += ["-i", str(inventory)]
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "json"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, check=False)
    try:
        plays = json.loads(proc.stdout)["plays"]
    except (ValueError, KeyError):
        sys.exit(f"ansible failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    results = plays[0]["tasks"][0]["hosts"]
    failed = {host: r.get("msg") for host, r in results.items() if r.get("failed")}
    if failed:
        sys.exit(f"{state} {image} failed: {failed}")
    return {host: r["images"][0] for host, r in results.items()}


def forget(host: str, refs: list[str]) -> None:
    """Remove the tags and every image layer they brought from the host's own engine."""
    for ref in refs:
        subprocess.run(["docker", "exec", host, "docker", "image", "rm", "-f", ref], capture_output=True, check=False)
    subprocess.run(["docker", "exec", host, "docker", "image", "prune", "-af"], capture_output=True, check=True)


def show(step: str, host: str, result: dict) -> None:
    print(f"{step:<22} {host:<20} {result['layers_moved']:>2}/{result['layers']:<2} layers "
          f"{result['bytes_moved'] / 1e6:>9.1f} MB moved of {result['bytes_image'] / 1e6:>8.1f} MB"
          f"  rx {result['bytes_received'] / 1e6:>9.1f} MB  {result['seconds']:>6.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--first", help="image delivered first (cold)")
    parser.add_argument("--second", help="image delivered second (shares layers with the first)")
    parser.add_argument("--prefix", default="lakehouse-tick/airflow-worker")
    parser.add_argument("--push-registry", default="127.0.0.1:15050")
    parser.add_argument("--pull-registry", default="10.213.0.1:15050")
    args = parser.parse_args()
    first, second = (args.first, args.second) if args.first and args.second else pick_pair(args.prefix)
    a, b = layers(first), layers(second)
    print(f"first  {first} ({len(a)} layers)\nsecond {second} ({len(b)} layers, "
          f"{len([x for x in b if x not in a])} not in the first)\n")
    for host in HOSTS:
        forget(host, [first, second])
    for step, image in (("first delivery", first), ("second delivery", second)):
        for host, result in module("localhost", "pushed", image, args.push_registry).items():
            show(f"{step}: push", host, result)
        for host, result in sorted(module("airflow_workers", "pulled", image, args.pull_registry).items()):
            show(f"{step}: pull", host, result)


if __name__ == "__main__":
    main()
