"""The backup module's core: the state digest, the manifest check, and compose parsing.

These decide whether a snapshot is taken and whether a restore is refused, so what they
accept and reject is pinned here. Runs in milliseconds, without Ansible or Docker.
"""
from __future__ import annotations

import hashlib
import json

import pytest
from role_code import load

backup = load("backup/library/backup_snapshot.py")

SHA_A = "a" * 64
SHA_B = "b" * 64


def manifest(**changes: object) -> dict:
    files = [{"path": "compose/airflow.yml", "sha256": SHA_A, "mode": "0644"},
             {"path": "requirements-airflow.txt", "sha256": SHA_B, "mode": "0644"}]
    links = [{"path": "dag-releases/current", "target": "r1"}]
    data = {"stamp": "20260101T120000Z", "created": "2026-01-01T12:00:00Z", "reason": "pre-change",
            "files": files, "links": links, "dag_release": "r1",
            "images": [{"ref": "lakehouse-tick/airflow-worker:0123abcd4567", "id": None, "labels": {}}],
            "digest": backup.digest(files, links)}
    data.update(changes)
    return data


def test_digest_is_the_documented_formula() -> None:
    files = [{"path": "b", "sha256": SHA_B}, {"path": "a", "sha256": SHA_A}]
    links = [{"path": "dag-releases/current", "target": "r1"}]
    text = "\n".join(sorted([f"F\ta\t{SHA_A}", f"F\tb\t{SHA_B}", "L\tdag-releases/current\tr1"]))
    assert backup.digest(files, links) == hashlib.sha256(text.encode()).hexdigest()


def test_digest_ignores_order_and_mode_but_not_content_or_link_target() -> None:
    files = [{"path": "a", "sha256": SHA_A, "mode": "0644"}, {"path": "b", "sha256": SHA_B, "mode": "0644"}]
    links = [{"path": "current", "target": "r1"}]
    base = backup.digest(files, links)
    assert backup.digest(list(reversed(files)), links) == base
    assert backup.digest([dict(files[0], mode="0755"), files[1]], links) == base
    assert backup.digest([dict(files[0], sha256=SHA_B), files[1]], links) != base
    assert backup.digest(files, [{"path": "current", "target": "r2"}]) != base
    assert backup.digest(files, []) != base


def test_a_good_manifest_is_accepted() -> None:
    result = backup.parse_manifest(json.dumps(manifest()))
    assert result["error"] == ""
    assert result["manifest"]["dag_release"] == "r1"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{broken", "does not parse as JSON"),
        ("", "does not parse as JSON"),
        ("[]", "does not hold a JSON object"),
        (json.dumps(manifest(files=3)), "lacks the list of objects 'files'"),
        (json.dumps(manifest(digest="x")), "digest that is not 64 hex digits"),
        (json.dumps(manifest(digest=SHA_A)), "does not match its own digest"),
        (json.dumps(manifest(dag_release=7)), "dag_release"),
        (json.dumps(manifest(images=[{"id": None}])), "image without a ref"),
    ],
)
def test_a_damaged_manifest_is_refused_with_a_reason(text: str, reason: str) -> None:
    result = backup.parse_manifest(text)
    assert reason in result["error"]
    assert result["manifest"] is None


def test_files_edited_behind_the_manifest_change_the_digest() -> None:
    data = manifest()
    data["files"][0]["sha256"] = SHA_B  # the digest field still names the old content
    assert "does not match its own digest" in backup.parse_manifest(json.dumps(data))["error"]


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "compose/../../x", "./compose/a.yml", ".", ""])
def test_paths_that_would_escape_the_project_are_refused(path: str) -> None:
    files = [{"path": path, "sha256": SHA_A, "mode": "0644"}]
    data = manifest(files=files, digest=backup.digest(files, manifest()["links"]))
    assert "unsafe file path" in backup.parse_manifest(json.dumps(data))["error"]


def test_a_link_path_outside_the_project_is_refused() -> None:
    links = [{"path": "../current", "target": "r1"}]
    data = manifest(links=links, digest=backup.digest(manifest()["files"], links))
    assert "unsafe link path" in backup.parse_manifest(json.dumps(data))["error"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [("r1", "dag-releases/r1"), ("./r1/", "dag-releases/r1"), ("../dag-releases/r2", "dag-releases/r2"),
     ("/srv/releases/r1", ""), ("../../elsewhere", ""), ("", "")],
)
def test_link_dir_resolves_relative_targets_inside_the_project(target: str, expected: str) -> None:
    assert backup.link_dir("dag-releases/current", target) == expected


def test_compose_images_reads_services_and_survives_bad_yaml() -> None:
    text = "services:\n  worker: {image: 'lt/w:1'}\n  sched: {image: 'lt/w:1'}\n  built: {build: .}\n  db: {image: pg:16}\n"
    assert backup.compose_images(text) == ["lt/w:1", "pg:16"]
    assert backup.compose_images("include:\n  - compose/a.yml\n") == []
    assert backup.compose_images("services: [: bad") == []
    assert backup.compose_images(None) == []
