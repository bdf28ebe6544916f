"""Filters for the verify checks (playbooks/tasks/verify.yml)."""


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
            "summary_lines": summary_lines,
        }
