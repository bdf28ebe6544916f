"""Filters for building DAG releases and reading run results."""

import os
from datetime import datetime


def combine_release_entry(stat, root):
    """Turn a find/stat result into a release entry {src, dest, sha256}.

    Files under ``root`` keep their relative path; files given on their own (root None)
    land at the top of the release, where the dag-processor looks for DAG files.
    """
    path = stat["path"]
    dest = os.path.relpath(path, root) if root else os.path.basename(path)
    if dest.startswith(".."):
        raise ValueError(f"{path} lies outside {root}")
    return {"src": path, "dest": dest, "sha256": stat["checksum"]}


def seconds_between(start, end):
    """Seconds from one ISO-8601 timestamp (as Airflow's API writes them) to another."""
    if not start or not end:
        return None

    def parse(value):
        return datetime.fromisoformat(str(value))  # Python >= 3.11 reads a trailing Z

    return round((parse(end) - parse(start)).total_seconds(), 3)


def mlflow_kv(items):
    """MLflow REST lists [{key, value}] → dict."""
    return {item["key"]: item["value"] for item in items or []}


def quarantine_entries(bad, index, reason, details, stamp):
    """New quarantine-index entries for the failing files not in the index yet.

    ``bad``: release entries {src, dest, sha256}; ``index``: current entries (with sha256);
    ``details``: [{path, error}] matched on ``src``.
    """
    known = {entry.get("sha256") for entry in index or []}
    errors = {item.get("path"): item.get("error", "") for item in details or []}
    out = []
    for entry in bad or []:
        if entry["sha256"] in known:
            continue
        known.add(entry["sha256"])
        name = os.path.basename(entry["dest"])
        out.append({
            "name": entry["dest"],
            "sha256": entry["sha256"],
            "reason": reason,
            "detail": errors.get(entry["src"]) or entry.get("detail", ""),
            "file": f"{name}.{entry['sha256'][:12]}",
            "quarantined_at": stamp,
        })
    return out


def import_error_files(import_errors, files, release_path):
    """Release entries whose file Airflow reports an import error for.

    Airflow names the file as the dag-processor sees it (under .../current/ or the
    release id); match on the path relative to the release. ``src`` points at the copy
    in the live release on the target, ``detail`` is the error's last line.
    """
    by_dest = {entry["dest"]: entry for entry in files or []}
    out = []
    for error in import_errors or []:
        filename = str(error.get("filename", ""))
        rel = None
        for marker in ("/current/", "/dag-releases/"):
            if marker in filename:
                rel = filename.split(marker, 1)[1]
                if marker == "/dag-releases/":
                    rel = rel.split("/", 1)[1] if "/" in rel else rel
                break
        entry = by_dest.get(rel) if rel else None
        if entry is None:
            entry = next((e for e in by_dest.values() if filename.endswith("/" + e["dest"])), None)
        if entry is None:
            continue
        trace = str(error.get("stack_trace") or "").strip().splitlines()
        out.append({
            "src": f"{release_path}/{entry['dest']}",
            "dest": entry["dest"],
            "sha256": entry["sha256"],
            "detail": trace[-1] if trace else "import error",
        })
    return out


class FilterModule:
    def filters(self):
        return {
            "combine_release_entry": combine_release_entry,
            "seconds_between": seconds_between,
            "mlflow_kv": mlflow_kv,
            "quarantine_entries": quarantine_entries,
            "import_error_files": import_error_files,
        }
