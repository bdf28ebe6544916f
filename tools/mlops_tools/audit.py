"""Look for leaked secrets: every secret value, and any bearer token, outside the secrets dir.

Secrets are generated once into the secrets dir (0600) and must appear nowhere else: not
in the project dir (compose files, .env, reports, snapshots), not in a playbook's output
(even at ``-vvv``). This reads every file in the secrets dir, takes each whole value (and
the password inside each connection URL), and searches the given files and directories,
byte for byte, for any of them. It also flags JWTs (``eyJ….eyJ…``: Airflow's API tokens).

    python -m mlops_tools.audit --secrets-dir /opt/lakehouse-tick/secrets /opt/lakehouse-tick
    ansible-playbook -vvv playbooks/verify.yml > run.log; python -m mlops_tools.audit run.log

Findings name the file and the secret's *name*, never its value. Exit 0 clean, 1 leaks
found, 2 bad usage (e.g. an empty or unreadable secrets dir: nothing to look for proves nothing).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlops_tools import defaults

# Shorter values are too likely to occur by chance (and none of ours is this short).
MIN_LENGTH = 8
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def secret_values(secrets_dir: Path) -> dict[str, bytes]:
    """name → value for each secret file (and ``name:password`` for a URL's password)."""
    values: dict[str, bytes] = {}
    for path in sorted(p for p in secrets_dir.iterdir() if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if len(text) >= MIN_LENGTH:
            values[path.name] = text.encode()
        if "://" in text:
            password = urlsplit(text).password
            if password and len(unquote(password)) >= MIN_LENGTH:
                values[f"{path.name}:password"] = unquote(password).encode()
    return values


def files_under(paths: Iterable[Path], skip: Path) -> Iterator[Path]:
    skip = skip.resolve()
    for root in paths:
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in candidates:
            resolved = path.resolve()
            if path.is_symlink() or not path.is_file() or resolved == skip or skip in resolved.parents:
                continue
            yield path


def findings(secrets_dir: Path, paths: Iterable[Path]) -> list[str]:
    """One line per leak: ``<file>: <secret name>`` or ``<file>: a bearer token (JWT)``."""
    values = secret_values(secrets_dir)
    if not values:
        raise ValueError(f"{secrets_dir} holds no secret of {MIN_LENGTH}+ characters: nothing to look for")
    found = []
    for path in files_under(paths, secrets_dir):
        try:
            data = path.read_bytes()
        except OSError as exc:
            found.append(f"{path}: unreadable ({exc.strerror})")
            continue
        found += [f"{path}: {name}" for name, value in values.items() if value in data]
        if JWT.search(data):
            found.append(f"{path}: a bearer token (JWT)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="files and directories to search "
                        "(default: the project dir)")
    parser.add_argument("--secrets-dir", type=Path, default=Path(defaults.SECRETS_DIR))
    args = parser.parse_args(argv)
    paths = args.paths or [Path(defaults.PROJECT_DIR)]
    try:
        leaks = findings(args.secrets_dir, paths)
    except (OSError, ValueError) as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 2
    searched = ", ".join(str(p) for p in paths)
    if leaks:
        print(f"{len(leaks)} leak(s) in {searched}:")
        print("\n".join(f"  {line}" for line in leaks))
        return 1
    count = len(secret_values(args.secrets_dir))
    print(f"no secret ({count} values from {args.secrets_dir}) and no bearer token in {searched}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
