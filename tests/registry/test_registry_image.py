"""registry's registry_image module: which layers a transfer moved and how many bytes that is.

The engine's progress stream names layers by 12 hex digits: a pull by the compressed blob
digest (the manifest's), a push by the uncompressed diff id (the image's RootFS). Bytes moved
are the registry's sizes of the layers the engine transferred, each distinct layer once.
The messages below have the shapes Docker 20.10 sends (`docker pull`/`push` through
the API); the end-to-end transfer runs in molecule/workers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from role_code import ROLES, load

registry_image = load("registry/library/registry_image.py")
MODULE = ROLES / "registry/library/registry_image.py"

BLOB_A, BLOB_B, BLOB_C = ("sha256:" + c * 64 for c in "abc")
DIFF_A, DIFF_B, DIFF_C = ("sha256:" + c * 64 for c in "def")
MANIFEST = {
    "schemaVersion": 2,
    "config": {"digest": "sha256:" + "9" * 64, "size": 7000},
    "layers": [{"digest": BLOB_A, "size": 30_000_000}, {"digest": BLOB_B, "size": 900_000_000},
               {"digest": BLOB_C, "size": 250_000}],
}


def test_a_pull_counts_the_layers_it_downloaded() -> None:
    messages = [
        {"status": "Pulling from lakehouse-tick/airflow-worker", "id": "0123456789ab"},
        {"status": "Already exists", "id": "a" * 12},
        {"status": "Already exists", "id": "b" * 12},
        {"status": "Pulling fs layer", "id": "c" * 12},
        {"status": "Downloading", "progressDetail": {"current": 100, "total": 250000}, "id": "c" * 12},
        {"status": "Download complete", "id": "c" * 12},
        {"status": "Pull complete", "id": "c" * 12},
        {"status": "Digest: sha256:" + "1" * 64},
        {"status": "Status: Downloaded newer image for 10.0.0.5:5050/lakehouse-tick/airflow-worker:0123456789ab"},
    ]
    outcomes = registry_image.layer_outcomes(messages)
    assert outcomes == {"a" * 12: False, "b" * 12: False, "c" * 12: True}
    layers = [item["digest"] for item in MANIFEST["layers"]]
    assert registry_image.moved(MANIFEST, outcomes, layers) == (1, 250_000, 930_250_000)


def test_a_push_maps_diff_ids_to_the_manifest_sizes() -> None:
    messages = [
        {"status": "The push refers to repository [127.0.0.1:5050/lakehouse-tick/airflow-worker]"},
        {"status": "Preparing", "id": "d" * 12},
        {"status": "Preparing", "id": "e" * 12},
        {"status": "Preparing", "id": "f" * 12},
        {"status": "Layer already exists", "id": "d" * 12},
        {"status": "Mounted from lakehouse-tick/airflow", "id": "e" * 12},
        {"status": "Pushing", "progressDetail": {"current": 512, "total": 600000}, "id": "f" * 12},
        {"status": "Pushed", "id": "f" * 12},
        {"status": "0123456789ab: digest: sha256:" + "2" * 64 + " size: 1234"},
        {"aux": {"Tag": "0123456789ab", "Digest": "sha256:" + "2" * 64, "Size": 1234}},
    ]
    outcomes = registry_image.layer_outcomes(messages)
    assert registry_image.moved(MANIFEST, outcomes, [DIFF_A, DIFF_B, DIFF_C]) == (1, 250_000, 930_250_000)


def test_nothing_moved_when_every_layer_was_there() -> None:
    outcomes = registry_image.layer_outcomes([{"status": "Already exists", "id": c * 12} for c in "abc"])
    assert registry_image.moved(MANIFEST, outcomes, [i["digest"] for i in MANIFEST["layers"]]) == (0, 0, 930_250_000)


def test_a_layer_listed_twice_counts_once() -> None:
    manifest = {"layers": [{"digest": BLOB_A, "size": 10}, {"digest": BLOB_A, "size": 10}, {"digest": BLOB_B, "size": 5}]}
    outcomes = {"a" * 12: True, "b" * 12: True}
    assert registry_image.moved(manifest, outcomes, [BLOB_A, BLOB_A, BLOB_B]) == (2, 15, 15)


def test_an_error_in_the_stream_stops_the_delivery() -> None:
    messages = [{"status": "Pulling fs layer", "id": "c" * 12},
                {"errorDetail": {"message": "http: server gave HTTP response to HTTPS client"},
                 "error": "http: server gave HTTP response to HTTPS client"}]
    with pytest.raises(registry_image.DeliveryError, match="HTTP response to HTTPS client"):
        registry_image.layer_outcomes(messages)


def test_a_manifest_and_an_image_that_disagree_are_refused() -> None:
    with pytest.raises(registry_image.DeliveryError, match="manifest has 3 layers but the image 2"):
        registry_image.moved(MANIFEST, {}, [DIFF_A, DIFF_B])


@pytest.mark.parametrize(("reference", "expected"), [
    ("lakehouse-tick/airflow-worker:0123456789ab", ("lakehouse-tick/airflow-worker", "0123456789ab")),
    ("debian:bookworm-slim", ("debian", "bookworm-slim")),
    ("lt-hosts/airflow-worker-onepkg:abc", ("lt-hosts/airflow-worker-onepkg", "abc")),
])
def test_local_references_split(reference: str, expected: tuple[str, str]) -> None:
    assert registry_image.split_reference(reference) == expected


@pytest.mark.parametrize(("reference", "message"), [
    ("lakehouse-tick/airflow-worker", "not a local image reference"),
    ("lakehouse-tick/airflow-worker@sha256:" + "a" * 64, "not a local image reference"),
    ("10.0.0.5:5050/lakehouse-tick/airflow-worker:abc", "not a local image reference"),
    ("registry.example.org/lakehouse-tick/airflow-worker:abc", "names a registry host"),
    ("localhost/x:abc", "names a registry host"),
    ("Upper/Case:abc", "not a local image reference"),
])
def test_references_with_a_registry_or_no_tag_are_refused(reference: str, message: str) -> None:
    with pytest.raises(registry_image.DeliveryError, match=message):
        registry_image.split_reference(reference)


def test_received_bytes_leave_out_loopback_and_dockers_bridges() -> None:
    text = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 5000      10    0    0    0     0          0         0     5000      10    0    0    0     0       0          0
  eth0: 1234567   900    0    0    0     0          0         0    45678     300    0    0    0     0       0          0
docker0: 777      3    0    0    0     0          0         0      888       4    0    0    0     0       0          0
br-0a1b2c3d4e5f: 99   1    0    0    0     0          0         0       99       1    0    0    0     0       0          0
vethab12cd: 55      1    0    0    0     0          0         0       55       1    0    0    0     0       0          0
"""
    assert registry_image.received_bytes(text) == 1234567


def test_the_module_refuses_a_tcp_engine_socket() -> None:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"registry-image-args-{os.getpid()}.json"
    args = {"state": "pulled", "images": ["lakehouse-tick/airflow-worker:abc"], "registry": "127.0.0.1:1",
            "docker_host": "tcp://10.0.0.1:2375"}
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    try:
        proc = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True, text=True, check=False)
    finally:
        path.unlink()
    result = json.loads(proc.stdout)
    assert result["failed"]
    assert "docker_host must be a unix:// socket URL" in result["msg"]


def test_a_registry_that_does_not_answer_is_named() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    with pytest.raises(registry_image.DeliveryError, match="registry 127.0.0.1:1 does not answer"):
        registry_image.fetch_manifest("http", "127.0.0.1:1", "lakehouse-tick/airflow-worker", "abc", 5)


def _engine_answers() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(3)
            conn.connect("/var/run/docker.sock")
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return conn.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


@pytest.mark.skipif(not _engine_answers(), reason="no Docker engine answers on /var/run/docker.sock")
def test_the_engine_client_reads_images_and_misses() -> None:
    # Read-only calls against the real engine: the base image every converged host holds.
    engine = registry_image.Engine("", 30)
    status, images = engine.call("GET", "/images/json")
    assert status == 200 and isinstance(images, list)
    if not images:
        pytest.skip("the engine holds no image")
    ref = next(tag for image in images for tag in image.get("RepoTags") or [] if tag != "<none>:<none>")
    image = engine.image(ref)
    assert image["Id"].startswith("sha256:") and image["RootFS"]["Layers"]
    assert engine.image("lt-hosts/does-not-exist:nope") is None
