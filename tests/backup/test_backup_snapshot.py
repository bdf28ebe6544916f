"""The backup module end to end on tmp_path: snapshot, list, restore, every refusal, check
mode, retention and the restore journal.

The module's actions run for real on a project tree under tmp_path; only the Docker
engine is replaced, by a table of what `docker image inspect` / `docker ps` would answer
(the CLI path runs against the real engine in the molecule `backup` scenario).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from role_code import load

backup = load("backup/library/backup_snapshot.py")

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
IMAGE_A = {"Id": "sha256:" + "a" * 64, "RepoTags": ["lt-test/label:a"], "RepoDigests": [],
           "Config": {"Labels": {"org.apache.airflow.version": "3.3.2"}}}
IMAGE_B = {"Id": "sha256:" + "b" * 64, "RepoTags": ["lt-test/label:b"], "RepoDigests": [],
           "Config": {"Labels": {"org.apache.airflow.version": "3.4.0"}}}
BASE = {"Id": "sha256:" + "c" * 64, "RepoTags": ["debian:bookworm-slim"], "RepoDigests": [], "Config": {"Labels": None}}


class Engine:
    """What the engine holds: `docker image inspect` objects and running containers' image ids."""

    def __init__(self, images=(IMAGE_A, IMAGE_B, BASE), running=()):
        self.inspected = list(images)
        self.running = list(running)

    def images(self, refs):
        return self.inspected

    def running_image_ids(self, project):
        return self.running


def at(seconds: int) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def write(root: Path, rel: str, content: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(mode)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def make_project(tmp_path: Path) -> Path:
    """State A of a project: what the roles write, plus what a snapshot must leave out."""
    root = tmp_path / "project"
    write(root, "docker-compose-mlops.yml", "include:\n  - compose/airflow.yml\n  - compose/mlflow.yml\n")
    write(root, "compose/airflow.yml", "services:\n  airflow-worker: {image: 'lt-test/label:a', cpus: 2}\n")
    write(root, "compose/mlflow.yml", "services:\n  mlflow: {image: 'debian:bookworm-slim'}\n")
    write(root, "requirements-airflow.txt", "apache-airflow==3.3.2\n")
    write(root, "build/airflow-worker/Dockerfile", "FROM debian:bookworm-slim\n")
    write(root, "build/airflow-worker/entrypoint.sh", "#!/bin/sh\nexec \"$@\"\n", 0o755)
    write(root, "build/airflow-worker/__pycache__/x.cpython-311.pyc", "cache\n")
    write(root, "build/wheelhouse-worker/xgboost_cpu-3.2.0-py3-none-any.whl", "wheel\n")
    write(root, "dag-releases/r1/xgboost_pipeline_dag.py", '"""XGBoost pipeline."""\n')
    write(root, "dag-releases/r1/.airflowignore", "mlops_training/\n")
    write(root, "secrets/airflow_jwt_secret", "not-a-real-secret\n", 0o600)
    write(root, "data/mnist.txt", "digits\n")
    os.symlink("r1", root / "dag-releases/current")
    return root


def config(root: Path, **changes: object) -> dict:
    cfg = {
        "state": "snapshot", "project_dir": str(root), "backup_dir": str(root / "backups"), "dir_mode": "0700",
        "paths": ["docker-compose-mlops.yml", "compose", "requirements-airflow.txt", "build"],
        "dag_release_link": "dag-releases/current", "compose_file": "docker-compose-mlops.yml",
        "compose_dir": "compose", "never_paths": ["secrets", "data", "quarantine", "backups"],
        "exclude": ["wheelhouse*", "*.whl", "__pycache__", "*.pyc", ".git"], "max_file_size": 10485760,
        "reason": "post-converge", "keep": 10, "verified_reason": "post-converge", "compose_project": "lt-test",
        "restore_to": "", "require_files": [], "refuse_downgrade_labels": ["org.apache.airflow.version"],
        "databases": [], "restore_databases": "auto", "upcoming_versions": {},
    }
    cfg.update(changes)
    return cfg


def snap(root: Path, seconds: int = 0, check: bool = False, engine: Engine | None = None, **changes: object) -> dict:
    return backup.take_snapshot(config(root, **changes), check, engine or Engine(), at(seconds))


def restore(root: Path, seconds: int = 100, check: bool = False, engine: Engine | None = None, **changes: object):
    return backup.restore(config(root, **changes), check, engine or Engine(), at(seconds))


def manifest_of(root: Path, stamp: str) -> dict:
    return json.loads((root / "backups" / stamp / "manifest.json").read_text())


def tree(root: Path) -> dict:
    """Every path under root with its content hash or link target (what check mode must not change)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() + f" {stat.S_IMODE(path.stat().st_mode):o}"
        else:
            out[rel] = "dir"
    return out


def change_to_b(root: Path) -> None:
    """The execution plan's change: requirements, worker resources, a new DAG release."""
    write(root, "requirements-airflow.txt", "apache-airflow==3.3.2\nxgboost-cpu==3.2.0\n")
    write(root, "compose/airflow.yml", "services:\n  airflow-worker: {image: 'lt-test/label:a', cpus: 6}\n")
    write(root, "dag-releases/r2/lightgbm_pipeline_dag.py", '"""LightGBM pipeline."""\n')
    os.unlink(root / "dag-releases/current")
    os.symlink("r2", root / "dag-releases/current")


# ----------------------------------------------------------------------------- snapshot


def test_first_snapshot_holds_the_managed_files_and_nothing_else(project: Path) -> None:
    result = snap(project)
    assert result["created"] and result["changed"]
    assert result["snapshot"] == "20260101T120000Z"
    assert result["snapshot_dir"] == str(project / "backups/20260101T120000Z")
    m = manifest_of(project, result["snapshot"])
    assert [f["path"] for f in m["files"]] == [
        "build/airflow-worker/Dockerfile", "build/airflow-worker/entrypoint.sh", "compose/airflow.yml",
        "compose/mlflow.yml", "dag-releases/r1/.airflowignore", "dag-releases/r1/xgboost_pipeline_dag.py",
        "docker-compose-mlops.yml", "requirements-airflow.txt"]
    assert next(f for f in m["files"] if f["path"].endswith("entrypoint.sh"))["mode"] == "0755"
    assert m["links"] == [{"path": "dag-releases/current", "target": "r1"}]
    assert (m["dag_release"], m["dag_release_dir"], m["reason"]) == ("r1", "dag-releases/r1", "post-converge")
    assert m["created"] == "2026-01-01T12:00:00Z" and m["format"] == 1
    assert m["digest"] == backup.digest(m["files"], m["links"])
    assert backup.parse_manifest(json.dumps(m))["error"] == ""
    assert m["images"] == [
        {"ref": "debian:bookworm-slim", "id": BASE["Id"], "labels": {}},
        {"ref": "lt-test/label:a", "id": IMAGE_A["Id"], "labels": {"org.apache.airflow.version": "3.3.2"}}]
    copy = project / "backups/20260101T120000Z/files/requirements-airflow.txt"
    assert copy.read_text() == "apache-airflow==3.3.2\n"
    assert stat.S_IMODE((project / "backups").stat().st_mode) == 0o700
    assert stat.S_IMODE((project / "backups/20260101T120000Z/manifest.json").stat().st_mode) == 0o600
    assert not list((project / "backups").glob("*.partial"))


def test_an_unchanged_state_takes_no_second_snapshot(project: Path) -> None:
    first = snap(project)
    again = snap(project, 60, reason="pre-change")
    assert not again["changed"] and not again["created"]
    assert again["snapshot"] == first["snapshot"]
    assert sorted(os.listdir(project / "backups")) == [first["snapshot"]]


def test_a_mode_change_alone_takes_no_snapshot(project: Path) -> None:
    first = snap(project)
    (project / "requirements-airflow.txt").chmod(0o600)
    assert snap(project, 60)["snapshot"] == first["snapshot"]


@pytest.mark.parametrize("change", [
    lambda r: write(r, "requirements-airflow.txt", "x\n"),
    lambda r: write(r, "compose/new.yml", "services: {}\n"),
    lambda r: (os.unlink(r / "dag-releases/current"), os.symlink("r0", r / "dag-releases/current")),
    lambda r: os.unlink(r / "build/airflow-worker/Dockerfile"),
])
def test_any_content_link_or_file_set_change_takes_a_newer_snapshot(project: Path, change) -> None:
    first = snap(project)
    change(project)
    second = snap(project, 60)
    assert second["created"] and second["snapshot"] > first["snapshot"]


def test_excluded_files_and_never_paths_do_not_count(project: Path) -> None:
    first = snap(project)
    write(project, "build/wheelhouse-worker/torch.whl", "big wheel\n")
    write(project, "build/airflow-worker/__pycache__/y.pyc", "cache\n")
    write(project, "secrets/other", "s\n")
    assert not snap(project, 60)["created"] and snap(project, 60)["snapshot"] == first["snapshot"]


def test_a_first_run_has_nothing_to_snapshot(tmp_path: Path) -> None:
    root = tmp_path / "nothing-yet"
    result = snap(root)
    assert result == {"changed": False, "created": False, "snapshot": "", "snapshot_dir": "", "deleted": [],
                      "removed_partials": [], "kept": {}, "messages": [result["messages"][0]]}
    assert "Nothing to snapshot" in result["messages"][0]
    assert not root.exists()


def test_check_mode_reports_the_snapshot_and_writes_nothing(project: Path) -> None:
    before = tree(project)
    result = snap(project, check=True)
    assert result["changed"] and result["created"] and result["snapshot"] == "20260101T120000Z"
    assert "requirements-airflow.txt" in result["diff"]["after"] and result["diff"]["before"] == ""
    assert tree(project) == before


def test_check_mode_diff_shows_what_changed_since_the_newest_snapshot(project: Path) -> None:
    snap(project)
    write(project, "requirements-airflow.txt", "apache-airflow==3.3.2\nlightgbm==4.7.0\n")
    before = tree(project)
    diff = snap(project, 60, check=True)["diff"]
    changed = set(diff["before"].splitlines()) ^ set(diff["after"].splitlines())
    assert {line.split()[-1] for line in changed} == {"requirements-airflow.txt"}
    assert tree(project) == before


def test_two_snapshots_in_one_second_get_distinct_stamps_that_sort(project: Path) -> None:
    first = snap(project)
    write(project, "requirements-airflow.txt", "x\n")
    second = snap(project)  # same second
    assert second["snapshot"] == "20260101T120000Z-01" > first["snapshot"]


def test_a_clock_that_stepped_back_still_gives_a_newer_stamp(project: Path) -> None:
    first = snap(project, 3600)
    write(project, "requirements-airflow.txt", "x\n")
    second = snap(project, 0)
    assert second["snapshot"] == "20260101T130000Z-01" > first["snapshot"]


@pytest.mark.parametrize(("now", "dirs", "expected"), [
    ("20260101T120000Z", [], "20260101T120000Z"),
    ("20260101T120000Z", ["20260101T120000Z"], "20260101T120000Z-01"),
    # X was deleted but X-03 exists: X-01 would sort before the newest snapshot.
    ("20260101T120000Z", ["20260101T120000Z-03"], "20260101T120000Z-04"),
    ("20260101T110000Z", ["20260101T120000Z"], "20260101T120000Z-01"),
    ("20260101T120001Z", ["20260101T120000Z-07"], "20260101T120001Z"),
    ("20260101T120000Z", ["20260101T120000Z"] + [f"20260101T120000Z-{i:02d}" for i in range(1, 100)], None),
])
def test_next_stamp_never_sorts_before_the_newest(now: str, dirs: list, expected) -> None:
    assert backup.next_stamp(now, dirs) == expected


def test_a_half_written_snapshot_is_never_one_and_is_cleared_by_the_next(project: Path) -> None:
    (project / "backups/20251231T000000Z.partial/files").mkdir(parents=True)
    assert backup.read_snapshots(str(project / "backups"))["dirs"] == []
    result = snap(project)
    assert result["removed_partials"] == ["20251231T000000Z.partial"]
    assert sorted(os.listdir(project / "backups")) == ["20260101T120000Z"]


def test_a_newest_snapshot_whose_manifest_is_unreadable_is_replaced(project: Path) -> None:
    first = snap(project)
    (project / "backups" / first["snapshot"] / "manifest.json").write_text("{broken")
    assert snap(project, 60)["created"]


def test_a_managed_file_too_big_stops_the_snapshot(project: Path) -> None:
    write(project, "build/airflow-worker/model.bin", "x" * 2000)
    with pytest.raises(backup.Refusal, match=r"bigger than backup_max_file_size \(1000 bytes\): .*model.bin"):
        snap(project, max_file_size=1000)
    assert not (project / "backups").exists()


# ------------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(("changes", "message"), [
    ({"paths": ["compose", "secrets/airflow_jwt_secret"]}, "secrets/airflow_jwt_secret / secrets"),
    ({"paths": ["."]}, "must be non-empty paths relative to backup_project_dir"),
    ({"paths": ["../etc"]}, "must be non-empty paths relative to backup_project_dir"),
    ({"paths": []}, "must be non-empty paths relative to backup_project_dir"),
    ({"dag_release_link": "/srv/current"}, "must be non-empty paths relative to backup_project_dir"),
    ({"restore_to": "yesterday"}, "backup_restore_to must be empty or a snapshot stamp"),
    ({"reason": "two words"}, "backup_reason must be one word"),
    ({"dir_mode": "700"}, 'backup_dir_mode must be an octal string like "0700"'),
    ({"keep": 0}, "backup_keep and backup_max_file_size must be at least 1"),
    ({"backup_dir": "backups"}, "must be absolute"),
    ({"paths": ["compose", "backups/x"], "never_paths": []}, "backups/x / backups"),
])
def test_every_input_rule_has_its_message(tmp_path: Path, changes: dict, message: str) -> None:
    errors = backup.input_errors(config(tmp_path, **changes))
    assert len(errors) == 1 and message in errors[0]


def test_good_inputs_pass(tmp_path: Path) -> None:
    assert backup.input_errors(config(tmp_path)) == []


# --------------------------------------------------------------------------------- list


def test_list_marks_the_current_state_and_unreadable_snapshots(project: Path) -> None:
    a = snap(project)["snapshot"]
    change_to_b(project)
    b = snap(project, 60)["snapshot"]
    (project / "backups/20251231T000000Z").mkdir()
    listed = backup.list_snapshots(config(project))
    assert [m["stamp"] for m in listed["snapshots"]] == [b, a]
    assert listed["snapshots"][0]["dag_release"] == "r2"
    lines = listed["lines"]
    assert lines[1].startswith("* " + b) and "post-converge" in lines[1] and "label:a" in lines[1]
    assert lines[2].startswith("  " + a)
    assert lines[3].startswith("! 20251231T000000Z") and "unreadable" in lines[3]
    assert lines[-1] == f"The current state under {project} is marked *."
    write(project, "requirements-airflow.txt", "x\n")
    assert "matches no snapshot" in backup.list_snapshots(config(project))["lines"][-1]


def test_list_without_snapshots(project: Path) -> None:
    assert backup.list_snapshots(config(project))["lines"] == [f"No snapshots in {project / 'backups'}."]


# ------------------------------------------------------------------------------ restore


@pytest.fixture
def a_and_b(project: Path) -> tuple[Path, str, str]:
    """Snapshot A, the change to B, snapshot B: the current state is B."""
    a = snap(project)["snapshot"]
    change_to_b(project)
    b = snap(project, 60)["snapshot"]
    return project, a, b


def test_restore_brings_back_the_state_before_this_one(a_and_b) -> None:
    root, a, _ = a_and_b
    result = restore(root)
    assert result["restored"] and result["restored_from"] == a
    assert result["displaced"] == [] and result["displaced_dir"] == ""
    assert result["images"] == ["debian:bookworm-slim", "lt-test/label:a"]
    assert result["release"] == "r1"  # what the worker hosts follow
    state = backup.read_state(config(root))
    assert state["digest"] == manifest_of(root, a)["digest"]
    assert {f["path"]: f["mode"] for f in state["files"]} == {f["path"]: f["mode"] for f in manifest_of(root, a)["files"]}
    assert os.readlink(root / "dag-releases/current") == "r1"
    assert (root / "dag-releases/r2/lightgbm_pipeline_dag.py").exists()  # never deletes a release
    assert not (root / "backups" / backup.JOURNAL).exists()


def test_a_second_restore_of_the_same_snapshot_changes_nothing(a_and_b) -> None:
    root, a, _ = a_and_b
    restore(root)
    again = restore(root, restore_to=a)
    assert not again["restored"] and not again["changed"] and again["restored_from"] == a


def test_restore_reapplies_modes(a_and_b) -> None:
    root, a, _ = a_and_b
    restore(root)
    (root / "build/airflow-worker/entrypoint.sh").chmod(0o644)
    assert restore(root, restore_to=a)["files"] == ["build/airflow-worker/entrypoint.sh"]
    assert stat.S_IMODE((root / "build/airflow-worker/entrypoint.sh").stat().st_mode) == 0o755


def test_check_mode_restore_reports_and_changes_nothing(a_and_b) -> None:
    root, a, _ = a_and_b
    before = tree(root)
    result = restore(root, check=True)
    assert result["restored"] and result["restored_from"] == a
    assert "requirements-airflow.txt" in result["files"] and result["links"] == ["dag-releases/current"]
    req = next(d for d in result["diff"] if d["before_header"] == "requirements-airflow.txt")
    assert "xgboost-cpu" in req["before"] and "xgboost-cpu" not in req["after"]
    assert tree(root) == before


def test_compose_fragments_the_snapshot_lacks_move_aside_and_others_stay(a_and_b) -> None:
    root, _, b = a_and_b
    write(root, "compose/extra.yml", "services:\n  extra: {image: 'lt-test/label:a'}\n")
    write(root, "build/new-image/Dockerfile", "FROM x\n")
    result = restore(root, restore_to=b)
    assert result["displaced"] == ["compose/extra.yml"]
    assert result["displaced_dir"] == str(root / f"backups/{b}-displaced-20260101T120140Z")
    assert (Path(result["displaced_dir"]) / "compose/extra.yml").exists()
    assert not (root / "compose/extra.yml").exists()
    assert (root / "build/new-image/Dockerfile").exists()


def test_a_pruned_dag_release_comes_back_from_the_snapshot(a_and_b) -> None:
    root, a, _ = a_and_b
    for f in (root / "dag-releases/r1").iterdir():
        f.unlink()
    (root / "dag-releases/r1").rmdir()
    result = restore(root)
    assert "dag-releases/r1/xgboost_pipeline_dag.py" in result["files"]
    assert (root / "dag-releases/r1/xgboost_pipeline_dag.py").read_text() == '"""XGBoost pipeline."""\n'
    assert backup.read_state(config(root))["digest"] == manifest_of(root, a)["digest"]


def test_an_existing_release_directory_is_not_rewritten(a_and_b) -> None:
    root, _, _ = a_and_b
    write(root, "dag-releases/r1/xgboost_pipeline_dag.py", "# edited by hand\n")
    result = restore(root)
    assert not [p for p in result["files"] if p.startswith("dag-releases/")]
    assert (root / "dag-releases/r1/xgboost_pipeline_dag.py").read_text() == "# edited by hand\n"


# ----------------------------------------------------------------------------- refusals


def refused(root: Path, match: str, **changes: object) -> None:
    before = tree(root)
    with pytest.raises(backup.Refusal, match=match):
        restore(root, **changes)
    assert tree(root) == before, "a refused restore changed files"


def test_an_unknown_stamp_is_refused_naming_the_available_ones(a_and_b) -> None:
    root, a, b = a_and_b
    refused(root, f"Snapshot 20000101T000000Z not found in .*; available: {b}, {a}\\.", restore_to="20000101T000000Z")


def test_no_snapshots_at_all_is_refused(project: Path) -> None:
    refused(project, "No snapshot to restore in .*: there are no readable snapshots.")


def test_no_older_differing_snapshot_is_refused(project: Path) -> None:
    a = snap(project)["snapshot"]
    refused(project, f"no snapshot older than {a} \\(the current state\\) differs from it; name one with backup_restore_to")


def test_a_corrupt_copy_is_refused_naming_it(a_and_b) -> None:
    root, _, b = a_and_b
    restore(root)
    write(root, f"backups/{b}/files/requirements-airflow.txt", "apache-airflow==2.0.0\n")
    refused(root, f"Snapshot {b} is corrupt, refusing to restore it: .*: requirements-airflow.txt\\.", restore_to=b)


def test_a_missing_copy_is_refused(a_and_b) -> None:
    root, _, b = a_and_b
    restore(root)
    os.unlink(root / f"backups/{b}/files/compose/airflow.yml")
    refused(root, r"is corrupt, .*compose/airflow.yml \(missing\)", restore_to=b)


def test_an_unusable_manifest_is_refused_with_its_reason(a_and_b) -> None:
    root, a, _ = a_and_b
    m = manifest_of(root, a)
    m["files"][0]["sha256"] = "0" * 64
    (root / f"backups/{a}/manifest.json").write_text(json.dumps(m))
    refused(root, f"Snapshot {a} is unusable, refusing to restore it: manifest.json does not match its own digest",
            restore_to=a)


def test_a_snapshot_without_the_required_files_is_refused(project: Path) -> None:
    for f in (project / "compose").iterdir():
        f.unlink()
    early = snap(project, reason="pre-change")["snapshot"]
    write(project, "compose/airflow.yml", "services: {}\n")
    snap(project, 60)
    refused(project, f"Snapshot {early} \\(pre-change\\) holds no compose/\\*.yml, refusing to restore it: it was taken "
                     "before there was a platform", require_files=["compose/*.yml"])
    assert restore(project, restore_to=early, require_files=["docker-compose-mlops.yml"])["restored"]


def test_a_release_gone_everywhere_is_refused(project: Path) -> None:
    os.unlink(project / "dag-releases/current")
    os.symlink("r9", project / "dag-releases/current")  # dangling: the release was pruned before the snapshot
    gone = snap(project)["snapshot"]
    os.unlink(project / "dag-releases/current")
    os.symlink("r1", project / "dag-releases/current")
    snap(project, 60)
    refused(project, f"Snapshot {gone} points dag-releases/current at dag-releases/r9, which no longer exists, and the "
                     "snapshot holds no copy of it")


def test_a_directory_where_a_file_belongs_is_refused(a_and_b) -> None:
    root, _, _ = a_and_b
    os.unlink(root / "requirements-airflow.txt")
    (root / "requirements-airflow.txt").mkdir()
    refused(root, r"cannot be restored over what is there now: requirements-airflow.txt \(a directory where")


def test_a_file_where_a_directory_belongs_is_refused(a_and_b) -> None:
    root, _, _ = a_and_b
    for f in (root / "dag-releases/r1").iterdir():
        f.unlink()
    (root / "dag-releases/r1").rmdir()
    (root / "dag-releases/r1").write_text("not a directory\n")
    refused(root, "cannot be restored over what is there now: dag-releases/r1 ")


def test_a_snapshot_whose_image_is_gone_is_refused(a_and_b) -> None:
    root, a, _ = a_and_b
    refused(root, f"Snapshot {a} needs images that are gone: lt-test/label:a. A rollback does not rebuild",
            engine=Engine(images=[BASE]))


def test_a_downgrade_below_the_running_image_is_refused(a_and_b) -> None:
    root, a, _ = a_and_b
    refused(root, f"Snapshot {a} would downgrade a running component, refusing to restore it: "
                  "org.apache.airflow.version 3.3.2 in lt-test/label:a < 3.4.0 in image bbbbbbbbbbbb \\(running now\\)",
            engine=Engine(running=[IMAGE_B["Id"], BASE["Id"]]))


def test_a_downgrade_below_the_compose_files_is_refused_when_nothing_runs(a_and_b) -> None:
    root, a, _ = a_and_b
    write(root, "compose/airflow.yml", "services:\n  airflow-worker: {image: 'lt-test/label:b'}\n")
    refused(root, "org.apache.airflow.version 3.3.2 in lt-test/label:a < 3.4.0 in lt-test/label:b "
                  "\\(named by the current compose files\\)", restore_to=a)
    assert restore(root, restore_to=a, refuse_downgrade_labels=[])["restored"]


def test_an_upgrade_or_an_unlabelled_image_is_not_a_downgrade(a_and_b) -> None:
    root, _, _ = a_and_b
    assert restore(root, engine=Engine(running=[BASE["Id"]]))["restored"]


@pytest.mark.parametrize(("low", "high"), [
    ("3.3.2", "3.4.0"), ("3.3", "3.3.1"), ("3.4.0rc1", "3.4.0"), ("3.4.0a2", "3.4.0b1"),
    ("3.4.0.dev1", "3.4.0a1"), ("3.4.0", "3.4.0.post1"), ("2.10.0", "3.0.0"), ("3.9", "3.10"),
])
def test_versions_compare_as_pep_440(low: str, high: str) -> None:
    assert backup.version_key(low) < backup.version_key(high)


def test_equal_versions_and_trailing_zeros_compare_equal() -> None:
    assert backup.version_key("3.3") == backup.version_key("3.3.0") == backup.version_key("3.3.0+local")


def test_images_match_as_the_engine_names_them() -> None:
    inspected = [{"Id": "sha256:1", "RepoTags": ["redis:latest", "lt/w:1"], "RepoDigests": ["pg@sha256:2"],
                  "Config": {"Labels": {"k": "v"}}}]
    found = backup.match_images(["docker.io/library/redis", "lt/w:1", "pg@sha256:2", "sha256:1", "lt/w:2"], inspected)
    assert [found[r]["id"] for r in found] == ["sha256:1", "sha256:1", "sha256:1", "sha256:1", None]
    assert found["lt/w:1"]["labels"] == {"k": "v"} and found["lt/w:2"]["labels"] == {}


# ---------------------------------------------------------------------------- retention


def states(root: Path, n: int, reasons=None) -> list:
    """n snapshots of n different states, one minute apart; returns their stamps, oldest first."""
    stamps = []
    for i in range(n):
        write(root, "requirements-airflow.txt", f"state {i}\n")
        reason = (reasons or ["post-converge"] * n)[i]
        stamps.append(snap(root, 60 * i, reason=reason, keep=100)["snapshot"])
    return stamps


def left(root: Path) -> list:
    return sorted(n for n in os.listdir(root / "backups") if backup.STAMP_RE.match(n))


def test_retention_keeps_the_newest(project: Path) -> None:
    s = states(project, 5)
    result = snap(project, 999, keep=2)
    # The rollback would pick s[3] (the state before this one): among the newest two anyway.
    assert result["deleted"] == [s[2], s[1], s[0]] and left(project) == s[3:]


def test_retention_never_deletes_the_newest_verified_snapshot(project: Path) -> None:
    s = states(project, 4, reasons=["post-converge", "post-converge", "pre-change", "pre-change"])
    snap(project, 999, keep=1)
    assert left(project) == [s[1], s[2], s[3]]  # s[3] current, s[2] rollback pick, s[1] verified


def test_retention_never_deletes_the_one_a_rollback_would_pick(project: Path) -> None:
    s = states(project, 3, reasons=["pre-change"] * 3)
    result = snap(project, 999, keep=1)
    assert result["deleted"] == [s[0]] and left(project) == [s[1], s[2]]
    assert result["kept"] == {s[1]: "the one a rollback would pick"}
    assert restore(project)["restored_from"] == s[1]


def test_protected_names_each_rule() -> None:
    manifests = [{"stamp": "s4", "digest": "d4", "reason": "pre-change"},
                 {"stamp": "s3", "digest": "d3", "reason": "pre-change"},
                 {"stamp": "s2", "digest": "d4", "reason": "manual"},
                 {"stamp": "s1", "digest": "d1", "reason": "pre-change"},
                 {"stamp": "s0", "digest": "d0", "reason": "post-converge"}]
    assert backup.protected(manifests, "s4", "d4", "post-converge") == {
        "s4": "equal to the current state", "s0": "newest post-converge snapshot", "s3": "the one a rollback would pick"}
    assert backup.retention_victims(["s0", "s1", "s2", "s3", "s4"], 1, {"s4", "s0", "s3"}) == ["s2", "s1"]


def test_check_mode_retention_reports_and_deletes_nothing(project: Path) -> None:
    s = states(project, 4)
    result = snap(project, 999, keep=1, check=True)
    assert result["changed"] and result["deleted"] == [s[1], s[0]]
    assert left(project) == s


def test_retention_leaves_displaced_directories_alone(a_and_b) -> None:
    root, _, b = a_and_b
    write(root, "compose/extra.yml", "services: {}\n")
    displaced = restore(root, restore_to=b)["displaced_dir"]
    states(root, 3)
    snap(root, 9999, keep=1)
    assert Path(displaced).is_dir()


# ------------------------------------------------------------------------------ journal


class Killed(Exception):
    """Stands for the run dying (SIGKILL, power loss) between two file writes."""


def killed_after(n: int):
    calls = {"n": 0}

    def copy(src, dst):
        if calls["n"] == n:
            Path(dst).write_text("half a fi")  # killed mid-write
            raise Killed
        calls["n"] += 1
        return backup.copy_file(src, dst)
    return copy


def test_an_interrupted_restore_leaves_a_journal_naming_its_target(a_and_b) -> None:
    root, a, b = a_and_b
    with pytest.raises(Killed):
        backup.restore(config(root), False, Engine(), at(100), copy=killed_after(1))
    journal = json.loads((root / "backups" / backup.JOURNAL).read_text())
    assert journal["stamp"] == a and journal["before_stamp"] == b
    assert (root / "requirements-airflow.txt").read_text() != "apache-airflow==3.3.2\n"  # not reached
    assert (root / ".requirements-airflow.txt.restoring").exists()
    assert journal["files"] == ["compose/airflow.yml", "requirements-airflow.txt"]
    half = backup.read_state(config(root))
    digests = [manifest_of(root, s)["digest"] for s in (a, b)]
    assert half["digest"] not in digests
    # Without the journal, the default target of the half-restored state is the newest
    # snapshot: the very state the interrupted restore was leaving.
    manifests = backup.read_snapshots(str(root / "backups"))["manifests"]
    assert backup.pick_target(manifests, half["digest"]) == b


def test_the_next_restore_finishes_an_interrupted_one(a_and_b) -> None:
    root, a, _ = a_and_b
    with pytest.raises(Killed):
        backup.restore(config(root), False, Engine(), at(100), copy=killed_after(1))
    result = restore(root, 200)
    assert result["restored"] and result["restored_from"] == a and result["resumed"]["stamp"] == a
    assert backup.read_state(config(root))["digest"] == manifest_of(root, a)["digest"]
    assert not (root / "backups" / backup.JOURNAL).exists()
    assert not list(root.rglob("*.restoring"))


def test_a_restore_killed_after_its_last_write_still_reports_a_restore(a_and_b) -> None:
    root, a, _ = a_and_b
    with pytest.raises(Killed):
        backup.restore(config(root), False, Engine(), at(100), copy=killed_after(1))
    restore(root, 150, check=True)  # check mode neither finishes nor forgets the journal
    assert (root / "backups" / backup.JOURNAL).exists()
    restore(root, 200)
    # The services were never brought to the restored files: a finished journal is a change.
    (root / "backups" / backup.JOURNAL).write_text(json.dumps({"stamp": a, "before_stamp": "", "started": "x"}))
    result = restore(root, 300)
    assert result["changed"] and result["restored"] and result["files"] == []
    assert not (root / "backups" / backup.JOURNAL).exists()


def test_an_interrupted_restore_can_be_reversed_by_name(a_and_b) -> None:
    root, _, b = a_and_b
    with pytest.raises(Killed):
        backup.restore(config(root), False, Engine(), at(100), copy=killed_after(1))
    assert restore(root, 200, restore_to=b)["restored_from"] == b
    assert backup.read_state(config(root))["digest"] == manifest_of(root, b)["digest"]
    assert not (root / "backups" / backup.JOURNAL).exists()
    assert not list(root.rglob("*.restoring"))


def test_no_snapshot_is_taken_of_a_half_restored_state(a_and_b) -> None:
    root, a, b = a_and_b
    with pytest.raises(Killed):
        backup.restore(config(root), False, Engine(), at(100), copy=killed_after(1))
    with pytest.raises(backup.Refusal, match=f"An interrupted restore of snapshot {a} .* half-restored, so they are not "
                                             f"snapshot. Run playbooks/rollback.yml .* to finish it, or -e rollback_to={b} "
                                             "to reverse it"):
        snap(root, 200)
    assert left(root) == [a, b]
    assert backup.list_snapshots(config(root))["lines"][-1].startswith(f"! An interrupted restore of snapshot {a}")


def test_an_unreadable_journal_needs_a_named_snapshot(a_and_b) -> None:
    root, a, _ = a_and_b
    (root / "backups" / backup.JOURNAL).write_text("{broken")
    refused(root, "cannot be read; which snapshot it was restoring is unknown")
    assert restore(root, restore_to=a)["restored_from"] == a
    assert not (root / "backups" / backup.JOURNAL).exists()
