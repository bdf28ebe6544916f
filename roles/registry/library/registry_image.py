#!/usr/bin/python
"""Deliver content-tagged images through a registry: push on the build host, pull on the others.

Talks to the local Docker engine over its API socket and to the registry's HTTP API, with
the standard library only (a worker host needs nothing but python3). The image keeps its
local name on every host (``lakehouse-tick/airflow-worker:<hash>``), so compose files never
name the registry; the registry-qualified tag is used for the transfer only and removed.
"""

DOCUMENTATION = r"""
module: registry_image
short_description: Push images to a registry, or pull them from it under their local names
description:
  - C(state=pushed) (the host that built the images) - for each image, does nothing when the
    registry's manifest of that tag names the same image (its config digest is the local image
    id); else tags it C(<registry>/<name>:<tag>), pushes, and removes that extra tag.
  - C(state=pulled) (worker hosts) - does nothing when the engine holds C(<name>:<tag>) with
    the id the registry's manifest names; else pulls C(<registry>/<name>:<tag>), tags it
    C(<name>:<tag>) and removes the registry-qualified tag.
  - Reports per image the bytes moved: the registry's sizes (compressed) of the layers the
    engine actually transferred (C(Pushed) / downloaded, not C(Layer already exists) /
    C(Already exists)). A pull also reports the bytes the host's network interfaces received
    meanwhile (C(/proc/net/dev), loopback and Docker's own bridges left out).
  - Plain HTTP to the registry (the engine must list it in C(insecure-registries)), or HTTPS
    with C(scheme=https).
options:
  state: {description: C(pushed) or C(pulled)., type: str, required: true, choices: [pushed, pulled]}
  images: {description: "Local references C(name:tag) (no registry, no digest).", type: list, elements: str, required: true}
  registry: {description: "The registry as this host reaches it: C(host:port).", type: str, required: true}
  scheme: {description: Scheme of the registry's HTTP API., type: str, default: http, choices: [http, https]}
  docker_host: {description: "Engine socket (C(unix://) URL); default C(DOCKER_HOST) or the standard socket.", type: str, default: ""}
  timeout: {description: Seconds a single read from the engine or the registry may take., type: int, default: 900}
author: lakehouse-tick MLOps
"""

RETURN = r"""
images:
  description: One entry per image, in order.
  returned: always
  type: list
  elements: dict
  contains:
    image: {description: The local reference., type: str}
    id: {description: The image id (the manifest's config digest)., type: str}
    changed: {description: Whether this image was pushed or pulled., type: bool}
    layers: {description: Layers of the image., type: int}
    layers_moved: {description: Layers transferred., type: int}
    bytes_moved: {description: Registry (compressed) sizes of the layers transferred., type: int}
    bytes_image: {description: Registry (compressed) sizes of all its layers., type: int}
    bytes_received: {description: "Bytes received on the host's interfaces during the pull (-1 for a push).", type: int}
    seconds: {description: Wall time of the transfer., type: float}
bytes_moved: {description: Sum of bytes_moved over the images., type: int, returned: always}
"""

import base64
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible.module_utils.basic import AnsibleModule

MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
# Progress messages that mean the engine transferred the layer, and those that mean it did not.
MOVED = {"Pushed", "Pull complete", "Download complete"}
KEPT = {"Layer already exists", "Already exists"}
MOUNTED = re.compile(r"^Mounted from ")
# Interfaces whose traffic is not the host's own network: loopback, Docker's bridges and veths.
LOCAL_INTERFACE = re.compile(r"^(lo|docker[0-9]*|br-[0-9a-f]+|veth.*)$")
REFERENCE = re.compile(r"(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})")


class DeliveryError(Exception):
    pass


def split_reference(reference):
    """``name:tag`` → (name, tag); a registry host, a digest or a missing tag is refused."""
    match = REFERENCE.fullmatch(reference)
    if not match:
        raise DeliveryError(f"{reference!r} is not a local image reference name:tag (lower case name, no digest)")
    name = match.group("name")
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or first == "localhost"):
        raise DeliveryError(f"{reference!r} names a registry host ({first}); give the local name")
    return name, match.group("tag")


def short_id(digest):
    """The 12 hex digits the engine's progress messages name a layer by."""
    return digest.split(":", 1)[-1][:12]


def layer_outcomes(messages):
    """Per progress id: True when the engine transferred it, False when it was there already.

    Raises DeliveryError on an error message in the stream.
    """
    outcomes = {}
    for message in messages:
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise DeliveryError(detail.get("message") or message.get("error"))
        layer, status = message.get("id"), message.get("status", "")
        if not layer:
            continue
        if status in KEPT or MOUNTED.match(status):
            outcomes[layer] = False
        elif status in MOVED and outcomes.get(layer) is not False:
            outcomes[layer] = True
    return outcomes


def moved(manifest, outcomes, layer_ids):
    """(layers moved, bytes moved, bytes of the image): each distinct layer counted once.

    ``layer_ids`` are the ids the progress messages use for the manifest's layers, in order:
    the blob digests for a pull, the uncompressed diff ids for a push.
    """
    layers = manifest.get("layers", [])
    if len(layers) != len(layer_ids):
        raise DeliveryError(f"manifest has {len(layers)} layers but the image {len(layer_ids)}")
    seen, count, size = set(), 0, 0
    for layer, progress_id in zip(layers, layer_ids):
        if layer["digest"] in seen:
            continue
        seen.add(layer["digest"])
        if outcomes.get(short_id(progress_id)):
            count += 1
            size += int(layer["size"])
    total = sum(int(layer["size"]) for layer in {item["digest"]: item for item in layers}.values())
    return count, size, total


def received_bytes(text):
    """Bytes received on the host's own interfaces, from /proc/net/dev's text."""
    total = 0
    for line in text.splitlines()[2:]:
        if ":" not in line:
            continue
        name, counters = line.split(":", 1)
        if LOCAL_INTERFACE.match(name.strip()):
            continue
        total += int(counters.split()[0])
    return total


def _read_net_dev():
    with open("/proc/net/dev", encoding="ascii") as handle:
        return received_bytes(handle.read())


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Engine:
    def __init__(self, docker_host, timeout):
        url = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if not url.startswith("unix://"):
            raise DeliveryError(f"docker_host must be a unix:// socket URL, got {url!r}")
        self.path, self.timeout = url[len("unix://"):], timeout

    def call(self, method, path, query=None, headers=None, stream=False):
        """(status, body): the JSON body, or the list of stream messages."""
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request(method, url, headers=headers or {})
            response = conn.getresponse()
            if stream and response.status == 200:
                return response.status, [json.loads(line) for line in response if line.strip()]
            body = response.read()
        finally:
            conn.close()
        return response.status, (json.loads(body) if body.strip().startswith((b"{", b"[")) else body)

    def image(self, reference):
        status, body = self.call("GET", f"/images/{urllib.parse.quote(reference, safe='')}/json")
        if status == 404:
            return None
        if status != 200:
            raise DeliveryError(f"engine answered {status} for image {reference}: {body!r:.200}")
        return body

    def tag(self, source, name, tag):
        status, body = self.call("POST", f"/images/{urllib.parse.quote(source, safe='')}/tag",
                                 {"repo": name, "tag": tag})
        if status != 201:
            raise DeliveryError(f"engine could not tag {source} as {name}:{tag} ({status}): {body!r:.200}")

    def untag(self, reference):
        # noprune: only the name goes; the image stays under its local name.
        status, body = self.call("DELETE", f"/images/{urllib.parse.quote(reference, safe='')}", {"noprune": "1"})
        if status not in (200, 404):
            raise DeliveryError(f"engine could not remove the tag {reference} ({status}): {body!r:.200}")

    def stream(self, method, path, query, headers=None):
        status, body = self.call(method, path, query, headers, stream=True)
        if status != 200:
            raise DeliveryError(f"engine answered {status} to {path}: {body!r:.300}")
        return body


def fetch_manifest(scheme, registry, name, tag, timeout):
    """The image manifest of name:tag in the registry, or None when the registry has no such tag."""
    url = f"{scheme}://{registry}/v2/{name}/manifests/{urllib.parse.quote(tag)}"
    request = urllib.request.Request(url, headers={"Accept": MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise DeliveryError(f"registry {registry} answered {exc.code} for {name}:{tag}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"registry {registry} does not answer ({getattr(exc, 'reason', exc)})") from exc


def push(engine, params, reference, check_mode):
    name, tag = split_reference(reference)
    local = engine.image(reference)
    if local is None:
        raise DeliveryError(f"{reference} is not on this host; build it first")
    result = {"image": reference, "id": local["Id"], "changed": False, "layers": len(local["RootFS"]["Layers"]),
              "layers_moved": 0, "bytes_moved": 0, "bytes_image": 0, "bytes_received": -1, "seconds": 0.0}
    manifest = fetch_manifest(params["scheme"], params["registry"], name, tag, params["timeout"])
    if manifest is not None and manifest.get("config", {}).get("digest") == local["Id"]:
        result["bytes_image"] = sum(int(layer["size"]) for layer in manifest.get("layers", []))
        return result
    result["changed"] = True
    if check_mode:
        return result
    remote = f"{params['registry']}/{name}"
    started = time.monotonic()
    engine.tag(reference, remote, tag)
    try:
        auth = base64.urlsafe_b64encode(b"{}").decode()
        messages = engine.stream("POST", f"/images/{urllib.parse.quote(remote, safe='')}/push", {"tag": tag},
                                 {"X-Registry-Auth": auth})
    finally:
        engine.untag(f"{remote}:{tag}")
    result["seconds"] = round(time.monotonic() - started, 1)
    outcomes = layer_outcomes(messages)
    manifest = fetch_manifest(params["scheme"], params["registry"], name, tag, params["timeout"])
    if manifest is None or manifest.get("config", {}).get("digest") != local["Id"]:
        raise DeliveryError(f"the registry does not hold {reference} after the push")
    # A push names layers by their uncompressed diff id, in the manifest's order.
    result["layers_moved"], result["bytes_moved"], result["bytes_image"] = moved(
        manifest, outcomes, local["RootFS"]["Layers"])
    return result


def pull(engine, params, reference, check_mode):
    name, tag = split_reference(reference)
    manifest = fetch_manifest(params["scheme"], params["registry"], name, tag, params["timeout"])
    if manifest is None:
        raise DeliveryError(f"the registry {params['registry']} has no {reference}; push it from the build host first")
    image_id = manifest.get("config", {}).get("digest", "")
    layers = manifest.get("layers", [])
    result = {"image": reference, "id": image_id, "changed": False, "layers": len(layers), "layers_moved": 0,
              "bytes_moved": 0, "bytes_image": sum(int(item["size"]) for item in {i["digest"]: i for i in layers}.values()),
              "bytes_received": 0, "seconds": 0.0}
    local = engine.image(reference)
    if local is not None and local["Id"] == image_id:
        return result
    result["changed"] = True
    if check_mode:
        return result
    remote = f"{params['registry']}/{name}"
    started = time.monotonic()
    before = _read_net_dev()
    messages = engine.stream("POST", "/images/create", {"fromImage": remote, "tag": tag})
    result["bytes_received"] = _read_net_dev() - before
    result["seconds"] = round(time.monotonic() - started, 1)
    outcomes = layer_outcomes(messages)
    engine.tag(f"{remote}:{tag}", name, tag)
    engine.untag(f"{remote}:{tag}")
    pulled = engine.image(reference)
    if pulled is None or pulled["Id"] != image_id:
        raise DeliveryError(f"{reference} on this host is {pulled and pulled['Id']}, the registry's is {image_id}")
    # A pull names layers by their compressed blob digest: the manifest's own.
    result["layers_moved"], result["bytes_moved"], _ = moved(manifest, outcomes, [item["digest"] for item in layers])
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "required": True, "choices": ["pushed", "pulled"]},
            "images": {"type": "list", "elements": "str", "required": True},
            "registry": {"type": "str", "required": True},
            "scheme": {"type": "str", "default": "http", "choices": ["http", "https"]},
            "docker_host": {"type": "str", "default": ""},
            "timeout": {"type": "int", "default": 900},
        },
        supports_check_mode=True,
    )
    params = module.params
    step = push if params["state"] == "pushed" else pull
    results = []
    try:
        engine = Engine(params["docker_host"], params["timeout"])
        for reference in params["images"]:
            results.append(step(engine, params, reference, module.check_mode))
    except (DeliveryError, OSError, ValueError) as exc:
        module.fail_json(msg=f"Could not deliver {params['images']} ({params['state']}, {params['registry']}): {exc}",
                         images=results)
    module.exit_json(changed=any(item["changed"] for item in results), images=results,
                     bytes_moved=sum(item["bytes_moved"] for item in results))


if __name__ == "__main__":
    main()
