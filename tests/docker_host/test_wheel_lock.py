"""docker_host's wheel_lock module: the hash lock of an image and the wheelhouse check.

The wheels are real: tiny local projects built with `pip wheel` through an in-tree build
backend (no build dependency, no index, no network), resolved by the module as Ansible runs
it, then installed by pip with --require-hashes the way the Dockerfiles do.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from role_code import ROLES, load

wheel_lock = load("docker_host/library/wheel_lock.py")
MODULE = ROLES / "docker_host/library/wheel_lock.py"
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"

# A PEP 517 backend in the project itself: a wheel is a zip with METADATA, WHEEL and RECORD.
# Fixed timestamps, so building it twice gives the same bytes.
BACKEND = textwrap.dedent('''
    import base64, hashlib, os, zipfile
    NAME, VERSION, REQUIRES = open("pkg.txt").read().split("|")

    def _record_line(path, data):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"{path},sha256={digest},{len(data)}"

    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        info = f"{NAME}-{VERSION}.dist-info"
        meta = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"
        meta += "".join(f"Requires-Dist: {r}\\n" for r in REQUIRES.split(",") if r.strip())
        files = {f"{NAME}/__init__.py": f"VERSION = {VERSION!r}\\n".encode(),
                 f"{info}/METADATA": meta.encode(),
                 f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
        record = [_record_line(p, d) for p, d in files.items()] + [f"{info}/RECORD,,"]
        files[f"{info}/RECORD"] = ("\\n".join(record) + "\\n").encode()
        name = f"{NAME}-{VERSION}-py3-none-any.whl"
        with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
            for path, data in files.items():
                whl.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
        return name
''')
PROJECTS = {"alpha": ("1.0", ""), "beta": ("2.0", "alpha==1.0"), "gamma_lib": ("0.3", "")}


def clean_env() -> dict[str, str]:
    """This machine's pip configuration (find-links, constraints, indexes) kept out of the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=clean_env(), check=False)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A find-links directory with the wheels of three tiny projects, built by `pip wheel`."""
    root = tmp_path_factory.mktemp("projects")
    for name, (version, requires) in PROJECTS.items():
        src = root / "src" / name
        src.mkdir(parents=True)
        (src / "backend.py").write_text(BACKEND)
        (src / "pkg.txt").write_text(f"{name}|{version}|{requires}")
        (src / "pyproject.toml").write_text(
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n')
    proc = pip("wheel", "--no-index", "--no-deps", "--wheel-dir", str(root / "index"),
               *[str(root / "src" / name) for name in PROJECTS])
    assert proc.returncode == 0, proc.stderr
    return root / "index"


def run_module(args: dict, check: bool = False) -> dict:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"wheel-lock-args-{os.getpid()}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check}}))
    try:
        proc = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True, text=True,
                              env=clean_env(), check=False)
    finally:
        path.unlink()
    return json.loads(proc.stdout)


@pytest.fixture
def project(tmp_path: Path, index: Path) -> dict:
    (tmp_path / "build").mkdir()
    (tmp_path / "build/requirements.txt").write_text("beta==2.0\ngamma-lib\n")
    return {"requirements": str(tmp_path / "build/requirements.txt"), "lock": str(tmp_path / "build/requirements.lock"),
            "name": "img", "wheelhouse_root": str(tmp_path / "cache/wheelhouse"), "python": sys.executable,
            "python_version": PYTHON_VERSION, "pip_args": ["--no-index", "--find-links", str(index)]}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ the lock's text


def test_lock_lines_are_sorted_pinned_and_hashed() -> None:
    text = wheel_lock.lock_text("img", "r" * 64, {"Zeta_Pkg-1.0-py3-none-any.whl": "a" * 64,
                                                  "alpha-2.0-1-cp311-cp311-linux_x86_64.whl": "b" * 64,
                                                  "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl": "c" * 64})
    pins = [line for line in text.splitlines() if not line.startswith("#")]
    assert pins == [
        f"alpha==2.0 --hash=sha256:{'b' * 64}  # alpha-2.0-1-cp311-cp311-linux_x86_64.whl",
        f"torch==2.13.0+cpu --hash=sha256:{'c' * 64}  # torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        f"zeta-pkg==1.0 --hash=sha256:{'a' * 64}  # Zeta_Pkg-1.0-py3-none-any.whl",
    ]
    assert f"# requirements-sha256: {'r' * 64}" in text.splitlines()
    assert wheel_lock.parse_lock(text) == ("r" * 64, [
        {"name": "alpha", "version": "2.0", "sha256": "b" * 64, "file": "alpha-2.0-1-cp311-cp311-linux_x86_64.whl"},
        {"name": "torch", "version": "2.13.0+cpu", "sha256": "c" * 64,
         "file": "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"},
        {"name": "zeta-pkg", "version": "1.0", "sha256": "a" * 64, "file": "Zeta_Pkg-1.0-py3-none-any.whl"},
    ])


def test_two_wheels_of_one_distribution_are_refused() -> None:
    with pytest.raises(wheel_lock.LockError, match="Two wheels of alpha in one resolution"):
        wheel_lock.lock_text("img", "r" * 64, {"alpha-1.0-py3-none-any.whl": "a" * 64, "Alpha-2.0-py3-none-any.whl": "b" * 64})
    with pytest.raises(wheel_lock.LockError, match="not a wheel file name"):
        wheel_lock.lock_text("img", "r" * 64, {"alpha-1.0.tar.gz.whl": "a" * 64})


def test_a_hand_edited_or_empty_lock_is_refused() -> None:
    with pytest.raises(wheel_lock.LockError, match="line 2 is not"):
        wheel_lock.parse_lock(f"# requirements-sha256: {'r' * 64}\nalpha>=1.0\n", "x.lock")
    with pytest.raises(wheel_lock.LockError, match="x.lock pins no wheel"):
        wheel_lock.parse_lock("# nothing\n", "x.lock")


def test_layered_lines_are_the_lock_lines_of_those_packages() -> None:
    text = wheel_lock.lock_text("img", "r" * 64, {"xgboost_cpu-3.2.0-py3-none-any.whl": "a" * 64,
                                                  "numpy-2.0-py3-none-any.whl": "b" * 64})
    _, entries = wheel_lock.parse_lock(text)
    assert wheel_lock.layered_text(entries, ["XGBoost_CPU"]) == \
        f"xgboost-cpu==3.2.0 --hash=sha256:{'a' * 64}  # xgboost_cpu-3.2.0-py3-none-any.whl\n"
    with pytest.raises(wheel_lock.LockError, match="Layered package\\(s\\) not in the lock: torch"):
        wheel_lock.layered_text(entries, ["torch", "numpy"])


# ------------------------------------------------------------------ the module, with real wheels


def test_the_lock_is_written_from_the_wheels_and_pip_installs_it_with_require_hashes(project: dict) -> None:
    result = run_module(project)
    assert result["changed"] is True and result["current"] is False, result
    lock = Path(project["lock"])
    wheelhouse = Path(result["dir"])
    assert wheelhouse == Path(project["wheelhouse_root"]) / f"img-{sha(lock)[:12]}"
    assert result["lock_sha256"] == sha(lock) and result["wheels"] == 3
    pins = [line for line in lock.read_text().splitlines() if not line.startswith("#")]
    assert [p.split("==")[0] for p in pins] == ["alpha", "beta", "gamma-lib"]
    for line in pins:
        entry = wheel_lock._LINE.match(line).groupdict()
        assert entry["sha256"] == sha(wheelhouse / entry["file"])
    assert f"# requirements-sha256: {sha(Path(project['requirements']))}" in lock.read_text()
    assert (wheelhouse / "requirements.lock").read_text() == lock.read_text()
    assert sorted(p.name for p in wheelhouse.iterdir()) == [
        "alpha-1.0-py3-none-any.whl", "beta-2.0-py3-none-any.whl", "gamma_lib-0.3-py3-none-any.whl", "requirements.lock"]
    # What the Dockerfiles run, without installing anything.
    proc = pip("install", "--dry-run", "--ignore-installed", "--no-index", "--find-links", str(wheelhouse),
               "--require-hashes", "-r", str(lock))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Would install alpha-1.0 beta-2.0 gamma_lib-0.3" in proc.stdout


def test_a_current_lock_is_kept_and_a_changed_requirements_file_resolves_again(project: dict) -> None:
    first = run_module(project)
    lock_text = Path(project["lock"]).read_text()
    again = run_module(project)
    assert again["changed"] is False and again["current"] is True
    assert again["dir"] == first["dir"] and again["lock_sha256"] == first["lock_sha256"]
    assert Path(project["lock"]).read_text() == lock_text
    Path(project["requirements"]).write_text("alpha==1.0\n")
    checked = run_module(project, check=True)
    assert (checked["changed"], checked["current"], checked["lock_sha256"]) == (True, False, "")
    assert Path(project["lock"]).read_text() == lock_text  # check mode wrote nothing
    moved = run_module(project)
    assert moved["changed"] is True and moved["wheels"] == 1 and moved["dir"] != first["dir"]
    assert [line.split(" ")[0] for line in Path(project["lock"]).read_text().splitlines()
            if not line.startswith("#")] == ["alpha==1.0"]


def test_a_correct_wheelhouse_passes_unchanged(project: dict) -> None:
    locked = run_module(project)
    result = run_module({**project, "state": "wheelhouse"})
    assert result == {"changed": False, "lock_sha256": locked["lock_sha256"], "wheels": 3, "dir": locked["dir"],
                      "filled": [], "invocation": result["invocation"]}


def test_a_tampered_wheel_fails_naming_it_and_both_hashes(project: dict) -> None:
    locked = run_module(project)
    wheel = Path(locked["dir"]) / "beta-2.0-py3-none-any.whl"
    expected = sha(wheel)
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    actual = sha(wheel)
    for check in (False, True):
        result = run_module({**project, "state": "wheelhouse"}, check=check)
        assert result["failed"] is True
        assert f"{wheel}: sha256 {actual}, the lock {project['lock']} says {expected}" in result["msg"]
        assert result["msg"].startswith("The wheelhouse does not match the lock")
    # pip itself would refuse it as well, so the image cannot be built from it either.
    proc = pip("install", "--dry-run", "--ignore-installed", "--no-index", "--find-links", locked["dir"],
               "--require-hashes", "-r", project["lock"])
    assert proc.returncode != 0 and "THESE PACKAGES DO NOT MATCH THE HASHES" in proc.stderr


def test_a_wheel_the_lock_does_not_list_fails(project: dict) -> None:
    locked = run_module(project)
    (Path(locked["dir"]) / "evil-1.0-py3-none-any.whl").write_bytes(b"x")
    result = run_module({**project, "state": "wheelhouse"})
    assert result["failed"] is True
    assert f"{locked['dir']}/evil-1.0-py3-none-any.whl: not in the lock {project['lock']}" in result["msg"]


def test_a_missing_or_partial_wheelhouse_is_refilled_with_the_same_wheels(project: dict) -> None:
    locked = run_module(project)
    wheelhouse = Path(locked["dir"])
    before = {p.name: p.read_bytes() for p in wheelhouse.iterdir()}
    (wheelhouse / "alpha-1.0-py3-none-any.whl").unlink()
    assert run_module({**project, "state": "wheelhouse"}, check=True)["changed"] is True
    assert not (wheelhouse / "alpha-1.0-py3-none-any.whl").exists()
    partial = run_module({**project, "state": "wheelhouse"})
    assert partial["changed"] is True and partial["filled"] == ["alpha-1.0-py3-none-any.whl"]
    shutil.rmtree(wheelhouse)
    gone = run_module({**project, "state": "wheelhouse"})
    assert gone["changed"] is True and len(gone["filled"]) == 3
    assert {p.name: p.read_bytes() for p in wheelhouse.iterdir()} == before
    assert sorted(p.name for p in wheelhouse.parent.iterdir()) == [wheelhouse.name]  # no scratch left
    assert run_module({**project, "state": "wheelhouse"})["changed"] is False


def test_a_locked_wheel_the_index_no_longer_serves_fails(project: dict, tmp_path: Path) -> None:
    locked = run_module(project)
    lock = Path(project["lock"])
    lock.write_text(lock.read_text().replace("gamma-lib==0.3", "gamma-lib==0.4"))
    result = run_module({**project, "state": "wheelhouse"})
    assert result["failed"] is True and "pip wheel failed" in result["msg"], result
    assert not any(p.name.startswith(".img-") for p in Path(locked["dir"]).parent.iterdir())


def test_layered_lock_holds_the_layered_lines_and_installs_with_the_rest(project: dict, tmp_path: Path) -> None:
    """The worker's two installs: layered wheels --no-deps into a --target dir put on sys.path by
    a .pth file, then everything with the full lock; both with --require-hashes."""
    locked = run_module(project)
    result = run_module({**project, "state": "wheelhouse", "layered": ["Alpha"]})
    assert result["changed"] is True
    wheelhouse = Path(locked["dir"])
    layered = (wheelhouse / "requirements-layered.lock").read_text()
    assert layered.startswith("alpha==1.0 --hash=sha256:") and layered.count("\n") == 1
    assert run_module({**project, "state": "wheelhouse", "layered": ["alpha"]})["changed"] is False
    venv, target = tmp_path / "venv", tmp_path / "layered"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    proc = pip("--python", str(venv / "bin/python"), "install", "--no-index", "--no-deps", "--find-links",
               str(wheelhouse), "--require-hashes", "--target", str(target), "-r", str(wheelhouse / "requirements-layered.lock"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    purelib = subprocess.run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "zz_layered.pth").write_text(f"{target}\n")
    proc = pip("--python", str(venv / "bin/python"), "install", "--no-index", "--find-links", str(wheelhouse),
               "--require-hashes", "-r", str(wheelhouse / "requirements.lock"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Requirement already satisfied: alpha==1.0" in proc.stdout
    assert "Successfully installed beta-2.0 gamma-lib-0.3" in proc.stdout
    # Dropping the layered set takes its lock out of the wheelhouse again.
    assert run_module({**project, "state": "wheelhouse"})["changed"] is True
    assert not (wheelhouse / "requirements-layered.lock").exists()
    assert run_module({**project, "layered": ["nope"], "state": "wheelhouse"})["msg"] == "Layered package(s) not in the lock: nope"


def test_the_python_must_match_the_images(project: dict) -> None:
    result = run_module({**project, "python_version": "3.9"})
    assert result["failed"] is True
    assert f"is Python {PYTHON_VERSION}, but the images run Python 3.9" in result["msg"]
    assert not Path(project["lock"]).exists()


def test_a_wheelhouse_another_run_published_first_is_kept(tmp_path: Path) -> None:
    # Projects share the cache: the run that renames second keeps the first one's directory.
    (tmp_path / "target").mkdir()
    (tmp_path / "target/a.whl").write_bytes(b"first")
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch/a.whl").write_bytes(b"second")
    assert wheel_lock.publish(str(tmp_path / "scratch"), str(tmp_path / "target")) is False
    assert (tmp_path / "target/a.whl").read_bytes() == b"first"
    assert wheel_lock.publish(str(tmp_path / "scratch"), str(tmp_path / "target2")) is True
    assert (tmp_path / "target2/a.whl").read_bytes() == b"second"
    with pytest.raises(OSError):
        wheel_lock.publish(str(tmp_path / "gone"), str(tmp_path / "target3"))


def test_missing_requirements_fail_except_in_check_mode(project: dict) -> None:
    Path(project["requirements"]).unlink()
    assert run_module(project)["msg"] == f"The requirements file {project['requirements']} does not exist."
    checked = run_module(project, check=True)
    assert (checked["changed"], checked["current"], checked["dir"]) == (True, False, "")
