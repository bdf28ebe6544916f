"""Filters of the backup role: the state digest and a manifest parser that never raises.

Both live in Python because Jinja has no try/except: a damaged manifest.json must come
back as an error message the tasks can show, not abort the play with a template error.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re

import yaml

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")


def backup_digest(files: list, links: list) -> str:
    """Identity of a state: SHA-256 over the sorted (path, sha256) and (path, target) lines.

    One line per file ``F\\t<path>\\t<sha256>`` and per symlink ``L\\t<path>\\t<target>``,
    sorted, joined with ``\\n``. Modes are not part of it (a restore re-applies them).
    """
    lines = [f"F\t{f['path']}\t{f['sha256']}" for f in files or []]
    lines += [f"L\t{link['path']}\t{link['target']}" for link in links or []]
    return hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()


def backup_safe_path(path: object) -> bool:
    """True for a relative path that stays inside the directory it is joined to."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
        return False
    norm = posixpath.normpath(path)
    return norm == path and norm not in (".", "..") and not norm.startswith("../")


def backup_link_dir(link: str, target: str) -> str:
    """Path (relative to the project) that the relative symlink ``link`` → ``target`` names.

    '' when the target is absolute or leads outside the project: such a release is not copied.
    """
    if not isinstance(target, str) or not target or target.startswith("/"):
        return ""
    path = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
    return path if backup_safe_path(path) else ""


def backup_compose_images(text: object) -> list:
    """Sorted image references under ``services.*.image`` of a compose file; [] if unreadable."""
    try:
        data = yaml.safe_load(text if isinstance(text, (str, bytes)) else "")
    except yaml.YAMLError:
        return []
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return []
    refs = {s.get("image") for s in services.values() if isinstance(s, dict)}
    return sorted(r for r in refs if isinstance(r, str) and r)


def _check(manifest: object) -> str:
    """Return why ``manifest`` is not a usable snapshot manifest, or '' when it is."""
    if not isinstance(manifest, dict):
        return "manifest.json does not hold a JSON object"
    for key in ("stamp", "created", "reason", "digest"):
        if not isinstance(manifest.get(key), str):
            return f"manifest.json lacks the string field {key!r}"
    if not _HEX64.match(manifest["digest"]):
        return "manifest.json has a digest that is not 64 hex digits"
    if manifest.get("dag_release") is not None and not isinstance(manifest["dag_release"], str):
        return "manifest.json has a dag_release that is neither a string nor null"
    for key in ("files", "links", "images"):
        if not isinstance(manifest.get(key), list) or not all(isinstance(i, dict) for i in manifest[key]):
            return f"manifest.json lacks the list of objects {key!r}"
    for item in manifest["files"]:
        if not backup_safe_path(item.get("path")):
            return f"manifest.json lists an unsafe file path: {item.get('path')!r}"
        if not isinstance(item.get("sha256"), str) or not _HEX64.match(item["sha256"]):
            return f"manifest.json has no valid sha256 for {item['path']}"
        if not isinstance(item.get("mode"), str) or not _MODE.match(item["mode"]):
            return f"manifest.json has no valid mode for {item['path']}"
    for item in manifest["links"]:
        if not backup_safe_path(item.get("path")):
            return f"manifest.json lists an unsafe link path: {item.get('path')!r}"
        if not isinstance(item.get("target"), str) or not item["target"]:
            return f"manifest.json has no target for the link {item['path']}"
    for item in manifest["images"]:
        if not isinstance(item.get("ref"), str) or not item["ref"]:
            return "manifest.json lists an image without a ref"
    if backup_digest(manifest["files"], manifest["links"]) != manifest["digest"]:
        return "manifest.json does not match its own digest (edited after it was written?)"
    return ""


def backup_manifest(text: object) -> dict:
    """Parse and check a manifest: ``{'manifest': dict|None, 'error': str}``; never raises."""
    try:
        manifest = json.loads(text if isinstance(text, (str, bytes)) else "")
    except ValueError as exc:
        return {"manifest": None, "error": f"manifest.json does not parse as JSON ({exc})"}
    error = _check(manifest)
    return {"manifest": None if error else manifest, "error": error}


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict:
        return {
            "backup_compose_images": backup_compose_images,
            "backup_digest": backup_digest,
            "backup_link_dir": backup_link_dir,
            "backup_manifest": backup_manifest,
            "backup_safe_path": backup_safe_path,
        }
