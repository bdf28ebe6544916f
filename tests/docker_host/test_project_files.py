"""docker_host's project_files module, run as Ansible runs it (a subprocess with its arguments)."""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from role_code import ROLES

MODULE = ROLES / "docker_host/library/project_files.py"
ME = {"owner": str(os.getuid()), "group": str(os.getgid())}


def run_module(args: dict, check: bool = False, diff: bool = False) -> dict:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"project-files-args-{os.getpid()}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check, "_ansible_diff": diff}}))
    try:
        proc = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True, text=True, check=False)
    finally:
        path.unlink()
    return json.loads(proc.stdout)


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (oct(stat.S_IMODE(p.stat().st_mode)), p.read_text() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def spec(root: Path) -> dict:
    return {
        "directories": [{"path": str(root / "build"), "mode": "0755", **ME},
                        {"path": str(root / "secrets"), "mode": "0700", **ME}],
        "files": [{"path": str(root / "build/Dockerfile"), "content": "FROM base\n", "mode": "0644", **ME},
                  {"path": str(root / "secrets/token"), "content": "s3cret", "mode": "0600", "secret": True, **ME}],
    }


def test_first_run_makes_everything_and_the_second_changes_nothing(tmp_path: Path) -> None:
    first = run_module(spec(tmp_path))
    assert first["changed"] is True
    assert first["changed_paths"] == [str(tmp_path / p) for p in ("build", "secrets", "build/Dockerfile", "secrets/token")]
    assert tree(tmp_path) == {"build": ("0o755", None), "build/Dockerfile": ("0o644", "FROM base\n"),
                              "secrets": ("0o700", None), "secrets/token": ("0o600", "s3cret")}
    second = run_module(spec(tmp_path))
    assert first["created_paths"] == first["changed_paths"]
    assert second == {"changed": False, "changed_paths": [], "created_paths": [], "invocation": second["invocation"]}


def test_only_the_changed_content_or_mode_is_reported(tmp_path: Path) -> None:
    run_module(spec(tmp_path))
    changed = spec(tmp_path)
    changed["files"][0]["content"] = "FROM base\nRUN true\n"
    changed["directories"][1]["mode"] = "0750"
    result = run_module(changed)
    assert result["changed_paths"] == [str(tmp_path / "secrets"), str(tmp_path / "build/Dockerfile")]
    assert (tmp_path / "build/Dockerfile").read_text() == "FROM base\nRUN true\n"
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o750
    assert not list(tmp_path.rglob(".project_files.*"))


def test_check_mode_writes_nothing_and_diffs_all_but_secrets(tmp_path: Path) -> None:
    result = run_module(spec(tmp_path), check=True, diff=True)
    assert result["changed"] is True
    assert len(result["changed_paths"]) == 4
    assert list(tmp_path.iterdir()) == []
    assert [d["after_header"] for d in result["diff"]] == [str(tmp_path / "build/Dockerfile")]
    assert result["diff"][0]["before"] == "" and result["diff"][0]["after"] == "FROM base\n"
    assert "s3cret" not in json.dumps({k: v for k, v in result.items() if k != "invocation"})

    run_module(spec(tmp_path))
    changed = spec(tmp_path)
    changed["files"][0]["content"] = "FROM other\n"
    before = tree(tmp_path)
    dry = run_module(changed, check=True)
    assert dry["changed_paths"] == [str(tmp_path / "build/Dockerfile")]
    assert tree(tmp_path) == before


def test_bad_entries_fail_before_anything_is_written(tmp_path: Path) -> None:
    bad = spec(tmp_path)
    bad["directories"].append({"path": "relative/dir", "mode": "0755", **ME})
    bad["files"][0]["mode"] = "644"  # three digits are fine: this one is valid
    bad["files"][1]["mode"] = "rw-------"
    bad["files"].append({"path": str(tmp_path / "build/Dockerfile"), "content": "", "mode": "0644", **ME})
    result = run_module(bad)
    assert result["failed"] is True
    assert "directory path 'relative/dir' is not absolute" in result["msg"]
    assert f"file {tmp_path}/secrets/token: mode 'rw-------' is not an octal string" in result["msg"]
    assert f"{tmp_path}/build/Dockerfile is listed twice" in result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_a_file_whose_directory_is_missing_is_refused(tmp_path: Path) -> None:
    result = run_module({"files": [{"path": str(tmp_path / "nowhere/file"), "content": "x", "mode": "0644", **ME}]})
    assert result["failed"] is True
    assert result["msg"] == f"the directory of {tmp_path}/nowhere/file does not exist: list it in directories"


def test_validate_runs_on_the_new_content_and_a_failure_keeps_the_old_file(tmp_path: Path) -> None:
    check = f"{sys.executable} -c \"import sys, json; json.load(open(sys.argv[1]))\" %s"
    target = {"path": str(tmp_path / "conf.json"), "mode": "0644", "validate": check, **ME}
    good = run_module({"files": [{**target, "content": '{"a": 1}\n'}]})
    assert good["changed_paths"] == [str(tmp_path / "conf.json")]
    bad = run_module({"files": [{**target, "content": "{not json"}]})
    assert bad["failed"] is True
    assert bad["msg"].startswith(f"{tmp_path}/conf.json: the new content failed validation (")
    assert "JSONDecodeError" in bad["msg"] or "Expecting" in bad["msg"]
    assert (tmp_path / "conf.json").read_text() == '{"a": 1}\n'
    assert not list(tmp_path.glob(".project_files.*"))


def secrets_spec(root: Path) -> dict:
    """A password and a key generated once, and a URL rendered from the password on the target."""
    return {"files": [
        {"path": str(root / "db_password"), "generate": {"length": 24}, "mode": "0600", **ME},
        {"path": str(root / "fernet_key"), "generate": {"format": "fernet"}, "mode": "0600", **ME},
        {"path": str(root / "db_url"), "template": "postgresql://app:${pw}@db:5432/app?x=$$1",
         "sources": {"pw": str(root / "db_password")}, "mode": "0600", **ME},
    ]}


def test_generated_secrets_are_made_once_and_urls_are_rendered_from_them(tmp_path: Path) -> None:
    first = run_module(secrets_spec(tmp_path), diff=True)
    assert first["changed_paths"] == [str(tmp_path / n) for n in ("db_password", "fernet_key", "db_url")]
    password = (tmp_path / "db_password").read_text()
    assert len(password) == 24 and password.isalnum()
    assert len(base64.urlsafe_b64decode((tmp_path / "fernet_key").read_text())) == 32
    assert (tmp_path / "db_url").read_text() == f"postgresql://app:{password}@db:5432/app?x=$1"
    assert {oct(stat.S_IMODE((tmp_path / n).stat().st_mode)) for n in ("db_password", "fernet_key", "db_url")} == {"0o600"}
    # Nothing the module returns carries a secret: no diff, no value.
    assert "diff" not in first and password not in json.dumps(first)

    second = run_module(secrets_spec(tmp_path))
    assert second["changed_paths"] == [] and (tmp_path / "db_password").read_text() == password

    (tmp_path / "db_password").chmod(0o644)  # a generated file keeps its content, gets its mode back
    (tmp_path / "db_url").write_text("stale")
    third = run_module(secrets_spec(tmp_path))
    assert third["changed_paths"] == [str(tmp_path / "db_password"), str(tmp_path / "db_url")]
    assert (tmp_path / "db_password").read_text() == password
    assert stat.S_IMODE((tmp_path / "db_password").stat().st_mode) == 0o600
    assert (tmp_path / "db_url").read_text().startswith(f"postgresql://app:{password}@")


def test_check_mode_on_a_fresh_host_reports_the_secrets_and_writes_nothing(tmp_path: Path) -> None:
    result = run_module(secrets_spec(tmp_path), check=True, diff=True)
    assert result["changed_paths"] == [str(tmp_path / n) for n in ("db_password", "fernet_key", "db_url")]
    assert list(tmp_path.iterdir()) == [] and "diff" not in result


def test_secret_entries_fail_named(tmp_path: Path) -> None:
    both = {"path": str(tmp_path / "a"), "content": "x", "generate": {"length": 32}, "mode": "0600", **ME}
    short = {"path": str(tmp_path / "b"), "generate": {"length": 4}, "mode": "0600", **ME}
    relative = {"path": str(tmp_path / "c"), "template": "${x}", "sources": {"x": "x"}, "mode": "0600", **ME}
    result = run_module({"files": [both, short, relative]})
    assert result["failed"] is True
    assert f"file {tmp_path}/a: give exactly one of content, generate, template (got content, generate)" in result["msg"]
    assert f"file {tmp_path}/b: generate.length must be 8-256 (got 4)" in result["msg"]
    assert f"file {tmp_path}/c: source x ('x') is not an absolute path" in result["msg"]
    assert list(tmp_path.iterdir()) == []

    missing = run_module({"files": [{"path": str(tmp_path / "url"), "template": "${pw}",
                                     "sources": {"pw": str(tmp_path / "nope")}, "mode": "0600", **ME}]})
    assert missing["msg"] == f"{tmp_path}/url: source pw ({tmp_path}/nope) does not exist"
    unknown = run_module({"files": [{"path": str(tmp_path / "url"), "template": "${other}", "mode": "0600", **ME}]})
    assert unknown["failed"] is True and "placeholder" in unknown["msg"] and "other" in unknown["msg"]
    assert list(tmp_path.iterdir()) == []


def test_created_paths_name_what_did_not_exist(tmp_path: Path) -> None:
    run_module(secrets_spec(tmp_path))
    (tmp_path / "db_url").unlink()
    (tmp_path / "db_password").chmod(0o640)
    result = run_module(secrets_spec(tmp_path))
    assert result["changed_paths"] == [str(tmp_path / "db_password"), str(tmp_path / "db_url")]
    assert result["created_paths"] == [str(tmp_path / "db_url")]
