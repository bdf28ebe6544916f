"""Databases in snapshots: when the module dumps, what the manifest records, when a restore
brings a dump back, what it says that discards, and the journal that covers it.

Files run for real on tmp_path; the engine is a table (containers, their labels, what
pg_dump streams) as in test_backup_snapshot.py. pg_dump / pg_restore / psql themselves run
against a real PostgreSQL container in the molecule `backup` scenario.
"""
from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from test_backup_snapshot import (
    Engine,
    at,
    backup,
    change_to_b,
    config,
    make_project,
    manifest_of,
)

DATABASES = [
    {"name": "airflow", "container": "lt-test-airflow-db-1", "user": "airflow", "db": "airflow",
     "service_container": "lt-test-airflow-scheduler-1", "version_label": "org.apache.airflow.version"},
    {"name": "mlflow", "container": "lt-test-mlflow-db-1", "user": "mlflow", "db": "mlflow",
     "service_container": "lt-test-mlflow-1", "version_label": "org.opencontainers.image.version"},
]


class DbEngine(Engine):
    """Engine plus containers: {name: (running, labels)}; each database's content is a byte string."""

    def __init__(self, airflow="3.3.2", mlflow="3.17.2", db_running=True, fail_dump=False, fail_restore=False):
        super().__init__()
        self.set_versions(airflow, mlflow)
        self.db_running = db_running
        self.content = {"airflow": b"airflow rows v1", "mlflow": b"mlflow runs v1"}
        self.fail_dump, self.fail_restore = fail_dump, fail_restore
        self.dumps, self.restores, self.queries = [], [], []
        self.rows = {"airflow": 20, "mlflow": 10}

    def set_versions(self, airflow, mlflow):
        self.labels = {"lt-test-airflow-scheduler-1": {"org.apache.airflow.version": airflow},
                       "lt-test-mlflow-1": {"org.opencontainers.image.version": mlflow}}

    def container(self, name):
        if name.endswith("-db-1"):
            return {"exists": True, "running": self.db_running, "labels": {}}
        return {"exists": True, "running": True, "labels": self.labels[name]}

    def pg_dump(self, db, dst):
        self.dumps.append(db["name"])
        if self.fail_dump:
            raise backup.Refusal(f"pg_dump of the {db['name']} database failed")
        Path(dst).write_bytes(b"PGDMP" + self.content[db["name"]])

    def pg_restore(self, db, src):
        if self.fail_restore:
            raise backup.Refusal(f"pg_restore of the {db['name']} database failed")
        self.restores.append(db["name"])
        self.content[db["name"]] = Path(src).read_bytes()[len(b"PGDMP"):]

    def count(self, db, sql):
        """Rows started after a time: 3 MLflow runs, 5 DAG runs; every row: self.rows."""
        self.queries.append((db["name"], sql))
        if "WHERE" not in sql:
            return self.rows[db["name"]]
        return {"mlflow": 3, "airflow": 5}[db["name"]]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def dbconfig(root: Path, **changes: object) -> dict:
    return config(root, **{"databases": DATABASES, **changes})


def snap(root: Path, engine: DbEngine, seconds: int = 0, check: bool = False, **changes: object) -> dict:
    return backup.take_snapshot(dbconfig(root, **changes), check, engine, at(seconds))


def restore(root: Path, engine: DbEngine, seconds: int = 100, check: bool = False, **changes: object) -> dict:
    return backup.restore(dbconfig(root, **changes), check, engine, at(seconds))


def upgraded(root: Path, engine: DbEngine) -> tuple[str, str]:
    """Snapshot A (dumped, old versions), then state B on new versions, snapshot B."""
    a = snap(root, engine)["snapshot"]
    change_to_b(root)
    engine.set_versions("3.4.0", "3.18.0")
    engine.content["mlflow"] = b"mlflow runs v2"
    b = snap(root, engine, seconds=10)["snapshot"]
    return a, b


# ------------------------------------------------------------------------------ dumping


def test_a_published_snapshot_holds_a_0600_dump_per_running_database(project: Path) -> None:
    engine = DbEngine()
    result = snap(project, engine)
    m = manifest_of(project, result["snapshot"])
    by_name = {d["name"]: d for d in m["databases"]}
    assert sorted(by_name) == ["airflow", "mlflow"]
    for name, version in (("airflow", "3.3.2"), ("mlflow", "3.17.2")):
        path = project / "backups" / result["snapshot"] / by_name[name]["file"]
        assert by_name[name]["file"] == f"databases/{name}.dump"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert by_name[name]["size"] == path.stat().st_size
        assert by_name[name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert by_name[name]["version"] == version
        assert by_name[name]["dumped_at"].endswith("Z")
    assert backup.manifest_error(m) == ""


def test_a_database_that_is_not_running_is_recorded_not_dumped(project: Path) -> None:
    engine = DbEngine(db_running=False)
    result = snap(project, engine)
    m = manifest_of(project, result["snapshot"])
    assert [(d["name"], d["file"], d["note"]) for d in m["databases"]] == [
        ("airflow", None, "not dumped: not running"), ("mlflow", None, "not dumped: not running")]
    assert engine.dumps == []
    assert not (project / "backups" / result["snapshot"] / "databases").exists()


def test_changed_database_contents_alone_take_no_snapshot_and_no_dump(project: Path) -> None:
    engine = DbEngine()
    first = snap(project, engine)
    engine.content["mlflow"] = b"many new runs"
    again = snap(project, engine, seconds=60)
    assert again["changed"] is False and again["created"] is False
    assert again["snapshot"] == first["snapshot"]
    assert engine.dumps == ["airflow", "mlflow"]  # the first snapshot's dumps only


def test_a_coming_version_change_takes_fresh_dumps_of_unchanged_files(project: Path) -> None:
    engine = DbEngine()
    first = snap(project, engine)
    engine.content["mlflow"] = b"runs logged since"
    coming = {"mlflow": "3.18.0", "airflow": "3.3.2"}
    before_upgrade = snap(project, engine, seconds=60, upcoming_versions=coming)
    assert before_upgrade["created"] and before_upgrade["snapshot"] != first["snapshot"]
    assert "mlflow 3.17.2 -> 3.18.0" in before_upgrade["messages"][0]
    dump = project / "backups" / before_upgrade["snapshot"] / "databases" / "mlflow.dump"
    assert dump.read_bytes() == b"PGDMPruns logged since"
    # The pick of a rollback from the upgraded state is this snapshot, with the newer dump.
    m = manifest_of(project, before_upgrade["snapshot"])
    assert m["digest"] == manifest_of(project, first["snapshot"])["digest"]


def test_a_coming_version_change_with_changed_files_is_announced_too(project: Path) -> None:
    # The rollback scenario's upgrade step: files differ from the newest snapshot (a rollback
    # put older ones back) and MLflow's version changes; the user still learns why it dumps.
    engine = DbEngine()
    snap(project, engine)
    change_to_b(project)
    result = snap(project, engine, seconds=60, upcoming_versions={"mlflow": "3.18.0", "airflow": "3.3.2"})
    assert result["created"]
    assert result["messages"] == [
        "mlflow 3.17.2 -> 3.18.0 can change the database schema: a new snapshot holds dumps taken now."]
    assert engine.dumps == ["airflow", "mlflow", "airflow", "mlflow"]


def test_coming_versions_equal_to_the_running_ones_take_no_snapshot(project: Path) -> None:
    engine = DbEngine()
    first = snap(project, engine)
    again = snap(project, engine, seconds=60, upcoming_versions={"mlflow": "3.17.2", "airflow": "3.3.2"})
    assert again["created"] is False and again["changed"] is False and again["messages"] == []
    assert again["snapshot"] == first["snapshot"]


@pytest.mark.parametrize(("live", "coming", "expected"), [
    ({"mlflow": "3.17.2"}, {"mlflow": "3.18.0"}, ["mlflow 3.17.2 -> 3.18.0"]),
    ({"mlflow": None}, {"mlflow": "3.18.0"}, []),  # not running yet: nothing to migrate
    ({"mlflow": "3.17.2"}, {}, []),  # version not given
    ({"airflow": "3.3.2", "mlflow": "3.17.2"}, {"airflow": "3.4.0", "mlflow": "3.17.2"}, ["airflow 3.3.2 -> 3.4.0"]),
])
def test_coming_schema_changes(live: dict, coming: dict, expected: list) -> None:
    assert backup.coming_schema_changes(DATABASES, coming, live) == expected


def test_check_mode_dumps_nothing(project: Path) -> None:
    engine = DbEngine()
    result = snap(project, engine, check=True)
    assert result["created"] is True
    assert engine.dumps == []
    assert not (project / "backups").exists()


def test_a_failing_dump_publishes_no_snapshot(project: Path) -> None:
    engine = DbEngine(fail_dump=True)
    with pytest.raises(backup.Refusal, match="pg_dump of the airflow database failed"):
        snap(project, engine)
    assert [p.name for p in (project / "backups").iterdir() if not p.name.endswith(".partial")] == []
    engine.fail_dump = False
    result = snap(project, engine, seconds=5)  # the next run clears the partial and publishes
    assert result["removed_partials"] and (project / "backups" / result["snapshot"] / "databases/mlflow.dump").is_file()


@pytest.mark.parametrize(("entry", "error"), [
    ({"name": "Bad Name"}, "without a valid name"),
    ({"name": "mlflow", "file": "../x.dump", "sha256": "0" * 64, "size": 1, "dumped_at": "x"}, "unexpected dump file"),
    ({"name": "mlflow", "file": "databases/mlflow.dump", "sha256": "nope", "size": 1, "dumped_at": "x"}, "sha256"),
    ({"name": "mlflow", "file": "databases/mlflow.dump", "sha256": "0" * 64}, "no size or dump time"),
])
def test_a_manifest_with_a_bad_database_entry_is_unusable(entry: dict, error: str) -> None:
    assert error in backup.databases_error([entry])


def test_backup_databases_entries_are_checked_up_front(project: Path) -> None:
    cfg = dbconfig(project, databases=[{"name": "mlflow", "container": "c"}, DATABASES[1]])
    errors = " ".join(backup.input_errors(cfg))
    assert "backup_databases entries need the non-empty strings" in errors
    assert "names must be unique" in errors


# ------------------------------------------------------------------------ when to restore


SNAP_DBS = [{"name": "airflow", "version": "3.3.2", "version_label": "org.apache.airflow.version",
             "file": "databases/airflow.dump", "dumped_at": "2026-01-01T12:00:00Z"},
            {"name": "mlflow", "version": "3.17.2", "version_label": "org.opencontainers.image.version",
             "file": "databases/mlflow.dump", "dumped_at": "2026-01-01T12:00:00Z"}]


def test_auto_restores_only_the_database_whose_version_changed() -> None:
    due = backup.databases_due("auto", SNAP_DBS, {"airflow": "3.3.2", "mlflow": "3.18.0"})
    assert [(d["name"], d["why"]) for d in due] == [
        ("mlflow", "schema change: org.opencontainers.image.version 3.18.0 runs now, 3.17.2 in the snapshot")]
    assert backup.databases_due("auto", SNAP_DBS, {"airflow": "3.3.2", "mlflow": "3.17.2"}) == []


def test_an_unknown_version_is_no_schema_change() -> None:
    assert backup.databases_due("auto", SNAP_DBS, {"airflow": None, "mlflow": None}) == []


def test_asked_restores_all_and_never_restores_none() -> None:
    live = {"airflow": "3.4.0", "mlflow": "3.18.0"}
    assert [d["name"] for d in backup.databases_due("always", SNAP_DBS, {"airflow": "3.3.2"})] == ["airflow", "mlflow"]
    assert backup.databases_due("never", SNAP_DBS, live) == []


def test_a_half_restored_database_is_due_even_when_never_asked() -> None:
    due = backup.databases_due("never", SNAP_DBS, {}, pending=["mlflow"])
    assert [(d["name"], d["why"]) for d in due] == [("mlflow", "an interrupted restore left it half-restored")]


def test_a_due_database_without_a_dump_is_refused() -> None:
    no_dump = [dict(SNAP_DBS[1], file=None, note="not dumped: not running")]
    with pytest.raises(backup.Refusal, match=r"holds no dump of it \(not dumped: not running\)"):
        backup.databases_due("auto", no_dump, {"mlflow": "3.18.0"})
    with pytest.raises(backup.Refusal, match="rollback_databases=true, but the snapshot holds no database dumps"):
        backup.databases_due("always", [], {})


def test_discard_counts_use_the_dump_time() -> None:
    assert backup.discard_sql("mlflow", "2026-01-01T12:00:00Z") == (
        "MLflow runs", "SELECT count(*) FROM runs WHERE start_time > 1767268800000")
    assert backup.discard_sql("airflow", "2026-01-01T12:00:00Z") == (
        "DAG runs",
        "SELECT count(*) FROM dag_run WHERE COALESCE(start_date, queued_at) > '2026-01-01T12:00:00Z'::timestamptz")
    assert backup.discard_sql("other", "2026-01-01T12:00:00Z") is None


def test_the_discard_message_says_how_many_runs_are_lost_or_why_it_cannot_count() -> None:
    due = [dict(SNAP_DBS[1], why="asked for (rollback_databases=true)", counted="MLflow runs", discards=3),
           dict(SNAP_DBS[0], why="x", counted="DAG runs", discards="psql: connection refused")]
    assert backup.discard_message("20260101T120000Z", due) == [
        ("Restoring the mlflow database to its dump in snapshot 20260101T120000Z (asked for (rollback_databases=true)) "
         "discards 3 MLflow runs created after 2026-01-01T12:00:00Z."),
        ("Restoring the airflow database to its dump in snapshot 20260101T120000Z (x) discards the DAG runs created "
         "after 2026-01-01T12:00:00Z (could not count them: psql: connection refused).")]


# ---------------------------------------------------------------------- restore end to end


def test_a_rollback_across_a_version_change_announces_then_restores_the_databases(project: Path) -> None:
    engine = DbEngine()
    a, _b = upgraded(project, engine)
    result = restore(project, engine)
    assert result["restored_from"] == a
    assert [(d["name"], d["counted"], d["discards"]) for d in result["databases"]] == [
        ("airflow", "DAG runs", 5), ("mlflow", "MLflow runs", 3)]
    assert "discards 3 MLflow runs" in result["databases_message"][1]
    assert engine.restores == []  # announced only: the caller stops the services first
    journal = json.loads((project / "backups" / backup.JOURNAL).read_text())
    assert journal["stamp"] == a and journal["databases"] == ["airflow", "mlflow"]
    with pytest.raises(backup.Refusal, match="interrupted restore"):
        snap(project, engine, seconds=150)  # half-restored: not a state to snapshot
    done = backup.restore_databases(dbconfig(project), False, engine)
    assert done["restored_databases"] == ["airflow", "mlflow"]
    assert engine.content["mlflow"] == b"mlflow runs v1"
    assert not (project / "backups" / backup.JOURNAL).exists()


def test_runs_without_a_start_time_count_as_discarded_through_the_row_growth(project: Path) -> None:
    # MLflow's REST API leaves start_time 0 on a run created without one: the time-based
    # count (3) misses it, the growth of the runs table since the dump (10 -> 15) does not.
    engine = DbEngine()
    a = snap(project, engine)["snapshot"]
    assert {d["name"]: d["rows"] for d in manifest_of(project, a)["databases"]} == {"airflow": 20, "mlflow": 10}
    change_to_b(project)
    engine.set_versions("3.3.2", "3.18.0")
    b = snap(project, engine, seconds=10)["snapshot"]
    engine.rows = {"airflow": 21, "mlflow": 15}
    result = restore(project, engine, rollback_to=a)
    assert result["restored_from"] == a
    assert [(d["name"], d["discards"]) for d in result["databases"]] == [("mlflow", 5)]
    assert "discards 5 MLflow runs created after" in result["databases_message"][0]
    assert b != a


def test_a_manifest_without_row_counts_falls_back_to_the_time_based_count() -> None:
    engine = DbEngine()
    entry = dict(SNAP_DBS[1])
    entry.pop("rows", None)
    assert backup.count_discards(engine, DATABASES[1], entry) == ("MLflow runs", 3)
    engine.rows["mlflow"] = 4  # fewer rows than at the dump (purged since): the time-based count stands
    assert backup.count_discards(engine, DATABASES[1], dict(entry, rows=10)) == ("MLflow runs", 3)


def test_a_rollback_without_a_version_change_leaves_the_databases(project: Path) -> None:
    engine = DbEngine()
    a = snap(project, engine)["snapshot"]
    change_to_b(project)
    snap(project, engine, seconds=10)
    counted_by_snapshots = list(engine.queries)  # the row counts each dump records
    result = restore(project, engine)
    assert result["restored_from"] == a and result["databases"] == [] and engine.queries == counted_by_snapshots
    assert not (project / "backups" / backup.JOURNAL).exists()
    assert backup.restore_databases(dbconfig(project), False, engine)["changed"] is False


def test_rollback_databases_true_restores_without_a_version_change(project: Path) -> None:
    engine = DbEngine()
    snap(project, engine)
    change_to_b(project)
    snap(project, engine, seconds=10)
    result = restore(project, engine, restore_databases="always")
    assert [d["name"] for d in result["databases"]] == ["airflow", "mlflow"]


def test_check_mode_counts_but_writes_no_journal(project: Path) -> None:
    engine = DbEngine()
    upgraded(project, engine)
    result = restore(project, engine, check=True)
    assert len(result["databases_message"]) == 2
    assert not (project / "backups" / backup.JOURNAL).exists()


def test_a_corrupt_dump_is_refused_before_any_change(project: Path) -> None:
    engine = DbEngine()
    a, _b = upgraded(project, engine)
    (project / "backups" / a / "databases/mlflow.dump").write_bytes(b"PGDMP tampered")
    before = (project / "requirements-airflow.txt").read_text()
    with pytest.raises(backup.Refusal, match="dump of the mlflow database"):
        restore(project, engine)
    assert (project / "requirements-airflow.txt").read_text() == before
    assert not (project / "backups" / backup.JOURNAL).exists()


def test_a_database_restore_that_dies_is_finished_by_the_next_rollback(project: Path) -> None:
    engine = DbEngine(fail_restore=True)
    a, _b = upgraded(project, engine)
    restore(project, engine)
    with pytest.raises(backup.Refusal, match="pg_restore of the airflow database failed"):
        backup.restore_databases(dbconfig(project), False, engine)
    assert json.loads((project / "backups" / backup.JOURNAL).read_text())["databases"] == ["airflow", "mlflow"]
    engine.fail_restore = False
    # Files are already back (same versions would not make them due): the journal does.
    engine.set_versions("3.3.2", "3.17.2")
    again = restore(project, engine, seconds=200)
    assert again["restored_from"] == a and again["resumed"]
    assert [d["why"] for d in again["databases"]] == ["an interrupted restore left it half-restored"] * 2
    backup.restore_databases(dbconfig(project), False, engine)
    assert engine.restores == ["airflow", "mlflow"]
    assert not (project / "backups" / backup.JOURNAL).exists()


def test_reversing_an_interrupted_restore_brings_back_every_database_it_touched(project: Path) -> None:
    engine = DbEngine()
    _a, b = upgraded(project, engine)
    restore(project, engine)
    real_restore = DbEngine.pg_restore

    def airflow_only(self, db, src):
        if db["name"] == "mlflow":
            raise backup.Refusal("pg_restore of the mlflow database failed")
        self.restores.append(db["name"])

    engine.pg_restore = airflow_only.__get__(engine)  # mlflow fails after airflow was restored
    with pytest.raises(backup.Refusal, match="mlflow database failed"):
        backup.restore_databases(dbconfig(project), False, engine)
    journal = json.loads((project / "backups" / backup.JOURNAL).read_text())
    assert journal["databases"] == ["mlflow"] and journal["databases_planned"] == ["airflow", "mlflow"]
    engine.pg_restore = real_restore.__get__(engine)
    back = restore(project, engine, seconds=200, restore_to=b)
    assert back["restored_from"] == b
    assert [(d["name"], d["why"]) for d in back["databases"]] == [
        ("airflow", "an interrupted restore left it half-restored"),
        ("mlflow", "an interrupted restore left it half-restored")]
