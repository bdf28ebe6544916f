"""Filters for the verify checks (playbooks/tasks/verify.yml)."""

from datetime import UTC, datetime, timedelta

from ansible.errors import AnsibleFilterError


def container_problems(containers, oneshot_services):
    """One line per container that is not as it should be.

    Long-running services must be running and, where they have a health check, healthy;
    one-shot services (e.g. airflow-init) must have exited 0. ``containers`` are
    `docker inspect` documents.
    """
    problems = []
    for container in containers or []:
        name = container.get("Name", "?").lstrip("/")
        service = (container.get("Config", {}).get("Labels") or {}).get("com.docker.compose.service", "")
        state = container.get("State", {})
        status = state.get("Status", "?")
        if service in (oneshot_services or []):
            if status != "exited" or state.get("ExitCode") != 0:
                problems.append(f"{name} {status} (exit {state.get('ExitCode')})")
            continue
        health = (state.get("Health") or {}).get("Status")
        if status != "running" or (health is not None and health != "healthy"):
            problems.append(f"{name} {status}" + (f" / {health}" if health else ""))
    return problems


def compose_services(containers):
    """The compose service name of each `docker inspect` document (label lookups by key,
    since Jinja's attribute paths split the dotted label name)."""
    return [((c.get("Config") or {}).get("Labels") or {}).get("com.docker.compose.service", "") for c in containers or []]


def _utc(stamp, what):
    """A Docker or ISO-8601 time stamp as a UTC datetime (Python 3.11 reads `Z` and nanoseconds)."""
    try:
        moment = datetime.fromisoformat(str(stamp).strip())
    except ValueError as err:
        raise AnsibleFilterError(f"{what}: not an ISO-8601 time: {stamp!r}") from err
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def restarted_containers(containers, since="", window_seconds=600, now=None):
    """Names of the containers the engine restarted since `since`.

    A container counts when its restart policy brought it back (RestartCount > 0) and it last
    started at or after `since` (the start of the run that verifies; without one, the last
    `window_seconds`). A service that crashed once days ago and has run since is not
    restarting: counting every restart a container ever had would fail every later run until
    the container is recreated.
    """
    current = now or datetime.now(UTC)
    start = _utc(since, "verify_restarts_since") if str(since or "").strip() else \
        current - timedelta(seconds=int(window_seconds))
    names = []
    for container in containers or []:
        if int(container.get("RestartCount") or 0) <= 0:
            continue
        started = (container.get("State") or {}).get("StartedAt") or ""
        if not started or _utc(started, container.get("Name", "?")) >= start:
            names.append(container.get("Name", "?").lstrip("/"))
    return names


def summary_lines(checks, width=58, evidence=110):
    """A fixed-width table of the checks for the play's output."""
    def cut(text, size):
        text = str(text)
        return text if len(text) <= size else text[: size - 1] + "…"

    lines = [f"{'check':<{width}} | result | evidence"]
    for check in checks or []:
        lines.append(f"{cut(check['name'], width):<{width}} | {'PASS' if check['passed'] else 'FAIL':<6} | "
                     f"{cut(check['evidence'], evidence)}")
    return lines


class FilterModule:
    def filters(self):
        return {
            "compose_services": compose_services,
            "container_problems": container_problems,
            "restarted_containers": restarted_containers,
            "summary_lines": summary_lines,
        }
