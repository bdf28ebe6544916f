"""Load a role's Python file (a filter plugin or a module) by path, for unit tests.

Roles are not packages, so their plugins cannot be imported by name. pytest puts this
directory on sys.path (it holds the root conftest.py), so a test imports this helper.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROLES = Path(__file__).resolve().parents[1] / "roles"


def load(relative: str) -> ModuleType:
    """``load("backup/filter_plugins/backup.py")`` → the module object."""
    path = ROLES / relative
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_") + "_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
