#!/usr/bin/python
"""A hash lock per image, and a host-side wheelhouse checked against it before each build.

Why a lock: `pip wheel -r requirements.txt` resolves again every time the requirements change
or the cache is lost, and an index may serve other files for the same names since. The lock
records the exact wheels one resolution produced (``name==version --hash=sha256:...``, the
Airflow-constraints idea for our own set); the image installs with ``--require-hashes`` from
it, it is an input of the image's content tag and part of every snapshot (it lives in the
project's build directory). Why here and not in shell: the hash check must name the file and
both hashes, and the rules (what is current, partial, tampered) want unit tests.
"""

DOCUMENTATION = r"""
module: wheel_lock
short_description: Resolve requirements into a hash lock; keep a wheelhouse that matches it
description:
  - C(state=locked) makes C(lock) current for C(requirements). The lock is current when its header
    records the requirements' SHA-256. Otherwise C(pip wheel -r requirements) (the host's pip
    configuration and C(pip_args)) fills a scratch directory under C(wheelhouse_root); the lock is
    written from the wheels it produced (SHA-256 of each file, sorted by name) and the scratch
    directory becomes the wheelhouse C(<wheelhouse_root>/<name>-<first 12 hex of the lock's SHA-256>).
  - C(state=wheelhouse) makes that wheelhouse hold exactly the lock's wheels plus C(requirements.lock)
    (a copy of the lock) and, with C(layered), C(requirements-layered.lock) (the lock's lines of those
    distributions). A missing or partial wheelhouse is filled from the lock's pins (C(pip wheel --no-deps));
    a wheel whose SHA-256 differs from the lock, a wheel the lock does not list, or a fetched wheel
    that is not the file the lock names, fails with the file and both hashes.
  - Check mode changes nothing; a lock that would be resolved (also when the requirements are not
    written yet) or a wheelhouse that would be filled reports changed. A tampered wheel fails in
    check mode too.
options:
  state: {description: What to make true., type: str, choices: [locked, wheelhouse], default: locked}
  requirements: {description: Requirements file on the target (C(state=locked))., type: path}
  lock: {description: The lock file on the target., type: path, required: true}
  name: {description: Short name of the wheelhouse (usually the image name)., type: str, required: true}
  wheelhouse_root: {description: Directory holding the wheelhouses., type: path, required: true}
  python: {description: Python with pip that runs C(pip wheel)., type: str, default: python3}
  python_version: {description: C(major.minor) the images run; C(python) must match it., type: str, default: "3.11"}
  pip_args: {description: Extra C(pip wheel) arguments., type: list, elements: str, default: []}
  layered:
    description: Distributions the image installs first in a layer of their own (their lock lines go to C(requirements-layered.lock)).
    type: list
    elements: str
    default: []
author: lakehouse-tick MLOps
"""

RETURN = r"""
lock_sha256: {description: SHA-256 of the lock file (empty in check mode when it would be resolved)., type: str, returned: always}
current: {description: The lock on disk was current before this run., type: bool, returned: state=locked}
dir: {description: The wheelhouse directory (the build context)., type: str, returned: always}
wheels: {description: Number of wheels in the lock., type: int, returned: always}
filled: {description: Wheels fetched into the wheelhouse in this run., type: list, returned: state=wheelhouse}
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

LOCK_COPY = "requirements.lock"
LAYERED_LOCK = "requirements-layered.lock"
HEADER_KEY = "# requirements-sha256: "
_LINE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]*)==(?P<version>\S+) --hash=sha256:(?P<sha256>[0-9a-f]{64})"
                   r"\s+# (?P<file>\S+\.whl)$")
_CHUNK = 1 << 20


class LockError(Exception):
    """A rule says no; the message is what the task fails with."""


def file_sha256(path, chunk=_CHUNK):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def normalize(name):
    """PEP 503 name: lower case, runs of - _ . as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_pin(filename):
    """(normalized name, version) from a wheel file name (PEP 427: name-version[-build]-py-abi-plat.whl)."""
    parts = filename[:-len(".whl")].split("-") if filename.endswith(".whl") else []
    if len(parts) not in (5, 6):
        raise LockError(f"{filename} is not a wheel file name (name-version[-build]-python-abi-platform.whl)")
    return normalize(parts[0]), parts[1]


def lock_text(name, requirements_sha256, wheels):
    """The lock for ``wheels`` ({file name: sha256}), one line per distribution, sorted by name.

    Each line is ``name==version --hash=sha256:<hex>  # <file>``: what ``pip install
    --require-hashes`` reads (pip drops the comment), and the file the wheelhouse must hold.
    """
    entries = {}
    for filename, sha256 in wheels.items():
        dist, version = wheel_pin(filename)
        if dist in entries:
            raise LockError(f"Two wheels of {dist} in one resolution: {entries[dist][2]} and {filename}")
        entries[dist] = (version, sha256, filename)
    lines = [
        f"# {name}: every distribution the image installs, pinned to the wheel the wheelhouse resolved.",
        "# Written by docker_host (wheel_lock) from `pip wheel -r` of the requirements below; the image",
        "# installs with `pip install --no-index --require-hashes -r` this file. Do not edit: delete it",
        "# to resolve the requirements again (newer dependencies, a new image tag).",
        f"{HEADER_KEY}{requirements_sha256}",
    ]
    lines += [f"{dist}=={entries[dist][0]} --hash=sha256:{entries[dist][1]}  # {entries[dist][2]}" for dist in sorted(entries)]
    return "\n".join(lines) + "\n"


def parse_lock(text, path="lock"):
    """(requirements sha256 or '', [entries]) of a lock this module wrote; LockError on any other line."""
    requirements_sha256, entries = "", []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(HEADER_KEY):
            requirements_sha256 = line[len(HEADER_KEY):].strip()
        elif not line.strip() or line.startswith("#"):
            continue
        else:
            match = _LINE.match(line)
            if not match:
                raise LockError(f"{path} line {number} is not 'name==version --hash=sha256:<hex>  # <file>.whl': {line[:120]}")
            entries.append(match.groupdict())
    if not entries:
        raise LockError(f"{path} pins no wheel")
    return requirements_sha256, entries


def layered_text(entries, layered):
    """The lock lines of the ``layered`` distributions (in lock order); LockError for a name not locked."""
    wanted = {normalize(name) for name in layered}
    missing = sorted(wanted - {entry["name"] for entry in entries})
    if missing:
        raise LockError(f"Layered package(s) not in the lock: {', '.join(missing)}")
    return "".join(f"{e['name']}=={e['version']} --hash=sha256:{e['sha256']}  # {e['file']}\n"
                   for e in entries if e["name"] in wanted)


def check_wheelhouse(directory, entries, allowed=(LOCK_COPY, LAYERED_LOCK)):
    """(missing file names, [(file, expected, actual)] mismatches, unexpected file names) of ``directory``."""
    present = set(os.listdir(directory)) if os.path.isdir(directory) else set()
    missing, mismatched = [], []
    for entry in entries:
        if entry["file"] not in present:
            missing.append(entry["file"])
            continue
        actual = file_sha256(os.path.join(directory, entry["file"]))
        if actual != entry["sha256"]:
            mismatched.append((entry["file"], entry["sha256"], actual))
    unexpected = sorted(present - {entry["file"] for entry in entries} - set(allowed))
    return missing, mismatched, unexpected


def mismatch_message(directory, mismatched, unexpected, lock):
    parts = [f"{os.path.join(directory, f)}: sha256 {actual}, the lock {lock} says {expected}"
             for f, expected, actual in mismatched]
    parts += [f"{os.path.join(directory, f)}: not in the lock {lock}" for f in unexpected]
    return ("The wheelhouse does not match the lock (tampered or corrupted?); nothing was built. "
            + "; ".join(parts) + ". Remove the wheelhouse directory to fetch the locked wheels again, "
            "or delete the lock to resolve anew.")


def write_atomic(path, text, mode=0o644):
    directory = os.path.dirname(path) or "."
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".wheel-lock-")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


class Pip:
    """Runs ``pip wheel`` with the host's pip configuration, after checking the Python version."""

    def __init__(self, module):
        self.module = module
        self.checked = False

    def wheel(self, wheel_dir, args):
        params = self.module.params
        if not self.checked:
            rc, out, err = self.module.run_command([params["python"], "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            if rc != 0 or out.strip() != params["python_version"]:
                raise LockError(f"{params['python']} is Python {out.strip() or err.strip()[:200]}, but the images run Python "
                                f"{params['python_version']}; point docker_host_wheelhouse_python at a Python "
                                f"{params['python_version']} with pip.")
            self.checked = True
        argv = [params["python"], "-m", "pip", "wheel", "--quiet", "--progress-bar", "off", "--wheel-dir", wheel_dir,
                *params["pip_args"], *args]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
            raise LockError(f"pip wheel failed ({proc.returncode}) for {params['name']}:\n{tail}")


def publish(scratch, target):
    """Rename the complete ``scratch`` directory to ``target``; False when another run got there first.

    Projects on one host share the cache, and the project lock does not cover it: two runs may
    fill the same lock's wheelhouse at once. The loser keeps the winner's directory (checked
    against the lock before any build) and its own scratch is removed by the caller.
    """
    os.chmod(scratch, 0o755)
    try:
        os.rename(scratch, target)
    except OSError:
        if os.path.isdir(target):
            return False
        raise
    return True


def wheel_files(directory):
    return {f: file_sha256(os.path.join(directory, f)) for f in sorted(os.listdir(directory)) if f.endswith(".whl")}


def wheelhouse_dir(root, name, lock_sha256):
    return os.path.join(root, f"{name}-{lock_sha256[:12]}")


def resolve(module, pip):
    """state=locked: (changed, result)."""
    params = module.params
    if not params["requirements"] or not os.path.isfile(params["requirements"]):
        if module.check_mode:  # a task before this one would have written it
            return True, {"current": False, "lock_sha256": "", "wheels": 0, "dir": ""}
        raise LockError(f"The requirements file {params['requirements']} does not exist.")
    requirements_sha256 = file_sha256(params["requirements"])
    text = read_text(params["lock"])
    if text is not None:
        recorded, entries = parse_lock(text, params["lock"])
        if recorded == requirements_sha256:
            sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
            return False, {"current": True, "lock_sha256": sha, "wheels": len(entries),
                           "dir": wheelhouse_dir(params["wheelhouse_root"], params["name"], sha)}
    if module.check_mode:
        return True, {"current": False, "lock_sha256": "", "wheels": 0, "dir": ""}
    os.makedirs(params["wheelhouse_root"], mode=0o755, exist_ok=True)
    scratch = tempfile.mkdtemp(dir=params["wheelhouse_root"], prefix=f".{params['name']}-resolve-")
    try:
        pip.wheel(scratch, ["-r", params["requirements"]])
        text = lock_text(params["name"], requirements_sha256, wheel_files(scratch))
        _, entries = parse_lock(text, params["lock"])
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        target = wheelhouse_dir(params["wheelhouse_root"], params["name"], sha)
        if not os.path.isdir(target):
            write_atomic(os.path.join(scratch, LOCK_COPY), text)
            publish(scratch, target)
        # An existing wheelhouse of the same lock is checked when the image is built.
        write_atomic(params["lock"], text)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True, {"current": False, "lock_sha256": sha, "wheels": len(entries), "dir": target}


def fill(module, pip):
    """state=wheelhouse: (changed, result)."""
    params = module.params
    text = read_text(params["lock"])
    if text is None:
        raise LockError(f"The lock {params['lock']} does not exist (state=locked writes it).")
    _, entries = parse_lock(text, params["lock"])
    layered = layered_text(entries, params["layered"]) if params["layered"] else None
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    target = wheelhouse_dir(params["wheelhouse_root"], params["name"], sha)
    missing, mismatched, unexpected = check_wheelhouse(target, entries)
    if mismatched or unexpected:
        raise LockError(mismatch_message(target, mismatched, unexpected, params["lock"]))
    wanted = {LOCK_COPY: text, LAYERED_LOCK: layered}
    stale = [f for f, content in wanted.items() if read_text(os.path.join(target, f)) != content]
    result = {"lock_sha256": sha, "wheels": len(entries), "dir": target, "filled": missing}
    if not missing and not stale:
        return False, result
    if module.check_mode:
        return True, result
    os.makedirs(params["wheelhouse_root"], mode=0o755, exist_ok=True)
    scratch = tempfile.mkdtemp(dir=params["wheelhouse_root"], prefix=f".{params['name']}-fill-")
    try:
        if missing:
            # The pins alone (no hashes): a wheel pip built from an sdist never matches an sdist's
            # hash, so pip's own check cannot be used here; the files are checked just below.
            by_file = {e["file"]: e for e in entries}
            pip.wheel(scratch, ["--no-deps", *[f"{by_file[f]['name']}=={by_file[f]['version']}" for f in missing]])
            got_missing, got_mismatched, _ = check_wheelhouse(scratch, [by_file[f] for f in missing], allowed=())
            if got_missing or got_mismatched:
                parts = [f"{f}: fetched sha256 {actual}, the lock {params['lock']} says {expected}" for f, expected, actual in got_mismatched]
                parts += [f"{f}: pip fetched another file for {by_file[f]['name']}=={by_file[f]['version']}"
                          f" ({', '.join(sorted(os.listdir(scratch))) or 'nothing'})" for f in got_missing]
                raise LockError("The index no longer serves the locked wheels: " + "; ".join(parts)
                                + ". Delete the lock to resolve the requirements anew.")
        if not os.path.isdir(target):
            for filename, content in wanted.items():
                if content is not None:
                    write_atomic(os.path.join(scratch, filename), content)
            for extra in set(os.listdir(scratch)) - set(missing) - {f for f, c in wanted.items() if c is not None}:
                os.unlink(os.path.join(scratch, extra))
            if not publish(scratch, target):
                return fill(module, pip)  # another run filled it meanwhile: check that one
        else:
            for filename in missing:
                os.replace(os.path.join(scratch, filename), os.path.join(target, filename))
            for filename, content in wanted.items():
                if content is None:
                    if os.path.exists(os.path.join(target, filename)):
                        os.unlink(os.path.join(target, filename))
                elif filename in stale:
                    write_atomic(os.path.join(target, filename), content)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True, result


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["locked", "wheelhouse"], "default": "locked"},
            "requirements": {"type": "path"},
            "lock": {"type": "path", "required": True},
            "name": {"type": "str", "required": True},
            "wheelhouse_root": {"type": "path", "required": True},
            "python": {"type": "str", "default": "python3"},
            "python_version": {"type": "str", "default": "3.11"},
            "pip_args": {"type": "list", "elements": "str", "default": []},
            "layered": {"type": "list", "elements": "str", "default": []},
        },
        required_if=[("state", "locked", ["requirements"])],
        supports_check_mode=True,
    )
    pip = Pip(module)
    try:
        changed, result = (resolve if module.params["state"] == "locked" else fill)(module, pip)
    except (LockError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
