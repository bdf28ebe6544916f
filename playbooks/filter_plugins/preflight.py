"""Filters for the checks that need every role's settings at once (the preflight play of
playbooks/site.yml): each role checks its own inputs, only this play sees them together.
Also the checks across hosts that site.yml and rollback.yml make of their worker hosts."""

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


# Airflow's [operators] default_queue: where a task that names no queue goes. The airflow
# role leaves it at Airflow's own default.
DEFAULT_QUEUE = "default"


def _served_by(item: object) -> dict:
    """A worker's entry: a plain list of queues, or ``{queues, variable, worker}``."""
    if isinstance(item, dict):
        return {"queues": list(item.get("queues") or []), "variable": item.get("variable", "airflow_worker_queues"),
                "worker": item.get("worker", "")}
    return {"queues": list(item or []), "variable": "airflow_worker_queues", "worker": ""}


def unserved_queues(routes: dict, workers: list, default_queue: str = DEFAULT_QUEUE,
                    route_variable: str = "training_dags_queues") -> list[str]:
    """One message per queue that tasks are sent to but no Celery worker consumes.

    ``routes``: pipeline → its queue (missing, ``None`` or empty: the default queue).
    ``workers``: the queues each worker serves, one entry per worker (host), either a list
    of names or ``{queues, variable, worker}``; today the one local worker's
    ``airflow_worker_queues``. Tasks sent to such a queue would wait in the broker for
    ever (Airflow queues them; no worker takes them), so the run stops before anything
    changes. The default queue must be served in any case: every task that names no queue
    (other DAGs, pipelines without a route) goes there.
    """
    served_by = [_served_by(item) for item in workers or []]
    served = {queue for entry in served_by for queue in entry["queues"]}
    variables = sorted({entry["variable"] for entry in served_by}) or ["airflow_worker_queues"]
    offered = "; ".join(
        f"{entry['variable']}{' of ' + entry['worker'] if entry['worker'] else ''}: {', '.join(entry['queues']) or '-'}"
        for entry in served_by) or "no worker"
    where = " or ".join(variables) + (" of a worker host" if len(served_by) > 1 else "")
    problems = []
    if default_queue not in served:
        on_default = sorted(name for name, queue in (routes or {}).items() if not queue)
        who = f"pipelines {', '.join(on_default)} and " if on_default else ""
        problems.append(
            f"No worker serves Airflow's default queue '{default_queue}', where {who}every task that names no "
            f"queue goes ({offered}). Add {default_queue} to {where}.")
    for name, queue in sorted((routes or {}).items()):
        if queue and queue not in served:
            problems.append(
                f"Pipeline {name} sends its tasks to queue '{queue}' ({route_variable}.{name}), which no worker "
                f"serves ({offered}). Add {queue} to {where}, or route {name} to a served queue "
                f"(or drop it from {route_variable} for the default queue).")
    return problems


def hosts_without(hosts: list, hostvars, fact: str, targeted: list | None = None) -> list[str]:
    """``"host: why"`` for each host, of those this run targets, that did not set ``fact``.

    ``hosts``: e.g. the airflow_workers group; ``targeted``: the hosts the run's ``--limit``
    selects (None: all). A host sets ``fact`` true when its step succeeded and
    ``__mlops_worker_failure`` to the error when it failed; a host that set neither never
    ran the step (unreachable, or its play ended before it).
    """
    chosen = set(hosts or []) if targeted is None else set(hosts or []) & set(targeted)
    missing = []
    for host in hosts or []:
        if host not in chosen:
            continue
        # not .get(): HostVars answers a host it lacks with Undefined, not KeyError
        facts = hostvars[host] if host in hostvars else {}  # noqa: SIM401
        if not facts.get(fact, False):
            missing.append(f"{host}: {facts.get('__mlops_worker_failure') or 'unreachable'}")
    return missing


class FilterModule:
    def filters(self):
        return {"port_collisions": port_collisions, "setting_mismatches": setting_mismatches,
                "unserved_queues": unserved_queues, "hosts_without": hosts_without}
