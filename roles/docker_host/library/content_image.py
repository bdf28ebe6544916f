#!/usr/bin/python
"""The content tag of an image to build, and whether the engine holds it already.

One module run replaces five probe tasks per image (base image id, a checksum per input,
an existence check, the tag arithmetic, the image lookup): a warm converge reads five
images, and each task costs a fork and a module payload. The tag formula is the one the
images have always carried, so no existing image changes its tag.
"""

DOCUMENTATION = r"""
module: content_image
short_description: Content tag of an image from its inputs; whether the Docker engine has it
description:
  - The tag is the first 12 hex digits of the SHA-256 of the base image id, the SHA-256 of
    the Dockerfile and of each input file (in the given order), and each build argument as
    C(key=value) sorted by key, joined by the two characters C(\n). Same inputs, same tag, no build.
  - Reads the engine through its API socket; changes nothing (never reports changed).
  - A missing input fails, naming it; in check mode it gives the tag C(to-be-built) instead
    (a task before it would have written the file), and so does C(pending) (a task before it
    would have rewritten one, e.g. a lock to resolve again).
options:
  name: {description: Image name without tag., type: str, required: true}
  dockerfile: {description: Dockerfile on the target., type: path, required: true}
  inputs: {description: Other files whose content goes into the image., type: list, elements: path, default: []}
  buildargs: {description: Build arguments (part of the tag)., type: dict, default: {}}
  base_image: {description: Image the Dockerfile starts FROM; its id is part of the tag., type: str, required: true}
  pending: {description: In check mode, an input on disk is not what the run would write (tag C(to-be-built))., type: bool, default: false}
  docker_host:
    description: Engine socket (C(unix://) URL); default C(DOCKER_HOST) or C(unix:///var/run/docker.sock).
    type: str
    default: ""
author: lakehouse-tick MLOps
"""

RETURN = r"""
ref: {description: "C(name:tag), or C(name:to-be-built) in check mode with inputs missing.", type: str, returned: always}
tag: {description: The content tag., type: str, returned: always}
exists: {description: The engine holds an image with that reference., type: bool, returned: always}
base_image_id: {description: Id of the base image (empty when the engine lacks it)., type: str, returned: always}
missing: {description: Inputs that do not exist (check mode only)., type: list, returned: always}
"""

import hashlib
import http.client
import json
import os
import socket
import urllib.parse

from ansible.module_utils.basic import AnsibleModule

TO_BE_BUILT = "to-be-built"


def file_sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


# The parts are joined by a backslash and an "n" (two characters), not a newline: that is
# what the tag template these images were first tagged with produced, and keeping it keeps
# every existing tag (a new separator would rebuild every image on every host).
SEPARATOR = "\\n"


def content_tag(base_image_id, file_digests, buildargs):
    """12 hex digits over the base id, the files' digests and the sorted build arguments."""
    parts = [base_image_id or ""] + list(file_digests)
    parts += [f"{key}={buildargs[key]}" for key in sorted(buildargs)]
    return hashlib.sha256(SEPARATOR.join(parts).encode("utf-8")).hexdigest()[:12]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def socket_path(docker_host):
    url = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not url.startswith("unix://"):
        raise ValueError(f"docker_host must be a unix:// socket URL, got {url!r}")
    return url[len("unix://"):]


def image_id(path, reference):
    """The image's id, or '' when the engine has no image of that reference."""
    conn = _UnixConnection(path)
    try:
        conn.request("GET", f"/images/{urllib.parse.quote(reference, safe='')}/json")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status == 404:
        return ""
    if response.status != 200:
        raise RuntimeError(f"Docker engine answered {response.status} for image {reference}: {body[:200]!r}")
    return json.loads(body)["Id"]


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "dockerfile": {"type": "path", "required": True},
            "inputs": {"type": "list", "elements": "path", "default": []},
            "buildargs": {"type": "dict", "default": {}},
            "base_image": {"type": "str", "required": True},
            "docker_host": {"type": "str", "default": ""},
            "pending": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    files = [params["dockerfile"], *params["inputs"]]
    missing = [path for path in files if not os.path.isfile(path)]
    if missing and not module.check_mode:
        module.fail_json(msg=f"Missing build input(s) for {params['name']}: {', '.join(missing)}")
    if missing or (params["pending"] and module.check_mode):  # check mode: an earlier task would have written them
        module.exit_json(changed=False, ref=f"{params['name']}:{TO_BE_BUILT}", tag=TO_BE_BUILT, exists=False,
                         base_image_id="", missing=missing)
    try:
        engine = socket_path(params["docker_host"])
        base_id = image_id(engine, params["base_image"])
        tag = content_tag(base_id, [file_sha256(path) for path in files], params["buildargs"])
        exists = image_id(engine, f"{params['name']}:{tag}") != ""
    except (OSError, RuntimeError, ValueError) as exc:
        module.fail_json(msg=f"Could not read the Docker engine for {params['name']}: {exc}")
    module.exit_json(changed=False, ref=f"{params['name']}:{tag}", tag=tag, exists=exists,
                     base_image_id=base_id, missing=missing)


if __name__ == "__main__":
    main()
