"""Parse the DAG folder with the ML libraries made unimportable; print one JSON line.

Run as a separate interpreter by test_dag_integrity.py: a fresh process is the
only way to be sure nothing was imported earlier (by other tests). This is what
the lean control-plane image (dag-processor, scheduler) sees.

    python parse_dags_blocked.py <dags_dir>
"""

from __future__ import annotations

import importlib.abc
import json
import runpy
import sys
from pathlib import Path

# NumPy too: the control-plane image does not have it, and parsing does not need it.
BLOCKED = ("tensorflow", "torch", "xgboost", "lightgbm", "keras", "mlflow", "sklearn", "pandas", "numpy", "optuna")


class Blocker(importlib.abc.MetaPathFinder):
    """Refuse the heavy libraries, remembering who asked."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            self.attempts.append(fullname)
            raise ImportError(f"{fullname} is blocked: DAG files must not import it at parse time")


def main() -> None:
    dags_dir = Path(sys.argv[1])
    blocker = Blocker()
    sys.meta_path.insert(0, blocker)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_dir))
    # The execution plan's syntax check: `python <dag file>` must run cleanly too.
    script_errors = {}
    for path in sorted(dags_dir.glob("*_dag.py")):
        try:
            runpy.run_path(str(path), run_name="__main__")
        except Exception as exc:  # noqa: BLE001 - reported, and asserted on, by the test
            script_errors[path.name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps({
        "dag_ids": sorted(bag.dag_ids),
        "import_errors": bag.import_errors,
        "script_errors": script_errors,
        "blocked_attempts": blocker.attempts,
        "heavy_loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
        "parsed_files": sorted(bag.file_last_changed),
    }))


if __name__ == "__main__":
    main()
