#!/usr/bin/python
"""Content-addressed snapshots of the project's managed files: take, list, restore.

This replaces ~950 lines of probe-and-check YAML (Jinja loops over find/stat/slurp
results) with one module run per entry point. The judging (digest, manifest check, which
snapshot to restore, what retention may delete, what a restore must refuse) lives in
plain functions that the unit tests call directly; the Docker engine is read with the
docker CLI, the only outside dependency.
"""

DOCUMENTATION = r"""
module: backup_snapshot
short_description: Snapshot, list and restore the managed files of the MLOps project
description:
  - C(state=snapshot) copies the managed files and the active DAG release into
    C(<backup_dir>/<stamp>.partial/files/), writes C(manifest.json) last and renames the
    directory to C(<stamp>), unless the newest snapshot already holds the same digest. Then
    deletes the oldest snapshots beyond C(keep), never the one equal to the current state, the
    newest verified one, the one a rollback would pick, or one an interrupted restore needs.
  - C(state=list) reads every snapshot and returns the manifests and a table.
  - C(state=restore) picks a snapshot, refuses it (before changing anything) for every reason
    the role README lists, then writes only what differs. A journal
    (C(<backup_dir>/.restore-journal.json)) exists from before the first change until the last;
    a later restore without C(restore_to) finishes an interrupted one, and a snapshot is refused
    while one is pending.
  - Check mode reports what would change and changes nothing; diff shows changed files.
options:
  state: {description: What to do., type: str, choices: [snapshot, list, restore, restore_databases], default: snapshot}
  project_dir: {description: Project directory on the target., type: path, required: true}
  backup_dir: {description: Directory of the snapshots., type: path, required: true}
  dir_mode: {description: Mode of C(backup_dir) (octal string)., type: str, default: "0700"}
  paths: {description: Managed files and directories, relative to C(project_dir)., type: list, elements: str, required: true}
  dag_release_link: {description: Relative symlink to the active DAG release., type: str, required: true}
  compose_file: {description: Top compose file (relative)., type: str, required: true}
  compose_dir: {description: Directory of the compose fragments (relative)., type: str, required: true}
  never_paths: {description: Paths no snapshot may hold., type: list, elements: str, default: []}
  exclude: {description: Basename globs never copied., type: list, elements: str, default: []}
  max_file_size: {description: Largest managed file in bytes., type: int, default: 10485760}
  reason: {description: Recorded in the manifest., type: str, default: manual}
  keep: {description: Snapshots to keep., type: int, default: 10}
  verified_reason: {description: Reason of the snapshots taken after a verified converge., type: str, default: post-converge}
  compose_project: {description: Compose project whose running containers the downgrade check reads., type: str, default: ""}
  restore_to: {description: Stamp to restore; empty picks the state before this one., type: str, default: ""}
  require_files: {description: Globs the snapshot to restore must hold a file for., type: list, elements: str, default: []}
  refuse_downgrade_labels: {description: Image labels whose version may not go down., type: list, elements: str, default: []}
  databases:
    description:
      - PostgreSQL databases dumped (C(pg_dump -Fc) inside the running container) into every snapshot this
        run publishes, never into an existing one: they ride along, the file digest alone decides.
      - Each C({name, container, user, db, service_container, version_label}); C(name) is C(mlflow) or
        C(airflow) (it selects how the runs a restore discards are counted).
    type: list
    elements: dict
    default: []
  upcoming_versions:
    description:
      - For C(state=snapshot) before a converge, the version each database's service is about to run
        (C({mlflow: 3.18.0, airflow: 3.3.2})). When one differs from the version label its running service
        carries, the change can migrate that schema, so a snapshot with fresh dumps is taken even though
        the files equal the newest snapshot's: a rollback then discards only what ran after it.
    type: dict
    default: {}
  restore_databases:
    description:
      - C(auto) restores a snapshot's dumps when the version label of a database's service differs from the
        one recorded in the snapshot (a schema change); C(always) restores them; C(never) does not.
      - The files are restored by C(state=restore); the databases by C(state=restore_databases) afterwards
        (the caller stops the services that use them in between); the journal covers both.
    type: str
    choices: [auto, always, never]
    default: auto
author: lakehouse-tick MLOps
"""

import datetime
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess

from ansible.module_utils.basic import AnsibleModule

STAMP_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]{2})?$")
SNAPSHOT_DIR_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]{2})?(\.partial)?$")
REASON_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
VERSION_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)*)(?:(a|b|rc)([0-9]+))?(?:\.post([0-9]+))?(?:\.dev([0-9]+))?(?:\+[A-Za-z0-9.]+)?$")
JOURNAL = ".restore-journal.json"
DB_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# What a database restore discards: rows created after the dump, per database name.
# MLflow's runs.start_time is milliseconds since the epoch; Airflow's dag_run.start_date a
# timestamptz, NULL while a run is only queued (then queued_at counts).
DISCARD_QUERIES = {
    "mlflow": ("MLflow runs", "runs", "start_time > {epoch_ms}"),
    "airflow": ("DAG runs", "dag_run", "COALESCE(start_date, queued_at) > '{iso}'::timestamptz"),
}
# Every row of the same table is also counted just before each dump and kept in the manifest:
# the growth since is the rows a restore discards. MLflow keeps start_time 0 for a run created
# through the REST API without one, which the time-based count misses; the growth misses rows
# purged since (`mlflow gc`, `airflow db clean`). The larger of the two is said.
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")
_CHUNK = 1 << 20


class Refusal(Exception):
    """A rule says no; the message is what the play fails with."""


# ------------------------------------------------------------------ digest and manifest


def digest(files, links):
    """Identity of a state: SHA-256 over the sorted (path, sha256) and (path, target) lines.

    One line per file ``F\\t<path>\\t<sha256>`` and per symlink ``L\\t<path>\\t<target>``,
    sorted, joined with ``\\n``. Modes are not part of it (a restore re-applies them).
    """
    lines = [f"F\t{f['path']}\t{f['sha256']}" for f in files or []]
    lines += [f"L\t{link['path']}\t{link['target']}" for link in links or []]
    return hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()


def safe_path(path):
    """True for a relative path that stays inside the directory it is joined to."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
        return False
    norm = posixpath.normpath(path)
    return norm == path and norm not in (".", "..") and not norm.startswith("../")


def link_dir(link, target):
    """Path (relative to the project) that the relative symlink ``link`` → ``target`` names.

    '' when the target is absolute or leads outside the project: such a release is not copied.
    """
    if not isinstance(target, str) or not target or target.startswith("/"):
        return ""
    path = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
    return path if safe_path(path) else ""


def compose_images(text):
    """Sorted image references under ``services.*.image`` of a compose file; [] if unreadable."""
    import yaml  # on the target; only needed where compose files are read

    try:
        data = yaml.safe_load(text if isinstance(text, (str, bytes)) else "")
    except yaml.YAMLError:
        return []
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return []
    refs = {s.get("image") for s in services.values() if isinstance(s, dict)}
    return sorted(r for r in refs if isinstance(r, str) and r)


def manifest_error(manifest):
    """Why ``manifest`` is not a usable snapshot manifest, or '' when it is."""
    if not isinstance(manifest, dict):
        return "manifest.json does not hold a JSON object"
    for key in ("stamp", "created", "reason", "digest"):
        if not isinstance(manifest.get(key), str):
            return f"manifest.json lacks the string field {key!r}"
    if not _HEX64.match(manifest["digest"]):
        return "manifest.json has a digest that is not 64 hex digits"
    if manifest.get("dag_release") is not None and not isinstance(manifest["dag_release"], str):
        return "manifest.json has a dag_release that is neither a string nor null"
    for key in ("files", "links", "images"):
        if not isinstance(manifest.get(key), list) or not all(isinstance(i, dict) for i in manifest[key]):
            return f"manifest.json lacks the list of objects {key!r}"
    for item in manifest["files"]:
        if not safe_path(item.get("path")):
            return f"manifest.json lists an unsafe file path: {item.get('path')!r}"
        if not isinstance(item.get("sha256"), str) or not _HEX64.match(item["sha256"]):
            return f"manifest.json has no valid sha256 for {item['path']}"
        if not isinstance(item.get("mode"), str) or not _MODE.match(item["mode"]):
            return f"manifest.json has no valid mode for {item['path']}"
    for item in manifest["links"]:
        if not safe_path(item.get("path")):
            return f"manifest.json lists an unsafe link path: {item.get('path')!r}"
        if not isinstance(item.get("target"), str) or not item["target"]:
            return f"manifest.json has no target for the link {item['path']}"
    for item in manifest["images"]:
        if not isinstance(item.get("ref"), str) or not item["ref"]:
            return "manifest.json lists an image without a ref"
    if manifest.get("dag_release_dir") and not safe_path(manifest["dag_release_dir"]):
        return f"manifest.json has an unsafe dag_release_dir: {manifest['dag_release_dir']!r}"
    error = databases_error(manifest.get("databases", []))
    if error:
        return error
    if digest(manifest["files"], manifest["links"]) != manifest["digest"]:
        return "manifest.json does not match its own digest (edited after it was written?)"
    return ""


def databases_error(entries):
    """Why the manifest's ``databases`` list is unusable, or ''. Snapshots older than it have none."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return "manifest.json has a databases field that is not a list of objects"
    for entry in entries:
        if not isinstance(entry.get("name"), str) or not DB_NAME_RE.match(entry["name"]):
            return f"manifest.json lists a database without a valid name: {entry.get('name')!r}"
        if entry.get("file") is None:
            continue
        if entry["file"] != f"databases/{entry['name']}.dump":
            return f"manifest.json has an unexpected dump file for the {entry['name']} database: {entry['file']!r}"
        if not isinstance(entry.get("sha256"), str) or not _HEX64.match(entry["sha256"]):
            return f"manifest.json has no valid sha256 for the {entry['name']} database dump"
        if not isinstance(entry.get("size"), int) or not isinstance(entry.get("dumped_at"), str):
            return f"manifest.json has no size or dump time for the {entry['name']} database dump"
    return ""


def parse_manifest(text):
    """Parse and check a manifest: ``{'manifest': dict|None, 'error': str}``; never raises."""
    try:
        manifest = json.loads(text if isinstance(text, (str, bytes)) else "")
    except ValueError as exc:
        return {"manifest": None, "error": f"manifest.json does not parse as JSON ({exc})"}
    error = manifest_error(manifest)
    return {"manifest": None if error else manifest, "error": error}


# ------------------------------------------------------------------------------ inputs


def input_errors(cfg):
    """Every rule the argument spec cannot express that ``cfg`` breaks (messages)."""
    errors = []
    if not (cfg["project_dir"].startswith("/") and cfg["backup_dir"].startswith("/")):
        errors.append(f"backup_project_dir and backup_dir must be absolute (got {cfg['project_dir']}, {cfg['backup_dir']}).")
    if not re.match(r"^0[0-7]{3}$", cfg["dir_mode"]):
        errors.append(f"backup_dir_mode must be an octal string like \"0700\" (got {cfg['dir_mode']}).")
    if cfg["keep"] < 1 or cfg["max_file_size"] < 1:
        errors.append(f"backup_keep and backup_max_file_size must be at least 1 (got {cfg['keep']}, {cfg['max_file_size']}).")
    relative = cfg["paths"] + [cfg["dag_release_link"], cfg["compose_file"], cfg["compose_dir"]]
    if not cfg["paths"] or not all(safe_path(p) for p in relative):
        errors.append("backup_paths, backup_dag_release_link, backup_compose_file and backup_compose_dir must be "
                      "non-empty paths relative to backup_project_dir that stay inside it "
                      f"(got {', '.join(map(str, relative))}).")
    if not REASON_RE.match(cfg["reason"]):
        errors.append(f"backup_reason must be one word of letters, digits and '_.:-' (got {cfg['reason']}).")
    if cfg["restore_to"] and not STAMP_RE.match(cfg["restore_to"]):
        errors.append("backup_restore_to must be empty or a snapshot stamp like 20260101T120000Z "
                      f"(got {cfg['restore_to']}).")
    for db in cfg.get("databases") or []:
        keys = ("name", "container", "user", "db", "service_container", "version_label")
        if not isinstance(db, dict) or not all(isinstance(db.get(k), str) and db[k] for k in keys) \
                or not DB_NAME_RE.match(db["name"]):
            errors.append(f"backup_databases entries need the non-empty strings {', '.join(keys)} and a name of "
                          f"lower-case letters, digits, '_' and '-' (got {db!r}).")
    names = [db.get("name") for db in cfg.get("databases") or [] if isinstance(db, dict)]
    if len(names) != len(set(names)):
        errors.append(f"backup_databases names must be unique (got {', '.join(map(str, names))}).")
    # A snapshot never holds secrets, datasets, quarantined DAGs or the snapshots themselves.
    forbidden = list(cfg["never_paths"])
    project = cfg["project_dir"].rstrip("/")
    if (cfg["backup_dir"].rstrip("/") + "/").startswith(project + "/"):
        forbidden.append(posixpath.relpath(cfg["backup_dir"], project))
    overlaps = [f"{p} / {n}" for p in cfg["paths"] + [cfg["dag_release_link"]] for n in forbidden
                if p == n or p.startswith(n + "/") or n.startswith(p + "/")]
    if overlaps:
        errors.append("backup_paths overlap paths that are never snapshot (managed / forbidden): "
                      f"{', '.join(overlaps)}. Narrow backup_paths or move backup_dir.")
    return errors


# ------------------------------------------------------------------------------ reading


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def mode_of(st):
    return f"{stat.S_IMODE(st.st_mode):04o}"


def read_state(cfg):
    """The managed files as they are now.

    ``{files [{path, sha256, mode, size}], links [{path, target}], digest, empty, dag_release,
    release_dir, release_present, too_big [absolute paths]}``. Excluded names (basename globs)
    are neither recorded nor descended into. The DAG release is walked through its link and
    recorded under the directory the link names.
    """
    root = cfg["project_dir"]
    files, links, too_big = {}, {}, []

    def excluded(name):
        return any(fnmatch.fnmatchcase(name, glob) for glob in cfg["exclude"])

    def add(abs_path, rel, st):
        if stat.S_ISLNK(st.st_mode):
            links[rel] = os.readlink(abs_path)
        elif stat.S_ISREG(st.st_mode):
            if st.st_size > cfg["max_file_size"]:
                too_big.append(abs_path)
            files[rel] = {"path": rel, "sha256": sha256_file(abs_path), "mode": mode_of(st), "size": st.st_size}

    def walk(abs_dir, rel_dir):
        for dirpath, dirnames, filenames in os.walk(abs_dir):
            rel_base = rel_dir + dirpath[len(abs_dir):]
            keep_dirs = []
            for name in dirnames + filenames:
                if excluded(name):
                    continue
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISDIR(st.st_mode):
                    keep_dirs.append(name)
                else:
                    add(os.path.join(dirpath, name), f"{rel_base}/{name}", st)
            dirnames[:] = [d for d in dirnames if d in keep_dirs]

    release_id, release_dir, release_present = None, "", False
    if os.path.isdir(root):
        for rel in cfg["paths"]:
            abs_path = os.path.join(root, rel)
            try:
                st = os.lstat(abs_path)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                walk(abs_path, rel)
            else:
                add(abs_path, rel, st)
        link = cfg["dag_release_link"]
        abs_link = os.path.join(root, link)
        if os.path.islink(abs_link):
            target = os.readlink(abs_link)
            links[link] = target
            release_id = posixpath.basename(target.rstrip("/"))
            release_dir = link_dir(link, target)
            release_present = bool(release_dir) and os.path.isdir(abs_link)
            if release_present:
                walk(abs_link, release_dir)
    file_list = [files[k] for k in sorted(files)]
    link_list = [{"path": k, "target": links[k]} for k in sorted(links)]
    return {"files": file_list, "links": link_list, "digest": digest(file_list, link_list),
            "empty": not file_list and not link_list, "dag_release": release_id,
            "release_dir": release_dir, "release_present": release_present, "too_big": sorted(too_big)}


def read_snapshots(backup_dir):
    """The snapshots under ``backup_dir``: ``{dirs, partials, all, manifests}``.

    ``dirs`` every <stamp> directory, newest first (readable or not); ``partials`` the
    <stamp>.partial ones; ``all`` [{stamp, manifest, error}] for every dir; ``manifests``
    the readable ones, each with its directory's stamp. Manifests are small: reading all
    of them costs milliseconds.
    """
    names = []
    if os.path.isdir(backup_dir):
        names = [n for n in os.listdir(backup_dir)
                 if SNAPSHOT_DIR_RE.match(n) and os.path.isdir(os.path.join(backup_dir, n))]
    dirs = sorted((n for n in names if not n.endswith(".partial")), reverse=True)
    partials = sorted(n for n in names if n.endswith(".partial"))
    entries = []
    for name in dirs:
        try:
            with open(os.path.join(backup_dir, name, "manifest.json"), "rb") as fh:
                parsed = parse_manifest(fh.read())
        except OSError as exc:
            parsed = {"manifest": None, "error": f"manifest.json cannot be read ({exc.strerror or exc})"}
        manifest = dict(parsed["manifest"], stamp=name) if parsed["manifest"] else None
        entries.append({"stamp": name, "manifest": manifest, "error": parsed["error"]})
    return {"dirs": dirs, "partials": partials, "all": entries,
            "manifests": [e["manifest"] for e in entries if e["manifest"]]}


def read_journal(backup_dir):
    """The journal an interrupted restore left, or None. An unreadable one still counts."""
    path = os.path.join(backup_dir, JOURNAL)
    if not os.path.lexists(path):
        return None
    try:
        with open(path, "rb") as fh:
            journal = json.loads(fh.read())
        if isinstance(journal, dict) and isinstance(journal.get("stamp"), str) and STAMP_RE.match(journal["stamp"]):
            return journal
    except (OSError, ValueError):
        pass
    return {"stamp": "", "before_stamp": "", "started": "?", "error": f"{path} cannot be read"}


# ----------------------------------------------------------------------------- judging


def needs_snapshot(state, newest):
    """A snapshot is due when there is something to hold and the newest one differs.

    ``newest`` is the newest snapshot's manifest, None when it is missing or unreadable.
    """
    return not state["empty"] and (newest is None or newest["digest"] != state["digest"])


def coming_schema_changes(databases, upcoming, live_versions):
    """'<name> <live> -> <upcoming>' for each database whose running service is about to change version.

    ``live_versions`` {name: version label of the service running now, or None}. A service
    that is not running (first converge) or a version not given changes nothing here.
    """
    changes = []
    for db in databases:
        name = db["name"]
        live, coming = live_versions.get(name), upcoming.get(name)
        if live and coming and str(coming) != live:
            changes.append(f"{name} {live} -> {coming}")
    return changes


def next_stamp(now_stamp, dirs):
    """A free stamp that sorts after every existing one, even if the clock stepped back.

    UTC seconds; a second snapshot within the same second gets -01, -02, ... (still before
    the next second). None when 99 are taken.
    """
    newest = max(dirs) if dirs else ""
    base = max(now_stamp, newest[:16])
    for candidate in [base] + [f"{base}-{i:02d}" for i in range(1, 100)]:
        if candidate > newest and candidate not in dirs:
            return candidate
    return None


def pick_target(manifests, current_digest, restore_to="", journal=None):
    """The stamp a restore brings back, or '' when there is none.

    ``restore_to`` when named; else the target of an interrupted restore (finish it: its
    half-restored files match no snapshot, and the default rule would then pick the newest
    snapshot, often the very state that was being left); else the newest snapshot that
    differs from the current state and is older than the newest snapshot equal to it (the
    state before this one); when no snapshot equals the current state, the newest one.
    """
    if restore_to:
        return restore_to
    if journal and journal.get("stamp"):
        return journal["stamp"]
    stamps = [m["stamp"] for m in manifests]
    equal = [m["stamp"] for m in manifests if m["digest"] == current_digest]
    if not equal:
        return stamps[0] if stamps else ""
    older = manifests[stamps.index(equal[0]) + 1:]
    return next((m["stamp"] for m in older if m["digest"] != current_digest), "")


def protected(manifests, current_stamp, current_digest, verified_reason):
    """Stamps retention never deletes, each with why.

    (While a restore journal is pending no snapshot runs, so no retention either: the
    snapshots an interrupted restore needs are safe.)
    """
    keep = {}
    if current_stamp:
        keep[current_stamp] = "equal to the current state"
    verified = next((m["stamp"] for m in manifests if m["reason"] == verified_reason), "")
    if verified:
        keep.setdefault(verified, f"newest {verified_reason} snapshot")
    rollback = pick_target(manifests, current_digest)
    if rollback:
        keep.setdefault(rollback, "the one a rollback would pick")
    return keep


def retention_victims(dirs, keep, keep_always):
    """Snapshot directories beyond the newest ``keep``, except those in ``keep_always``."""
    return [d for d in sorted(set(dirs), reverse=True)[keep:] if d not in keep_always]


def version_key(text):
    """PEP 440 ordering for the versions VERSION_RE accepts (local labels ignored)."""
    m = VERSION_RE.match(text)
    release = [int(x) for x in m.group(1).split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    pre_kind, pre_n, post, dev = m.group(2), m.group(3), m.group(4), m.group(5)
    if pre_kind:
        pre = ({"a": 0, "b": 1, "rc": 2}[pre_kind], int(pre_n))
    elif dev is not None and post is None:
        pre = (-1, 0)  # 1.0.dev1 sorts before 1.0a1
    else:
        pre = (3, 0)
    return (tuple(release), pre, int(post) if post is not None else -1,
            int(dev) if dev is not None else float("inf"))


def downgrades(labels, old_images, live_images, live_source):
    """'<label> <old> in <ref> < <new> in <live> (<source>)' for each version that goes down."""
    out = []
    for label in labels:
        for old in old_images:
            for live in live_images:
                a = (old.get("labels") or {}).get(label, "")
                b = (live.get("labels") or {}).get(label, "")
                if VERSION_RE.match(a) and VERSION_RE.match(b) and version_key(a) < version_key(b):
                    live_ref = re.sub(r"^sha256:([0-9a-f]{12}).*$", r"image \1", live["ref"])
                    line = f"{label} {a} in {old['ref']} < {b} in {live_ref} ({live_source})"
                    if line not in out:
                        out.append(line)
    return out


def databases_due(mode, snap_dbs, live_versions, pending=(), snapshot="the snapshot"):
    """The snapshot's database entries a restore brings back, each with ``why``.

    ``mode`` auto|always|never; ``live_versions`` {name: version label of the service running
    now, or None}; ``pending`` the databases an interrupted restore left half-restored (always
    due). A database that is due but has no dump stops the restore before anything changes.
    """
    due = []
    recorded = {d["name"]: d for d in snap_dbs}
    for name in pending:
        if name not in recorded:
            raise Refusal(f"An interrupted restore left the {name} database half-restored, and {snapshot} holds "
                          f"no dump of it; restore the snapshot that interrupted restore was restoring.")
    for entry in snap_dbs:
        name, old, live = entry["name"], entry.get("version"), live_versions.get(entry["name"])
        if name in pending:
            why = "an interrupted restore left it half-restored"
        elif mode == "always":
            why = "asked for (rollback_databases=true)"
        elif mode == "auto" and old and live and old != live:
            why = f"schema change: {entry.get('version_label', 'version')} {live} runs now, {old} in {snapshot}"
        else:
            continue
        if not entry.get("file"):
            raise Refusal(f"The {name} database should be restored ({why}), but {snapshot} holds no dump of it "
                          f"({entry.get('note') or 'not dumped'}). Restore another snapshot, or restore the files "
                          "only with rollback_databases=false (the old service may refuse the newer schema).")
        due.append(dict(entry, why=why))
    if mode == "always" and not due:
        raise Refusal(f"rollback_databases=true, but {snapshot} holds no database dumps (taken before they were "
                      "recorded, or with backup_databases empty).")
    return due


def discard_sql(name, dumped_at):
    """(what is counted, SQL counting the rows created after ``dumped_at``), or None for an unknown name."""
    if name not in DISCARD_QUERIES:
        return None
    when = datetime.datetime.strptime(dumped_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)  # noqa: UP017
    what, table, newer = DISCARD_QUERIES[name]
    newer = newer.format(epoch_ms=int(when.timestamp() * 1000), iso=dumped_at)
    return what, f"SELECT count(*) FROM {table} WHERE {newer}"


def row_sql(name):
    """SQL counting every row of the table a restore of ``name`` discards rows of, or None."""
    return f"SELECT count(*) FROM {DISCARD_QUERIES[name][1]}" if name in DISCARD_QUERIES else None


def count_discards(docker, db, entry):
    """(what is counted, how many rows a restore of ``entry``'s dump discards, or why it cannot say)."""
    counted = discard_sql(entry["name"], entry["dumped_at"])
    if not counted:
        return "rows", "no counting query for this database"
    what, sql = counted
    since = docker.count(db, sql)
    if isinstance(entry.get("rows"), int):
        now_rows = docker.count(db, row_sql(entry["name"]))
        if isinstance(now_rows, int):
            grown = max(0, now_rows - entry["rows"])
            since = max(since, grown) if isinstance(since, int) else grown
    return what, since


def discard_message(stamp, due):
    """One line per database: what restoring it brings back and how many runs that discards."""
    lines = []
    for d in due:
        what = d.get("counted") or "rows"
        count = d.get("discards")
        lost = (f"discards {count} {what} created after {d['dumped_at']}" if isinstance(count, int)
                else f"discards the {what} created after {d['dumped_at']} (could not count them: {count})")
        lines.append(f"Restoring the {d['name']} database to its dump in snapshot {stamp} ({d['why']}) {lost}.")
    return lines


def match_images(refs, inspected):
    """{ref: {ref, id, labels}} from ``docker image inspect`` output; id None when missing.

    The engine lists an image under "name:tag" without a default registry or "library/";
    a reference without a tag means ":latest". Image ids are matched as they are.
    """
    out = {}
    for ref in refs:
        name = re.sub(r"^docker\.io/(library/)?", "", ref)
        if "@" not in name and not re.search(r":[^/]+$", name):
            name += ":latest"
        hit = next((i for i in inspected if i.get("Id") == ref or name in (i.get("RepoTags") or [])
                    or name in (i.get("RepoDigests") or [])), None)
        out[ref] = {"ref": ref, "id": hit.get("Id") if hit else None,
                    "labels": ((hit.get("Config") or {}).get("Labels") or {}) if hit else {}}
    return out


def compose_refs(cfg, root, paths):
    """Image references of the top compose file and the fragments among ``paths``."""
    pattern = re.compile("^(" + re.escape(cfg["compose_file"]) + "|" + re.escape(cfg["compose_dir"]) + r"/[^/]+\.ya?ml)$")
    refs = set()
    for path in paths:
        if pattern.match(path):
            try:
                with open(os.path.join(root, path), "rb") as fh:
                    refs.update(compose_images(fh.read()))
            except OSError:
                continue  # an unreadable file yields none: a broken state must still be snapshot
    return sorted(refs)


def is_fragment(cfg, path):
    return re.match("^" + re.escape(cfg["compose_dir"]) + r"/[^/]+\.ya?ml$", path) is not None


# ------------------------------------------------------------------------------ docker


class DockerCli:
    """The engine as the docker CLI on the target sees it (never pulls, never builds)."""

    def __init__(self, module):
        self.module = module
        self.bin = None

    def _resolve(self):
        if self.bin is None:
            self.bin = self.module.get_bin_path("docker", opt_dirs=["/usr/local/bin", "/usr/bin"])
            if not self.bin:
                raise Refusal("The docker CLI is not on the target: the compose files name images, and their ids "
                              "and labels are read from the engine (docker_host installs it).")
        return self.bin

    def _run(self, argv):
        return self.module.run_command([self._resolve()] + argv)

    def images(self, refs):
        refs = [r for r in refs if "$" not in r]
        if not refs:
            return []
        rc, out, err = self._run(["image", "inspect", "--"] + refs)
        errors = [line for line in err.splitlines() if line.strip() and "no such image" not in line.lower()]
        if rc != 0 and errors:
            raise Refusal(f"docker image inspect failed: {' '.join(errors)[:500]}")
        try:
            return json.loads(out or "[]")
        except ValueError:
            return []

    def running_image_ids(self, project):
        rc, out, err = self._run(["ps", "--quiet", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}"])
        if rc != 0:
            raise Refusal(f"docker ps failed: {err.strip()[:500]}")
        ids = out.split()
        if not ids:
            return []
        rc, out, err = self._run(["container", "inspect", "--format", "{{.Image}}"] + ids)
        return sorted({line.strip() for line in out.splitlines() if line.strip()})


    def container(self, name):
        """{exists, running, labels} of a container (labels include its image's)."""
        rc, out, err = self._run(["container", "inspect", "--format", "{{json .State.Running}} {{json .Config.Labels}}",
                                  "--", name])
        if rc != 0:
            if "no such" in err.lower():
                return {"exists": False, "running": False, "labels": {}}
            raise Refusal(f"docker container inspect {name} failed: {err.strip()[:500]}")
        running, _, labels = out.strip().partition(" ")
        return {"exists": True, "running": running == "true", "labels": json.loads(labels or "null") or {}}

    # The password stays inside the container: the shell there reads the secret file the
    # image's entrypoint uses (POSTGRES_PASSWORD_FILE), so it is on no command line.
    _PG = 'u=$1 d=$2; shift 2; PGPASSWORD=$(cat "$POSTGRES_PASSWORD_FILE") exec "$0" -U "$u" -d "$d" "$@"'

    def _pg(self, container, argv, stdin=None, stdout=None):
        cmd = [self._resolve(), "exec"] + (["-i"] if stdin else []) + [container, "sh", "-c", self._PG] + argv
        proc = subprocess.run(cmd, stdin=stdin or subprocess.DEVNULL, stdout=stdout or subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False)
        return proc.returncode, proc.stdout if stdout is None else b"", proc.stderr.decode("utf-8", "replace")

    def pg_dump(self, db, dst):
        """Stream ``pg_dump -Fc`` of the running container into ``dst`` (never held in memory)."""
        with open(dst, "wb") as fh:
            rc, _, err = self._pg(db["container"], ["pg_dump", db["user"], db["db"], "-Fc"], stdout=fh)
            fh.flush()
            os.fsync(fh.fileno())
        if rc != 0:
            raise Refusal(f"pg_dump of the {db['name']} database in {db['container']} failed (exit {rc}): "
                          f"{err.strip()[:500]}; nothing was published.")

    def pg_restore(self, db, src):
        """``pg_restore --clean --if-exists`` in one transaction: the database is the old or the new one."""
        with open(src, "rb") as fh:
            rc, _, err = self._pg(db["container"], ["pg_restore", db["user"], db["db"], "--clean", "--if-exists",
                                                    "--single-transaction", "--exit-on-error"], stdin=fh)
        if rc != 0:
            raise Refusal(f"pg_restore of the {db['name']} database into {db['container']} failed (exit {rc}): "
                          f"{err.strip()[:500]}. The restore journal stays; run the rollback again to finish it.")

    def count(self, db, sql):
        """The integer a counting query returns, or the reason there is none (a string)."""
        rc, out, err = self._pg(db["container"], ["psql", db["user"], db["db"], "-tAX", "-c", sql])
        text = out.decode("utf-8", "replace").strip()
        return int(text) if rc == 0 and text.isdigit() else (err.strip()[:200] or f"psql exit {rc}")


# ------------------------------------------------------------------------------ actions


def utc_stamp(now):
    return now.strftime("%Y%m%dT%H%M%SZ")


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomically(path, data, mode=0o600):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), mode)
        fh.write(json.dumps(data, indent=4, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def copy_file(src, dst):
    """Copy bytes, mode and times; return the sha256 of what was written (the copy)."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for chunk in iter(lambda: fin.read(_CHUNK), b""):
            h.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst, follow_symlinks=False)
    return h.hexdigest()


def snapshot_diff(newest, state):
    def lines(files, links):
        return "".join([f"{f['sha256'][:12]}  {f['path']}\n" for f in files]
                       + [f"link  {link['path']} -> {link['target']}\n" for link in links])
    return {"before_header": f"snapshot {newest['stamp']}" if newest else "no snapshot",
            "after_header": "current state",
            "before": lines(newest["files"], newest["links"]) if newest else "",
            "after": lines(state["files"], state["links"])}


def take_snapshot(cfg, check_mode, docker, now):
    """state=snapshot: snapshot unless the newest one holds the current state, then retention."""
    journal = read_journal(cfg["backup_dir"])
    if journal:
        raise Refusal(journal_pending_message(cfg, journal, "its files are half-restored, so they are not snapshot"))
    state = read_state(cfg)
    if state["too_big"]:
        raise Refusal(f"These managed files are bigger than backup_max_file_size ({cfg['max_file_size']} bytes): "
                      f"{', '.join(state['too_big'])}. Build inputs are meant to be small text files; add a glob for "
                      "them to backup_exclude, or raise backup_max_file_size.")
    snaps = read_snapshots(cfg["backup_dir"])
    manifests = snaps["manifests"]
    # The newest snapshot decides, whether its manifest reads or not (an unreadable newest one
    # means: take a fresh one).
    newest = manifests[0] if manifests and snaps["dirs"] and manifests[0]["stamp"] == snaps["dirs"][0] else None
    result = {"changed": False, "created": False, "snapshot": "", "snapshot_dir": "", "deleted": [],
              "removed_partials": [], "kept": {}, "messages": []}
    if state["empty"]:
        result["messages"].append(
            f"Nothing to snapshot: none of {', '.join(cfg['paths'] + [cfg['dag_release_link']])} exists under "
            f"{cfg['project_dir']} yet (first run).")
        return result
    stamp = newest["stamp"] if newest else ""
    # Database contents never decide a snapshot, but a version change of their service can
    # migrate the schema: the dumps a rollback would restore must be from just before it.
    changes = []
    files_changed = needs_snapshot(state, newest)
    if cfg["upcoming_versions"]:
        live = {db["name"]: docker.container(db["service_container"])["labels"].get(db["version_label"])
                for db in cfg["databases"]}
        changes = coming_schema_changes(cfg["databases"], cfg["upcoming_versions"], live)
    if changes:
        # Said whether or not the files changed too: the user learns why these dumps matter.
        result["messages"].append(
            (f"The files equal snapshot {stamp}, but " if not files_changed else "")
            + f"{', '.join(changes)} can change the database schema: a new snapshot holds dumps taken now.")
    if files_changed or changes:
        stamp = next_stamp(utc_stamp(now), snaps["dirs"])
        if stamp is None:
            raise Refusal(f"More than 99 snapshots within one second under {cfg['backup_dir']}; try again.")
        result.update(changed=True, created=True, diff=snapshot_diff(newest, state),
                      removed_partials=snaps["partials"])
        if not check_mode:
            manifest = write_snapshot(cfg, state, stamp, now, docker, snaps["partials"])
            manifests = [manifest] + manifests
    result["snapshot"] = stamp
    result["snapshot_dir"] = os.path.join(cfg["backup_dir"], stamp)
    # Retention: the current state's snapshot, the newest verified one and the one a rollback
    # would pick are never deleted (nor is anything while a restore journal is pending: see above).
    if check_mode and result["created"]:
        manifests = [{"stamp": stamp, "digest": state["digest"], "reason": cfg["reason"]}] + manifests
    keep_always = protected(manifests, stamp, state["digest"], cfg["verified_reason"])
    dirs = snaps["dirs"] + ([stamp] if result["created"] else [])
    victims = retention_victims(dirs, cfg["keep"], keep_always)
    beyond = sorted(set(dirs), reverse=True)[cfg["keep"]:]
    result["kept"] = {s: why for s, why in keep_always.items() if s in beyond}
    if victims:
        result.update(changed=True, deleted=victims)
        if not check_mode:
            for name in victims:
                shutil.rmtree(os.path.join(cfg["backup_dir"], name))
    return result


def write_snapshot(cfg, state, stamp, now, docker, partials):
    """Copy into <stamp>.partial, write the manifest last, rename: whole or not at all."""
    backup_dir = cfg["backup_dir"]
    os.makedirs(backup_dir, exist_ok=True)
    os.chmod(backup_dir, int(cfg["dir_mode"], 8))
    for name in partials:  # left by interrupted runs; never a snapshot
        shutil.rmtree(os.path.join(backup_dir, name))
    partial = os.path.join(backup_dir, stamp + ".partial")
    root = os.path.join(partial, "files")
    os.makedirs(root, mode=0o700)
    os.chmod(partial, 0o700)
    files = []
    for f in state["files"]:
        src = os.path.join(cfg["project_dir"], f["path"])
        dst = os.path.join(root, f["path"])
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            sha = copy_file(src, dst)
        except OSError as exc:
            raise Refusal(f"{f['path']} could not be copied into {partial} ({exc}); nothing was published.") from exc
        # The manifest describes the copies, so a file that changed mid-copy cannot make the
        # snapshot disagree with itself.
        files.append({"path": f["path"], "sha256": sha, "mode": mode_of(os.lstat(dst))})
    refs = compose_refs(cfg, root, [f["path"] for f in files])
    found = match_images(refs, docker.images(refs)) if refs else {}
    databases = dump_databases(cfg["databases"], partial, docker)
    manifest = {
        "format": 1, "stamp": stamp, "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": cfg["reason"],
        "project_dir": cfg["project_dir"], "compose_project": cfg["compose_project"],
        "digest": digest(files, state["links"]), "files": files, "links": state["links"],
        "dag_release": state["dag_release"], "dag_release_dir": state["release_dir"],
        "images": [found[r] for r in refs], "databases": databases,
    }
    write_json_atomically(os.path.join(partial, "manifest.json"), manifest)
    final = os.path.join(backup_dir, stamp)
    if os.path.lexists(final):
        raise Refusal(f"{final} appeared while the snapshot was written (another run?); try again.")
    os.rename(partial, final)  # rename(2) is atomic
    fsync_dir(backup_dir)
    return dict(manifest, stamp=stamp)


def dump_databases(databases, partial, docker):
    """Dump each running database into <partial>/databases/<name>.dump (0600); the manifest entries.

    Called only when a snapshot is published (the file digest decided it is due): database
    contents change all the time, so they never decide it. A container that is not running
    (the first converge) is recorded as not dumped, not an error; a dump that fails is.
    """
    entries = []
    for db in databases:
        app = docker.container(db["service_container"])
        entry = {"name": db["name"], "container": db["container"], "db": db["db"], "user": db["user"],
                 "version_label": db["version_label"], "version": app["labels"].get(db["version_label"]),
                 "file": None}
        if not docker.container(db["container"])["running"]:
            entries.append(dict(entry, note="not dumped: not running"))
            continue
        os.makedirs(os.path.join(partial, "databases"), mode=0o700, exist_ok=True)
        rel = f"databases/{db['name']}.dump"
        dst = os.path.join(partial, rel)
        # Created 0600 before the first byte: a dump holds every run, user and connection string.
        os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chmod(dst, 0o600)
        dumped_at = now_utc().strftime("%Y-%m-%dT%H:%M:%SZ")  # rows after this are what a restore discards
        # Counted before the dump: a row added in between makes a restore say one run too many, never too few.
        rows = docker.count(db, row_sql(db["name"])) if db["name"] in DISCARD_QUERIES else None
        docker.pg_dump(db, dst)
        entries.append(dict(entry, file=rel, size=os.path.getsize(dst), sha256=sha256_file(dst), mode="0600",
                            dumped_at=dumped_at, rows=rows if isinstance(rows, int) else None))
    return entries


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 -- targets may run Python 3.10


def list_snapshots(cfg):
    """state=list: the manifests, newest first, and a table marking the current state."""
    state = read_state(cfg)
    snaps = read_snapshots(cfg["backup_dir"])
    journal = read_journal(cfg["backup_dir"])
    def row(mark, stamp, reason, release, dig, images):
        return f"{mark:<1} {stamp:<19} {reason:<14} {release:<14} {dig:<12} {images}"
    lines = [row("", "stamp", "reason", "dag release", "digest", "images")]
    for entry in snaps["all"]:
        m = entry["manifest"]
        if m:
            images = " ".join(i["ref"].rsplit("/", 1)[-1] for i in m["images"]) or "-"
            lines.append(row("*" if m["digest"] == state["digest"] else "", entry["stamp"], m["reason"][:14],
                             (m["dag_release"] or "-")[:14], m["digest"][:12], images))
        else:
            lines.append(f"! {entry['stamp']:<19} unreadable: {entry['error']}")
    if state["empty"]:
        current = "is empty"
    elif state["digest"] in [m["digest"] for m in snaps["manifests"]]:
        current = "is marked *"
    else:
        current = f"matches no snapshot (digest {state['digest'][:12]})"
    lines = lines + [f"The current state under {cfg['project_dir']} {current}."] if snaps["all"] else \
        [f"No snapshots in {cfg['backup_dir']}."]
    if journal:
        lines.append("! " + journal_pending_message(cfg, journal, "its files are half-restored"))
    return {"changed": False, "snapshots": snaps["manifests"], "lines": lines, "journal": journal}


def journal_pending_message(cfg, journal, consequence):
    if not journal.get("stamp"):
        return (f"{os.path.join(cfg['backup_dir'], JOURNAL)} is left by an interrupted restore but cannot be read; "
                f"{consequence}. Restore a snapshot by name (rollback_to=<stamp>) to repair it.")
    reverse = f", or -e rollback_to={journal['before_stamp']} to reverse it" if journal.get("before_stamp") else ""
    return (f"An interrupted restore of snapshot {journal['stamp']} (started {journal.get('started', '?')}) left "
            f"{os.path.join(cfg['backup_dir'], JOURNAL)}: {consequence}. Run playbooks/rollback.yml (make rollback) "
            f"to finish it{reverse}.")


def validate_restore(cfg, state, snaps, journal, docker):
    """Pick the snapshot and prove it can be restored; every refusal happens here."""
    manifests = snaps["manifests"]
    if journal and not journal.get("stamp") and not cfg["restore_to"]:
        raise Refusal(journal_pending_message(cfg, journal, "which snapshot it was restoring is unknown"))
    stamp = pick_target(manifests, state["digest"], cfg["restore_to"], journal)
    if not stamp:
        equal = next((m["stamp"] for m in manifests if m["digest"] == state["digest"]), "?")
        raise Refusal(f"No snapshot to restore in {cfg['backup_dir']}: "
                      + ("there are no readable snapshots." if not manifests else
                         f"no snapshot older than {equal} (the current state) differs from it; "
                         "name one with backup_restore_to."))
    if stamp not in snaps["dirs"]:
        raise Refusal(f"Snapshot {stamp} not found in {cfg['backup_dir']}; available: "
                      f"{', '.join(snaps['dirs']) if snaps['dirs'] else 'none'}.")
    entry = next(e for e in snaps["all"] if e["stamp"] == stamp)
    if not entry["manifest"]:
        raise Refusal(f"Snapshot {stamp} is unusable, refusing to restore it: {entry['error']}")
    m = entry["manifest"]
    paths = [f["path"] for f in m["files"]]
    for glob in cfg["require_files"]:
        pattern = re.compile(re.escape(glob).replace(r"\*", "[^/]*") + "$")
        if not any(pattern.match(p) for p in paths):
            raise Refusal(f"Snapshot {stamp} ({m['reason']}) holds no {glob}, refusing to restore it: it was taken "
                          "before there was a platform to return to. Name another with backup_restore_to (list "
                          "them with backup_list / rollback_list=true).")
    src = os.path.join(cfg["backup_dir"], stamp, "files")
    bad = []
    for f in m["files"]:
        copy = os.path.join(src, f["path"])
        if not os.path.isfile(copy) or os.path.islink(copy):
            bad.append(f"{f['path']} (missing)")
        elif sha256_file(copy) != f["sha256"]:
            bad.append(f["path"])
    if bad:
        raise Refusal(f"Snapshot {stamp} is corrupt, refusing to restore it: these copies do not match their "
                      f"checksums in manifest.json: {', '.join(bad)}.")
    # Release directories are immutable (named by their id): the release's files come back
    # only when its directory is gone, which needs a copy in the snapshot.
    release = m.get("dag_release_dir") or ""
    release_missing = bool(release) and not (os.path.isdir(os.path.join(cfg["project_dir"], release))
                                             and not os.path.islink(os.path.join(cfg["project_dir"], release)))
    if release_missing and not any(p.startswith(release + "/") for p in paths):
        raise Refusal(f"Snapshot {stamp} points {cfg['dag_release_link']} at {release}, which no longer exists, and "
                      "the snapshot holds no copy of it (it was already gone when the snapshot was taken); restoring "
                      "would leave Airflow without DAGs.")
    current = {f["path"]: f for f in state["files"]}
    files = [f for f in m["files"]
             if (release_missing or not release or not f["path"].startswith(release + "/"))
             and (current.get(f["path"], {}).get("sha256") != f["sha256"]
                  or current.get(f["path"], {}).get("mode") != f["mode"])]
    # Fragments the snapshot lacks would be included again by the next compose_file run
    # (with images that may not even exist), so they move aside.
    displace = [f["path"] for f in state["files"] if is_fragment(cfg, f["path"]) and f["path"] not in paths]
    links = [link for link in m["links"] if not _link_is(cfg["project_dir"], link)]
    in_way, missing_dirs = obstacles(cfg["project_dir"], [f["path"] for f in files], [ln["path"] for ln in links])
    if in_way:
        raise Refusal(f"Snapshot {stamp} cannot be restored over what is there now: {', '.join(in_way)} (a directory "
                      "where the snapshot has a file, or a file where it needs a directory); move them away by hand "
                      "first.")
    # A rollback must not rebuild: every image the restored compose files name has to be here.
    if m["images"]:
        refs = [i["ref"] for i in m["images"]]
        running = docker.running_image_ids(cfg["compose_project"]) if cfg["compose_project"] else []
        live_refs = running or compose_refs(cfg, cfg["project_dir"], [f["path"] for f in state["files"]])
        found = match_images(sorted(set(refs + live_refs)), docker.images(sorted(set(refs + live_refs))))
        missing = [r for r in refs if "$" not in r and not found[r]["id"]]
        if missing:
            raise Refusal(f"Snapshot {stamp} needs images that are gone: {', '.join(missing)}. A rollback does not "
                          "rebuild; restore an older snapshot whose images exist, or rebuild them on purpose.")
        source = "running now" if running else "named by the current compose files"
        down = downgrades(cfg["refuse_downgrade_labels"], [found[r] for r in refs], [found[r] for r in live_refs], source)
        if down:
            raise Refusal(f"Snapshot {stamp} would downgrade a running component, refusing to restore it: "
                          f"{'; '.join(down)}. Airflow cannot downgrade its metadata database; pick a newer snapshot, "
                          "or set backup_restore_refuse_downgrade_labels=[] after restoring the database yourself.")
    return {"stamp": stamp, "manifest": m, "src": src, "files": files, "links": links, "displace": displace,
            "missing_dirs": missing_dirs, "databases": plan_databases(cfg, stamp, m, journal, docker)}


def plan_databases(cfg, stamp, manifest, journal, docker):
    """The databases this restore brings back (see databases_due), checked before any change."""
    configured = {db["name"]: db for db in cfg["databases"]}
    # Finishing an interrupted restore: the databases it had not restored yet. Reversing it
    # (another target): every database it meant to restore, restored ones included.
    journal = journal or {}
    pending = journal.get("databases") or []
    if journal.get("stamp") and journal["stamp"] != stamp:
        pending = journal.get("databases_planned") or pending
    if cfg["restore_databases"] == "never" and not pending or not configured and not pending:
        return []
    snap_dbs = [d for d in manifest.get("databases", []) if d["name"] in configured or d["name"] in pending]
    live = {name: docker.container(db["service_container"])["labels"].get(db["version_label"])
            for name, db in configured.items()}
    due = databases_due(cfg["restore_databases"], snap_dbs, live, pending, f"snapshot {stamp}")
    for d in due:
        if d["name"] not in configured:
            raise Refusal(f"The {d['name']} database must be restored ({d['why']}) but is not in backup_databases.")
        path = os.path.join(cfg["backup_dir"], stamp, d["file"])
        if not os.path.isfile(path) or sha256_file(path) != d["sha256"]:
            raise Refusal(f"Snapshot {stamp} is corrupt, refusing to restore it: its dump of the {d['name']} database "
                          f"({d['file']}) is missing or does not match its checksum in manifest.json.")
        if not docker.container(configured[d["name"]]["container"])["running"]:
            raise Refusal(f"The {d['name']} database must be restored ({d['why']}), but its container "
                          f"{configured[d['name']]['container']} is not running; start it (only it) and run again.")
    return due


def _link_is(root, link):
    path = os.path.join(root, link["path"])
    return os.path.islink(path) and os.readlink(path) == link["target"]


def obstacles(root, file_paths, link_paths):
    """(paths in the way, directories to create) for writing these files and links."""
    in_way, missing = [], set()
    for path in file_paths + link_paths:
        if os.path.isdir(os.path.join(root, path)) and not os.path.islink(os.path.join(root, path)):
            in_way.append(path)
    parents = set()
    for path in file_paths + link_paths:
        parent = posixpath.dirname(path)
        while parent:
            parents.add(parent)
            parent = posixpath.dirname(parent)
    for parent in sorted(parents):
        abs_parent = os.path.join(root, parent)
        if not os.path.lexists(abs_parent):
            missing.add(parent)
        elif not os.path.isdir(abs_parent):
            in_way.append(parent)
    return sorted(set(in_way)), sorted(missing)


def restore_diff(cfg, plan):
    diffs = []
    for f in plan["files"]:
        before_path = os.path.join(cfg["project_dir"], f["path"])
        after_path = os.path.join(plan["src"], f["path"])
        diffs.append({"before_header": f["path"], "after_header": f"{f['path']} ({plan['stamp']}, mode {f['mode']})",
                      "before": _text(before_path), "after": _text(after_path)})
    for link in plan["links"]:
        path = os.path.join(cfg["project_dir"], link["path"])
        before = f"{os.readlink(path)}\n" if os.path.islink(path) else ""
        diffs.append({"before_header": f"{link['path']} (symlink)", "after_header": f"{link['path']} (symlink)",
                      "before": before, "after": f"{link['target']}\n"})
    for path in plan["displace"]:
        diffs.append({"before_header": path, "after_header": f"{path} (moved aside)",
                      "before": _text(os.path.join(cfg["project_dir"], path)), "after": ""})
    return diffs


def _text(path, limit=65536):
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
        return data.decode("utf-8") if len(data) <= limit else "(larger than 64 KiB)\n"
    except (OSError, UnicodeDecodeError):
        return ""


def restore(cfg, check_mode, docker, now, copy=None):
    """state=restore: validate everything, then write only what differs, under a journal."""
    copy = copy or copy_file
    journal = read_journal(cfg["backup_dir"])
    state = read_state(cfg)
    snaps = read_snapshots(cfg["backup_dir"])
    plan = validate_restore(cfg, state, snaps, journal, docker)
    stamp = plan["stamp"]
    displaced_dir = os.path.join(cfg["backup_dir"], f"{stamp}-displaced-{utc_stamp(now)}") if plan["displace"] else ""
    work = plan["files"] or plan["links"] or plan["displace"] or plan["missing_dirs"]
    configured = {db["name"]: db for db in cfg["databases"]}
    for d in plan["databases"]:  # counted before anything changes, so the caller can say it first
        d["counted"], d["discards"] = count_discards(docker, configured[d["name"]], d)
    result = {"changed": bool(work) or bool(journal) or bool(plan["databases"]),
              "restored": bool(work) or bool(journal) or bool(plan["databases"]), "restored_from": stamp,
              "databases": [{k: d[k] for k in ("name", "why", "counted", "discards", "dumped_at")}
                            for d in plan["databases"]],
              "databases_message": discard_message(stamp, plan["databases"]),
              "displaced": plan["displace"], "displaced_dir": displaced_dir,
              "images": [i["ref"] for i in plan["manifest"]["images"]],
              "release": plan["manifest"].get("dag_release"),
              "files": [f["path"] for f in plan["files"]], "links": [ln["path"] for ln in plan["links"]],
              "resumed": journal, "diff": restore_diff(cfg, plan)}
    if check_mode:
        return result
    if journal:  # a run killed mid-write leaves its temporary beside the file it was replacing
        for rel in journal.get("files", []) + journal.get("links", []):
            tmp = temp_path(os.path.join(cfg["project_dir"], rel))
            if safe_path(rel) and os.path.lexists(tmp):
                os.unlink(tmp)
    if work or plan["databases"]:
        # Written before the first change, removed after the last: a run killed in between
        # leaves it, and the next restore finishes the job instead of trusting the half-way state.
        before_stamp = next((mm["stamp"] for mm in snaps["manifests"] if mm["digest"] == state["digest"]), "")
        if journal and journal.get("before_stamp"):
            before_stamp = journal["before_stamp"]  # the state before the first, interrupted attempt
        write_json_atomically(os.path.join(cfg["backup_dir"], JOURNAL), {
            "format": 1, "stamp": stamp, "started": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "before_digest": state["digest"], "before_stamp": before_stamp,
            "files": result["files"], "links": result["links"], "displace": plan["displace"],
            "displaced_dir": displaced_dir, "databases": [d["name"] for d in plan["databases"]],
            "databases_planned": [d["name"] for d in plan["databases"]]})
        apply_restore(cfg, plan, displaced_dir, copy)
    if plan["databases"]:
        return result  # the journal stays until state=restore_databases has restored them
    if journal or work:
        os.unlink(os.path.join(cfg["backup_dir"], JOURNAL))
        fsync_dir(cfg["backup_dir"])
    return result


def restore_databases(cfg, check_mode, docker):
    """state=restore_databases: restore the dumps the journal lists, then remove the journal.

    Runs after state=restore and after the caller stopped the services that use the
    databases. Each database leaves the journal's list once restored (pg_restore runs in one
    transaction), so a run killed here is finished by the next rollback.
    """
    journal = read_journal(cfg["backup_dir"])
    pending = list((journal or {}).get("databases") or [])
    result = {"changed": bool(pending), "restored_databases": pending}
    if not pending or check_mode:
        return result
    snaps = read_snapshots(cfg["backup_dir"])
    manifest = next((m for m in snaps["manifests"] if m["stamp"] == journal["stamp"]), None)
    if manifest is None:
        raise Refusal(f"The restore journal names snapshot {journal['stamp']}, which is gone or unreadable.")
    configured = {db["name"]: db for db in cfg["databases"]}
    entries = {d["name"]: d for d in manifest.get("databases", [])}
    path = os.path.join(cfg["backup_dir"], JOURNAL)
    for name in pending:
        entry, db = entries.get(name), configured.get(name)
        if not entry or not entry.get("file") or not db:
            raise Refusal(f"The restore journal lists the {name} database, but snapshot {journal['stamp']} holds no "
                          "dump of it or backup_databases does not name it.")
        src = os.path.join(cfg["backup_dir"], journal["stamp"], entry["file"])
        if sha256_file(src) != entry["sha256"]:
            raise Refusal(f"{src} does not match its checksum in manifest.json; not restoring it.")
        docker.pg_restore(db, src)
        journal["databases"] = [n for n in journal["databases"] if n != name]
        write_json_atomically(path, journal)
    os.unlink(path)
    fsync_dir(cfg["backup_dir"])
    return result


def temp_path(dst):
    return os.path.join(os.path.dirname(dst), f".{os.path.basename(dst)}.restoring")


def apply_restore(cfg, plan, displaced_dir, copy):
    root = cfg["project_dir"]
    for rel in plan["missing_dirs"]:
        os.makedirs(os.path.join(root, rel), exist_ok=True)
        os.chmod(os.path.join(root, rel), 0o755)
    for f in plan["files"]:
        dst = os.path.join(root, f["path"])
        tmp = temp_path(dst)
        copy(os.path.join(plan["src"], f["path"]), tmp)
        os.chmod(tmp, int(f["mode"], 8))
        os.replace(tmp, dst)  # atomic per file: a reader sees the old or the new content
    for link in plan["links"]:
        dst = os.path.join(root, link["path"])
        tmp = temp_path(dst)
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(link["target"], tmp)  # also when the target is missing: the snapshot recorded it that way
        os.replace(tmp, dst)
    for rel in plan["displace"]:
        dst = os.path.join(displaced_dir, rel)
        os.makedirs(os.path.dirname(dst), mode=0o700, exist_ok=True)
        shutil.move(os.path.join(root, rel), dst)


# -------------------------------------------------------------------------------- main


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["snapshot", "list", "restore", "restore_databases"],
                      "default": "snapshot"},
            "project_dir": {"type": "path", "required": True},
            "backup_dir": {"type": "path", "required": True},
            "dir_mode": {"type": "str", "default": "0700"},
            "paths": {"type": "list", "elements": "str", "required": True},
            "dag_release_link": {"type": "str", "required": True},
            "compose_file": {"type": "str", "required": True},
            "compose_dir": {"type": "str", "required": True},
            "never_paths": {"type": "list", "elements": "str", "default": []},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "max_file_size": {"type": "int", "default": 10485760},
            "reason": {"type": "str", "default": "manual"},
            "keep": {"type": "int", "default": 10},
            "verified_reason": {"type": "str", "default": "post-converge"},
            "compose_project": {"type": "str", "default": ""},
            "restore_to": {"type": "str", "default": ""},
            "require_files": {"type": "list", "elements": "str", "default": []},
            "refuse_downgrade_labels": {"type": "list", "elements": "str", "default": []},
            "databases": {"type": "list", "elements": "dict", "default": []},
            "restore_databases": {"type": "str", "choices": ["auto", "always", "never"], "default": "auto"},
            "upcoming_versions": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    cfg = dict(module.params)
    errors = input_errors(cfg)
    if errors:
        module.fail_json(msg=" ".join(errors), errors=errors)
    now = now_utc()
    docker = DockerCli(module)
    try:
        if cfg["state"] == "snapshot":
            result = take_snapshot(cfg, module.check_mode, docker, now)
        elif cfg["state"] == "list":
            result = list_snapshots(cfg)
        elif cfg["state"] == "restore_databases":
            result = restore_databases(cfg, module.check_mode, docker)
        else:
            result = restore(cfg, module.check_mode, docker, now)
            if result["resumed"]:
                module.warn(f"An interrupted restore of {result['resumed'].get('stamp') or '?'} was pending; "
                            f"restoring {result['restored_from']} completes it.")
    except Refusal as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
