"""The images' hash locks are part of every snapshot, and a restore puts the old lock back.

docker_host writes each image's lock beside its Dockerfile (build/<image>/requirements.lock);
with the backup role's default paths and exclusions a snapshot must hold all three locks
(even though their wheelhouses, *.whl, are left out), so a rollback restores the lock that
built the image it brings back. The snapshot module runs for real on tmp_path.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml
from role_code import ROLES
from test_backup_snapshot import Engine, at, backup, config, manifest_of, write

DEFAULTS = yaml.safe_load((ROLES / "backup/defaults/main.yml").read_text())
LOCKS = ["build/airflow-worker/requirements.lock", "build/airflow/requirements.lock", "build/mlflow/requirements.lock"]


def lock(version: str) -> str:
    return (f"# requirements-sha256: {'r' * 64}\n"
            f"xgboost-cpu=={version} --hash=sha256:{'a' * 64}  # xgboost_cpu-{version}-py3-none-any.whl\n")


def make(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root, "docker-compose-mlops.yml", "include:\n  - compose/mlflow.yml\n")
    write(root, "compose/mlflow.yml", "services:\n  mlflow: {image: 'lt-test/label:a'}\n")
    write(root, "requirements-airflow.txt", "xgboost-cpu==3.2.0\n")
    for path in LOCKS:
        write(root, path.replace("requirements.lock", "Dockerfile"), "FROM debian:bookworm-slim\n")
        write(root, path, lock("3.2.0"))
    write(root, "build/airflow-worker/wheelhouse/xgboost_cpu-3.2.0-py3-none-any.whl", "wheel\n")
    os.makedirs(root / "dag-releases/r1")
    os.symlink("r1", root / "dag-releases/current")
    return root


def role_config(root: Path, **changes: object) -> dict:
    return config(root, paths=DEFAULTS["backup_paths"], exclude=DEFAULTS["backup_exclude"],
                  never_paths=DEFAULTS["backup_never_paths"], **changes)


def test_a_snapshot_holds_every_lock_and_a_restore_puts_the_old_one_back(tmp_path: Path) -> None:
    root = make(tmp_path)
    first = backup.take_snapshot(role_config(root), False, Engine(), at(0))["snapshot"]
    files = {f["path"] for f in manifest_of(root, first)["files"]}
    assert set(LOCKS) <= files
    assert not any(path.endswith(".whl") for path in files)
    # A re-resolved worker lock (new wheels) is a new state: a new snapshot, and the
    # restore of the first one brings the old lock back byte for byte.
    write(root, LOCKS[0], lock("3.3.0"))
    second = backup.take_snapshot(role_config(root), False, Engine(), at(60))
    assert second["created"] and second["snapshot"] != first
    result = backup.restore(role_config(root, restore_to=first), False, Engine(), at(120))
    assert result["restored"] and LOCKS[0] in result["files"]
    assert (root / LOCKS[0]).read_text() == lock("3.2.0")
