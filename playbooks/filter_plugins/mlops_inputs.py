"""Input rules of the roles' preflight steps: one message per broken rule, naming the variable.

Every value checked here lands somewhere a stray character changes its meaning: a
requirements file (a line starting with ``-`` is a pip option, ``--index-url`` swaps the
package index), a compose file (``$`` is interpolated, a quote or a newline breaks the
YAML, ``:`` splits a volume), an SQL identifier, a URL. Each rule is a whitelist of what is
valid; whole-string matches (``re.fullmatch``), so a trailing newline never slips through
the way it does past a ``$`` anchor.

Canonical copy; the roles load it through symlinks in their own filter_plugins, so each
role checks its inputs also when it runs on its own (molecule scenarios).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping

# A distribution name (PEP 508) with optional extras, pinned with == to one version (PEP 440,
# local versions such as +cpu included), optionally followed by an environment marker.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_VERSION = r"[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?(?:\+[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*)?"
_MARKER = r"[A-Za-z0-9_.<>=!~ ()'\"]+"
PINNED = re.compile(rf"(?P<name>{_NAME})(?:\[{_NAME}(?:,{_NAME})*\])?==(?P<version>{_VERSION})(?:\s*;\s*{_MARKER})?")
RELEASE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
SHORT_RELEASE = re.compile(r"[0-9]+\.[0-9]+(?:\.[0-9]+)?")
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
COMPOSE_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*")
# Absolute paths of plain characters: no space, quote, '$' (compose interpolation), '#'
# (a YAML comment), ':' (splits a volume spec), '\\' or control characters.
PATH = re.compile(r"(?:/[A-Za-z0-9._+@=,-]+)+/?")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/%+=&?-]*)?")
USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
EXTRA = re.compile(_NAME)
# A Celery queue name: it lands in the worker's command line (`--queues a,b`, so no comma)
# and in the broker's key names.
QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A dotted Python module name; lists of them land in an environment variable, comma-separated.
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _show(value: object) -> str:
    """The value as the user wrote it, with newlines visible (repr of strings)."""
    return repr(value) if isinstance(value, str) else str(value)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _requirements(var: str, value: object, check: Mapping) -> list[str]:
    if not isinstance(value, list):
        return [f"{var} must be a list of pinned requirements (name==version), got {_show(value)}."]
    prefix = check.get("prefix", "")
    problems = []
    for line in value:
        text = str(line)
        if CONTROL.search(text):
            why = "holds a newline or another control character"
        elif text.lstrip().startswith("-"):
            why = "is a pip option (a requirement must not start with '-')"
        else:
            match = PINNED.fullmatch(text.strip())
            if match is None:
                why = "is not a pinned requirement name==version (optionally name[extra]==version; marker)"
            elif prefix and not match["name"].lower().startswith(prefix):
                why = f"does not name a package starting with {prefix}"
            else:
                continue
        problems.append(f"{var}: {_show(text)} {why}; one requirement per item, e.g. tabulate==0.9.0.")
    return problems


def _release(var: str, value: object, check: Mapping) -> list[str]:
    text = str(value)
    pattern = SHORT_RELEASE if check.get("short") else RELEASE
    minimum = check.get("minimum")
    shape = "X.Y or X.Y.Z" if check.get("short") else "X.Y.Z"
    if pattern.fullmatch(text) and (not minimum or _version_tuple(text) >= _version_tuple(str(minimum))):
        return []
    floor = f", {minimum} or newer" if minimum else ""
    why = f" ({check['why']})" if check.get("why") else ""
    example = check.get("example", "3.1.3")
    return [f"{var} must be an exact release{floor}{why}, {shape} such as {example} (got {_show(value)})."]


def _pattern(pattern: re.Pattern[str], what: str) -> Callable[[str, object, Mapping], list[str]]:
    def rule(var: str, value: object, check: Mapping) -> list[str]:
        if isinstance(value, str) and pattern.fullmatch(value):
            return []
        return [f"{var} must be {what} (got {_show(value)})."]

    return rule


def _ip(var: str, value: object, check: Mapping) -> list[str]:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return [f"{var} must be an IP address, IPv4 or IPv6, such as 127.0.0.1, 0.0.0.0 or ::1 (got {_show(value)})."]
    return []


def _names(var: str, value: object, check: Mapping) -> list[str]:
    if isinstance(value, list) and all(isinstance(item, str) and EXTRA.fullmatch(item) for item in value):
        return []
    return [f"{var} must be a list of package extras such as [celery, postgres] (got {_show(value)})."]


def _env(var: str, value: object, check: Mapping) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{var} must be a mapping of environment variable names to values (got {_show(value)})."]
    reserved = set(check.get("reserved", []))
    problems = []
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
            problems.append(f"{var}: key {_show(key)} is not an environment variable name "
                            "(upper case letters, digits and '_', not starting with a digit).")
        elif key in reserved:
            problems.append(f"{var}: key {key} is set by the role itself; change it through the role's own variable.")
        if isinstance(item, (Mapping, list)) or CONTROL.search(str(item)):
            problems.append(f"{var}: the value of {key} must be one line of text (no newline or control character).")
    return problems


def _queues(var: str, value: object, check: Mapping) -> list[str]:
    if not isinstance(value, list) or not value:
        return [f"{var} must be a non-empty list of queue names such as [default, heavy] (got {_show(value)})."]
    problems = [f"{var}: {_show(item)} is not a queue name (1-64 letters, digits, '_', '-' or '.')."
                for item in value if not isinstance(item, str) or not QUEUE.fullmatch(item)]
    repeated = sorted({str(item) for item in value if value.count(item) > 1})
    if repeated:
        problems.append(f"{var} names {', '.join(repeated)} more than once; list each queue once.")
    return problems


def _modules(var: str, value: object, check: Mapping) -> list[str]:
    if not isinstance(value, list):
        return [f"{var} must be a list of Python module names such as [numpy, mlflow.pytorch] (got {_show(value)})."]
    reserved = set(check.get("reserved", []))
    problems = []
    for item in value:
        if not isinstance(item, str) or not MODULE.fullmatch(item):
            problems.append(f"{var}: {_show(item)} is not a Python module name (dotted identifiers such as mlflow.pytorch).")
        elif item.split(".")[0] in reserved:
            problems.append(f"{var}: {item} cannot be listed: {check.get('why', 'reserved')}.")
    return problems


RULES: dict[str, Callable[[str, object, Mapping], list[str]]] = {
    "requirements": _requirements,
    "release": _release,
    "identifier": _pattern(IDENTIFIER, "a lower case SQL identifier: a-z, 0-9 and '_', not starting "
                                       "with a digit, at most 63 characters"),
    "compose_project": _pattern(COMPOSE_PROJECT, "lower case letters, digits, '-' or '_'"),
    "path": _pattern(PATH, "an absolute path of letters, digits and . _ - + @ = , only (no space, quote, "
                           "$, #, : or newline: the path lands in compose files)"),
    "ip": _ip,
    "url": _pattern(URL, "an http(s) URL such as http://mlflow:5000 (no space, quote, $ or #)"),
    "user": _pattern(USER, "a user name of letters, digits and . _ @ -"),
    "email": _pattern(EMAIL, "an e-mail address such as admin@example.invalid"),
    "extras": _names,
    "env": _env,
    "queues": _queues,
    "modules": _modules,
}


def input_problems(checks: list[Mapping]) -> list[str]:
    """One message per broken rule; ``[]`` when every input passes.

    ``checks``: ``{var, rule, value}`` plus the rule's options (``requirements``: ``prefix``;
    ``release``: ``minimum``, ``short``, ``example``, ``why``; ``env``: ``reserved``; ``modules``:
    ``reserved`` top-level packages and ``why``; any rule: ``optional``, an empty value passes).
    An unknown rule is a bug in the caller and raises.
    """
    problems = []
    for check in checks or []:
        rule = RULES.get(check["rule"])
        if rule is None:
            raise ValueError(f"unknown input rule {check['rule']!r} for {check.get('var')}")
        if check.get("optional") and check.get("value") in ("", None):
            continue
        problems.extend(rule(str(check["var"]), check.get("value"), check))
    return problems


class FilterModule:
    def filters(self):
        return {"input_problems": input_problems}
