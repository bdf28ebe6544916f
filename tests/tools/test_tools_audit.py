"""The secret audit: finds each secret value (and a URL's password, and JWTs) outside secrets/."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlops_tools import audit

PASSWORD = "Zq8xWv2LmN4pRt6y"
# The shape of an Airflow API token (header.payload.signature), not a real one.
TOKEN = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIiwiZXhwIjo5OTk5fQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "airflow_admin_password").write_text(PASSWORD + "\n")
    (secrets / "airflow_celery_broker_url").write_text("redis://:R3d1sPassw0rdX@airflow-redis:6379/0")
    (secrets / "short").write_text("abc")  # too short to search for
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "verify.json").write_text('{"ok": true}')
    (tmp_path / "compose.yml").write_text("secrets:\n  admin:\n    file: secrets/airflow_admin_password\n")
    return tmp_path


def test_a_clean_project_has_no_findings(project: Path) -> None:
    assert audit.findings(project / "secrets", [project]) == []
    assert audit.main(["--secrets-dir", str(project / "secrets"), str(project)]) == 0


def test_each_value_and_a_url_password_are_found_by_name_never_by_value(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "reports" / "leak.txt").write_text(f"password={PASSWORD}")
    (project / "run.log").write_bytes(b"\x00binary R3d1sPassw0rdX tail")
    found = audit.findings(project / "secrets", [project])
    assert found == [f"{project}/reports/leak.txt: airflow_admin_password",
                     f"{project}/run.log: airflow_celery_broker_url:password"]
    assert audit.main(["--secrets-dir", str(project / "secrets"), str(project)]) == 1
    out = capsys.readouterr().out
    assert "2 leak(s)" in out and "airflow_admin_password" in out
    assert PASSWORD not in out and "R3d1sPassw0rdX" not in out


def test_a_bearer_token_is_a_finding(project: Path) -> None:
    log = project / "verify.log"
    log.write_text(f'"headers": {{"Authorization": "Bearer {TOKEN}"}}')
    assert audit.findings(project / "secrets", [log]) == [f"{log}: a bearer token (JWT)"]


def test_the_secrets_dir_itself_and_symlinks_are_not_searched(project: Path) -> None:
    (project / "link").symlink_to(project / "secrets" / "airflow_admin_password")
    assert audit.findings(project / "secrets", [project, project / "secrets"]) == []


def test_nothing_to_look_for_is_an_error_not_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "secrets").mkdir()
    assert audit.main(["--secrets-dir", str(tmp_path / "secrets"), str(tmp_path)]) == 2
    assert "nothing to look for" in capsys.readouterr().err
