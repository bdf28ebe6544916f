"""Controller side of ``mlops_lock``: says who this run is, then runs the module.

The owner of the lock is the controller's ansible-playbook process. Tasks run in worker
processes forked from it, so it is this worker's parent. Its start time (from /proc)
tells it apart from a later process that reuses the pid.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime

from ansible.plugins.action import ActionBase


def controller_owner(pid: int | None = None) -> dict:
    """pid, start_ticks, started, command and host of the ansible-playbook process."""
    pid = pid or os.getppid()
    command, start_ticks, started = "ansible-playbook", 0, time.time()
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            command = cmdline.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()[:300]
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="utf-8") as proc_stat:
            boot = next(int(line.split()[1]) for line in proc_stat if line.startswith("btime "))
        started = boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        pass  # no /proc on this controller: pid and host still name the run
    return {
        "pid": pid,
        "start_ticks": start_ticks,
        "started": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "host": socket.gethostname(),
    }


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args, owner=controller_owner())
        result.update(self._execute_module(module_name="mlops_lock", module_args=args, task_vars=task_vars))
        return result
