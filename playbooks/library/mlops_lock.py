#!/usr/bin/python
"""One run at a time on a project dir: a lock file taken at the start of a run.

Two converges (or a converge and a rollback) at once wipe each other's ``*.partial``
snapshot and wheelhouse and restart services under each other. The lock is a JSON file
created atomically (O_EXCL) under an flock on its directory, so two runs racing for a
stale lock cannot both take it over. The action plugin of the same name fills in
``owner`` (the controller's ansible-playbook process).
"""

DOCUMENTATION = r"""
module: mlops_lock
short_description: Take or release the one-run-at-a-time lock of a project dir
description:
  - C(state=acquired) creates O(path) holding the owner as JSON (pid, command, start
    time, controller host). When another live run holds it, fails at once naming that run.
  - A lock whose holder is gone is stale and is taken over with a warning. The holder is
    gone when it ran on this host (a local connection: controller and target are one
    machine) and its pid no longer runs, or runs but started at another time (a reused
    pid). A holder on another controller cannot be seen from here: its lock is stale once
    it is older than O(stale_after) seconds.
  - C(state=released) removes O(path) when this run holds it, and leaves any other
    holder's lock alone.
  - The lock is run bookkeeping, not managed state, so it never reports C(changed) (a
    re-run that changes nothing still reads changed=0). In check mode nothing is written
    or removed; a lock held by another live run still fails, since reading a platform
    in the middle of another run's changes would report nonsense.
options:
  path:
    description: The lock file; its directory is created when missing.
    type: path
    required: true
  state:
    description: Take or give back the lock.
    type: str
    choices: [acquired, released]
    default: acquired
  owner:
    description: >-
      This run: C(pid), C(start_ticks) (the process start in clock ticks after boot, 0
      when unknown), C(command), C(started) (ISO time) and C(host) of the controller.
      Filled in by the action plugin.
    type: dict
    required: true
  stale_after:
    description: Seconds after which a lock held from another controller host counts as stale.
    type: int
    default: 10800
author: lakehouse-tick MLOps
"""

import errno
import fcntl
import json
import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule


class LockHeld(Exception):
    """Another live run holds the lock."""

    def __init__(self, holder, path):
        self.holder = holder
        super().__init__(
            f"Another run holds the lock {path}: pid {holder.get('pid')} on {holder.get('host')} "
            f"({holder.get('command')}), started {holder.get('started')}. Wait for it to finish; "
            f"if that process is gone, remove {path}."
        )


def process_start_ticks(pid):
    """Start time of a running pid in clock ticks after boot; None when it does not run."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return int(fields[19])  # field 22 of proc(5); fields[0] is field 3


def same_owner(holder, owner):
    return (
        isinstance(holder, dict)
        and holder.get("host") == owner.get("host")
        and holder.get("pid") == owner.get("pid")
        and int(holder.get("start_ticks") or 0) == int(owner.get("start_ticks") or 0)
    )


def stale_reason(holder, this_host, now, stale_after):
    """Why the holder's lock may be taken over, or None while the holder may be running."""
    if not isinstance(holder, dict) or not holder.get("pid"):
        return "it is unreadable (a run killed while writing it)"
    if holder.get("host") == this_host:
        ticks = process_start_ticks(holder["pid"])
        if ticks is None:
            return f"pid {holder['pid']} no longer runs on {this_host}"
        if holder.get("start_ticks") and ticks != int(holder["start_ticks"]):
            return f"pid {holder['pid']} on {this_host} is now another process"
        return None
    age = now - float(holder.get("created", now))
    if age > stale_after:
        return f"it was taken from {holder.get('host')} {int(age)} s ago (stale after {stale_after} s)"
    return None


def read_holder(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (ValueError, UnicodeDecodeError):
        return None


def write_new(path, record):
    """Create ``path`` holding ``record``; FileExistsError when it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())


class DirectoryGuard:
    """flock on the lock's directory: acquirers and releasers take turns, so a takeover
    (read, judge stale, unlink, create) is one step for everyone else."""

    def __init__(self, directory):
        self.directory = directory
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.directory, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def acquire(path, owner, check_mode=False, stale_after=10800, this_host=None, now=None):
    """Take the lock. Returns ``{acquired, took_over}``; raises LockHeld."""
    this_host = this_host or socket.gethostname()
    now = time.time() if now is None else now
    directory = os.path.dirname(path) or "."
    # A first run that fails its preflight leaves no empty project dir: release removes
    # the directory it created when nothing else has been put there.
    record = dict(owner, created=now, created_dir=not os.path.isdir(directory))
    if record["created_dir"]:
        if check_mode:
            return {"acquired": False, "took_over": None}
        os.makedirs(directory, mode=0o755, exist_ok=True)
    with DirectoryGuard(directory):
        if not os.path.exists(path):
            if not check_mode:
                write_new(path, record)
            return {"acquired": not check_mode, "took_over": None}
        holder = read_holder(path)
        if same_owner(holder, owner):
            return {"acquired": True, "took_over": None}
        reason = stale_reason(holder, this_host, now, stale_after)
        if reason is None:
            raise LockHeld(holder, path)
        if not check_mode:
            os.unlink(path)
            write_new(path, record)
        return {"acquired": not check_mode, "took_over": {"holder": holder, "reason": reason}}


def release(path, owner, check_mode=False):
    """Remove the lock when ``owner`` holds it. Returns whether it was removed."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return False
    with DirectoryGuard(directory):
        holder = read_holder(path) if os.path.exists(path) else None
        if not same_owner(holder, owner):
            return False
        if check_mode:
            return False
        os.unlink(path)
    if holder.get("created_dir"):
        try:
            os.rmdir(directory)
        except OSError:
            pass  # the run filled it: it is the project dir now
    return True


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["acquired", "released"], "default": "acquired"},
            "owner": {"type": "dict", "required": True},
            "stale_after": {"type": "int", "default": 10800},
        },
        supports_check_mode=True,
    )
    path, owner = module.params["path"], module.params["owner"]
    try:
        if module.params["state"] == "released":
            module.exit_json(changed=False, released=release(path, owner, module.check_mode))
        result = acquire(path, owner, module.check_mode, module.params["stale_after"])
    except LockHeld as exc:
        module.fail_json(msg=str(exc), holder=exc.holder)
    except OSError as exc:
        module.fail_json(msg=f"Cannot use the lock {path}: {os.strerror(exc.errno or errno.EIO)}")
    if result["took_over"]:
        holder = result["took_over"]["holder"] or {}
        module.warn(
            f"Took over the stale lock {path} from pid {holder.get('pid')} on {holder.get('host')} "
            f"({holder.get('command')}, started {holder.get('started')}): {result['took_over']['reason']}."
        )
    module.exit_json(changed=False, path=path, **result)


if __name__ == "__main__":
    main()
