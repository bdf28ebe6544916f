"""docker_host's content_image module: the content tag of an image and whether it exists.

The tag formula must stay what the images already carry (a changed formula would rebuild
every image of every converged host); the converge of the molecule scenarios reads real
images through it. Here: the formula, the inputs' handling and the module's own refusals,
run as Ansible runs it (a subprocess with its arguments file).
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from role_code import ROLES, load

content_image = load("docker_host/library/content_image.py")
MODULE = ROLES / "docker_host/library/content_image.py"
SOCKET = "/var/run/docker.sock"
DOCKERFILE_SHA = "b68b58aa7cc644c894cbc88433a68ecc849fae7ab3cf2f9f1e90dbd2238102ee"
ENTRYPOINT_SHA = "095aef8a9305e2afec7ab25e38d35243bfec496740b843888806660ea7db1366"


def engine_answers() -> bool:
    """Whether a Docker engine answers on the socket (on a fresh machine the socket can
    exist before the engine runs: the converge starts it)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(3)
            conn.connect(SOCKET)
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return conn.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


def run_module(args: dict, check: bool = False) -> dict:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"content-image-args-{os.getpid()}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check}}))
    try:
        proc = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True, text=True, check=False)
    finally:
        path.unlink()
    return json.loads(proc.stdout)


def test_the_tag_is_the_formula_the_images_carry() -> None:
    # base id, then the file digests in order, then key=value sorted by key, joined by the
    # two characters backslash-n (what the images' first tag template produced).
    text = "\\n".join(["sha256:base", "a" * 64, "b" * 64, "A=1", "Z=two"])
    expected = hashlib.sha256(text.encode()).hexdigest()[:12]
    assert content_image.content_tag("sha256:base", ["a" * 64, "b" * 64], {"Z": "two", "A": 1}) == expected


def test_a_known_image_keeps_its_tag() -> None:
    # lakehouse-tick/postgres as the earlier build_image tasks tagged it on a converged host
    # (the base image id and the sha256 of its Dockerfile and entrypoint.sh, read there).
    assert content_image.content_tag(
        "sha256:b67530d3d22425bd509b36797d143021c36390122120ae30b8b0ab5776fc539f",
        [DOCKERFILE_SHA, ENTRYPOINT_SHA], {}) == "e513e9d1925d"


def test_every_input_moves_the_tag() -> None:
    tag = content_image.content_tag("sha256:base", ["a" * 64, "b" * 64], {})
    assert content_image.content_tag("sha256:other", ["a" * 64, "b" * 64], {}) != tag
    assert content_image.content_tag("sha256:base", ["b" * 64, "a" * 64], {}) != tag
    assert content_image.content_tag("sha256:base", ["a" * 64, "b" * 64], {"X": "1"}) != tag
    assert content_image.content_tag("", ["a" * 64, "b" * 64], {}) != tag


def test_file_digest_reads_the_whole_file(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    (tmp_path / "wheel").write_bytes(data)
    assert content_image.file_sha256(tmp_path / "wheel", chunk=4096) == hashlib.sha256(data).hexdigest()


def test_only_a_unix_socket_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert content_image.socket_path("") == SOCKET
    assert content_image.socket_path("unix:///run/user/docker.sock") == "/run/user/docker.sock"
    with pytest.raises(ValueError, match="unix:// socket URL"):
        content_image.socket_path("tcp://10.0.0.1:2375")


def test_a_missing_input_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    result = run_module({"name": "lakehouse-tick/x", "dockerfile": str(tmp_path / "Dockerfile"),
                         "inputs": [str(tmp_path / "requirements.txt")], "base_image": "debian:bookworm-slim"})
    assert result["failed"] is True
    assert result["msg"] == f"Missing build input(s) for lakehouse-tick/x: {tmp_path / 'requirements.txt'}"


def test_check_mode_with_inputs_not_written_yet_is_to_be_built(tmp_path: Path) -> None:
    result = run_module({"name": "lakehouse-tick/x", "dockerfile": str(tmp_path / "Dockerfile"),
                         "base_image": "debian:bookworm-slim"}, check=True)
    assert result.get("failed") is not True
    assert (result["ref"], result["exists"], result["changed"]) == ("lakehouse-tick/x:to-be-built", False, False)
    assert result["missing"] == [str(tmp_path / "Dockerfile")]


def test_an_engine_that_does_not_answer_is_named(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    result = run_module({"name": "lakehouse-tick/x", "dockerfile": str(tmp_path / "Dockerfile"),
                         "base_image": "debian:bookworm-slim", "docker_host": f"unix://{tmp_path}/none.sock"})
    assert result["failed"] is True
    assert result["msg"].startswith("Could not read the Docker engine for lakehouse-tick/x:")


@pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers on this host (the converge reads it)")
def test_against_the_engine_an_absent_tag_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    result = run_module({"name": "lakehouse-tick/never-built", "dockerfile": str(tmp_path / "Dockerfile"),
                         "base_image": "lakehouse-tick/no-such-base:0"})
    assert result.get("failed") is not True, result
    assert result["exists"] is False and result["base_image_id"] == ""
    assert result["tag"] == content_image.content_tag("", [content_image.file_sha256(tmp_path / "Dockerfile")], {})


def test_a_pending_input_gives_to_be_built_in_check_mode(tmp_path: Path) -> None:
    # build_image passes pending=true when wheel_lock would resolve the lock again: the lock on
    # disk is stale, so its tag means nothing (and no engine is read for it).
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "requirements.lock").write_text("stale\n")
    args = {"name": "lakehouse-tick/x", "dockerfile": str(tmp_path / "Dockerfile"),
            "inputs": [str(tmp_path / "requirements.lock")], "base_image": "debian:bookworm-slim",
            "pending": True, "docker_host": "unix:///nonexistent.sock"}
    result = run_module(args, check=True)
    assert (result["ref"], result["tag"], result["exists"], result["missing"]) == \
        ("lakehouse-tick/x:to-be-built", "to-be-built", False, [])
    # Outside check mode the lock has been written by then: pending is ignored (here the
    # engine is read, and the made-up socket fails, which proves the tag was computed).
    assert "Could not read the Docker engine" in run_module(args)["msg"]
