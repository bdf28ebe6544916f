"""Filters for the checks that need every role's settings at once (the preflight play of
playbooks/site.yml): each role checks its own inputs, only this play sees them together."""

from __future__ import annotations

ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]", "*"}


def _overlap(first: str, second: str) -> bool:
    """Two bind addresses reach one socket when equal or when either is the wildcard."""
    return first == second or first in ANY_ADDRESS or second in ANY_ADDRESS


def port_collisions(published: list[dict]) -> list[str]:
    """One message per pair of published ports Docker would refuse.

    ``published``: ``{variable, port, address, service}`` for each ``ports:`` entry of the
    project's compose fragments. Docker starts the first container and refuses the second
    ("port is already allocated") after the first has already been recreated, so the run
    fails half-way; caught here, it fails before anything changes.
    """
    problems = []
    entries = [dict(item, port=int(item["port"]), address=str(item.get("address") or "")) for item in published or []]
    for index, first in enumerate(entries):
        for second in entries[index + 1:]:
            if first["port"] != second["port"] or not _overlap(first["address"], second["address"]):
                continue
            taken = {entry["port"] for entry in entries}
            free = next(port for port in range(second["port"] + 1, 65536) if port not in taken)
            problems.append(
                f"{first['variable']}={first['port']} ({first.get('service', '?')} on {first['address'] or '*'}) and "
                f"{second['variable']}={second['port']} ({second.get('service', '?')} on {second['address'] or '*'}) "
                f"publish the same port; Docker would refuse the second after recreating the first. "
                f"Set {second['variable']} to another port, e.g. {second['variable']}={free}."
            )
    return problems


def setting_mismatches(groups: dict[str, dict]) -> list[str]:
    """One message per setting the roles must share but do not.

    ``groups``: what the value is (e.g. "compose project") → ``{variable: value}``. The
    roles name volumes and containers after the compose project and mount each other's
    directories, so two values where one is meant split the platform in two.
    """
    problems = []
    for what, values in (groups or {}).items():
        if len({str(value) for value in values.values()}) > 1:
            listed = ", ".join(f"{name}={value}" for name, value in values.items())
            problems.append(f"The roles must share one {what}, got {listed}.")
    return problems


class FilterModule:
    def filters(self):
        return {"port_collisions": port_collisions, "setting_mismatches": setting_mismatches}
