"""The engine's /etc/docker/daemon.json: what the role writes there and what a change needs.

The role owns only the keys it is given (``docker_host_daemon_options`` and, when the list
is not empty, ``insecure-registries``); every other key of an existing file is kept as the
host's administrator wrote it. A changed file needs a running engine to re-read it: some
keys are re-read on SIGHUP (``systemctl reload docker``), any other needs a restart, which
stops the containers of a host without ``live-restore``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# dockerd re-reads these on SIGHUP (Docker 20.10 documentation, "Configuration reload
# behavior"); every other key is read only when the daemon starts.
RELOADABLE = frozenset({
    "debug", "labels", "live-restore", "max-concurrent-downloads", "max-concurrent-uploads",
    "max-download-attempts", "default-runtime", "runtimes", "authorization-plugins",
    "allow-nondistributable-artifacts", "insecure-registries", "registry-mirrors",
    "shutdown-timeout", "features",
})
# Keys that would break the way the role starts the daemon: systemd's unit passes -H fd://,
# and dockerd refuses a setting given both as a flag and in the file.
REFUSED = {
    "hosts": "the systemd unit passes -H already (dockerd refuses a setting given twice)",
    "insecure-registries": "set docker_host_insecure_registries instead",
}
# host, host:port, [v6]:port; or a CIDR (dockerd accepts both in insecure-registries).
REGISTRY = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
KEY = re.compile(r"[a-z][a-z0-9-]*")


def _registry_problem(entry: object) -> str | None:
    text = str(entry)
    if "/" in text:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            return f"docker_host_insecure_registries: {text!r} is neither host[:port] nor a CIDR network."
        return None
    if not REGISTRY.fullmatch(text):
        return f"docker_host_insecure_registries: {text!r} is not host[:port] (no scheme, no path)."
    port = text.rsplit(":", 1)[1] if re.search(r":[0-9]+$", text) else None
    if port is not None and not 0 < int(port) < 65536:
        return f"docker_host_insecure_registries: {text!r} has no valid port."
    return None


def docker_daemon_problems(options: object, registries: object) -> list[str]:
    """One message per broken rule of the daemon inputs; ``[]`` when they pass."""
    problems = []
    if not isinstance(options, Mapping):
        problems.append(f"docker_host_daemon_options must be a dict of daemon.json keys, got {options!r}.")
    else:
        for key in options:
            if not isinstance(key, str) or not KEY.fullmatch(key):
                problems.append(f"docker_host_daemon_options: {key!r} is not a daemon.json key (lower case, dashes).")
            elif key in REFUSED:
                problems.append(f"docker_host_daemon_options: {key!r} is not accepted: {REFUSED[key]}.")
    if not isinstance(registries, list):
        problems.append(f"docker_host_insecure_registries must be a list, got {registries!r}.")
    else:
        problems.extend(p for p in map(_registry_problem, registries) if p)
    return problems


def _parse(text: str | None, path: str) -> dict:
    if not text or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AnsibleFilterError(f"{path} is not valid JSON ({exc}); fix or remove it by hand.") from exc
    if not isinstance(data, dict):
        raise AnsibleFilterError(f"{path} does not hold a JSON object.")
    return data


def docker_daemon_config(existing: str | None, options: Mapping, registries: list,
                         path: str = "/etc/docker/daemon.json") -> dict:
    """The file's next content: the existing keys, with the role's keys set to its inputs."""
    config = _parse(existing, path)
    config.update(options)
    if registries:
        config["insecure-registries"] = list(registries)
    return config


def docker_daemon_changes(existing: str | None, config: Mapping, path: str = "/etc/docker/daemon.json") -> list[str]:
    """The keys whose value differs between the file and the next config, sorted."""
    old = _parse(existing, path)
    return sorted(key for key in set(old) | set(config) if old.get(key) != config.get(key))


def docker_daemon_action(existing: str | None, config: Mapping, path: str = "/etc/docker/daemon.json") -> str:
    """``none``, ``reload`` (only re-readable keys differ) or ``restart``."""
    changed = set(docker_daemon_changes(existing, config, path))
    if not changed:
        return "none"
    return "reload" if changed <= RELOADABLE else "restart"


class FilterModule:
    def filters(self):
        return {
            "docker_daemon_problems": docker_daemon_problems,
            "docker_daemon_config": docker_daemon_config,
            "docker_daemon_action": docker_daemon_action,
            "docker_daemon_changes": docker_daemon_changes,
        }
