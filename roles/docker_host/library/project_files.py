#!/usr/bin/python
"""Directories and small files of a project, made current in one module call.

Why: a warm converge spends most of its time starting modules (about 0.3 s each on these
hosts, measured), and a role's build and compose files were one `file` or `template` call
each, loops one per item. The contents are rendered on the controller (the template lookup,
as the template module does); this module compares and writes them all at once, and says which
paths changed so callers can decide what to rebuild or restart.
"""

DOCUMENTATION = r"""
module: project_files
short_description: Make several directories and files current in one call
description:
  - Creates each directory in C(directories) (with its parents) and sets its owner, group and mode.
  - Writes each file in C(files) whose content differs (atomically, through a temporary file in the
    same directory), then sets its owner, group and mode. A file's directory must exist or be listed
    in C(directories).
  - Check mode changes nothing and reports what would change; diff mode shows the old and new text of
    each file that would change (never for files marked C(secret)).
options:
  directories:
    description: Directories, made in list order.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      mode: {description: Octal mode as a string (C("0755"))., type: str, required: true}
      owner: {description: Owner name or uid., type: str, default: root}
      group: {description: Group name or gid., type: str, default: root}
  files:
    description: Files and their complete contents.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      content: {description: The whole text of the file., type: str, required: true}
      mode: {description: Octal mode as a string (C("0644"))., type: str, required: true}
      owner: {description: Owner name or uid., type: str, default: root}
      group: {description: Group name or gid., type: str, default: root}
      secret: {description: Keep the content out of the diff., type: bool, default: false}
      validate:
        description:
          - Command run on the new content before it replaces the file (C(%s) is the temporary file's path),
            as the template module's C(validate). A non-zero exit fails naming the file; the old file stays.
        type: str
"""

RETURN = r"""
changed_paths:
  description: Paths created, rewritten or whose owner, group or mode changed, in input order.
  type: list
  elements: str
  returned: always
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

MODE_DIGITS = frozenset("01234567")


def check_entry(entry: dict, kind: str) -> str | None:
    """The problem with one entry, or None: absolute path, octal mode."""
    if not os.path.isabs(entry["path"]):
        return f"{kind} path {entry['path']!r} is not absolute"
    mode = entry["mode"]
    if not (3 <= len(mode) <= 4 and set(mode) <= MODE_DIGITS):
        return f"{kind} {entry['path']}: mode {mode!r} is not an octal string such as '0644'"
    return None


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_atomically(module: AnsibleModule, path: str, data: bytes, validate: str | None) -> None:
    """Write beside the target, check it, then rename over it: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=".project_files.", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if validate:
            rc, out, err = module.run_command(validate % tmp)
            if rc != 0:
                module.fail_json(msg=f"{path}: the new content failed validation ({validate}): {(err or out).strip()}")
        module.atomic_move(tmp, path, unsafe_writes=False)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def attributes(module: AnsibleModule, entry: dict) -> dict:
    return module.load_file_common_arguments(
        {"path": entry["path"], "mode": entry["mode"], "owner": entry["owner"], "group": entry["group"]})


def ensure_directory(module: AnsibleModule, entry: dict) -> bool:
    path = entry["path"]
    changed = False
    if not os.path.isdir(path):
        if os.path.lexists(path):
            module.fail_json(msg=f"{path} exists and is not a directory")
        changed = True
        if not module.check_mode:
            os.makedirs(path, exist_ok=True)
    if module.check_mode and changed:
        return True
    return module.set_fs_attributes_if_different(attributes(module, entry), changed)


def ensure_file(module: AnsibleModule, entry: dict, planned_dirs: set[str], diffs: list) -> bool:
    path = entry["path"]
    if os.path.isdir(path):
        module.fail_json(msg=f"{path} is a directory, not a file")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent) and not (module.check_mode and parent in planned_dirs):
        module.fail_json(msg=f"the directory of {path} does not exist: list it in directories")
    new = to_bytes(entry["content"], errors="surrogate_or_strict")
    old = read_bytes(path)
    changed = old != new
    if changed:
        if module._diff and not entry["secret"]:
            diffs.append({"before_header": path, "after_header": path,
                          "before": "" if old is None else to_text(old, errors="surrogate_or_replace"),
                          "after": entry["content"]})
        if module.check_mode:
            return True
        write_atomically(module, path, new, entry["validate"])
    return module.set_fs_attributes_if_different(attributes(module, entry), changed)


def main() -> None:
    entry_options = {
        "path": {"type": "path", "required": True},
        "mode": {"type": "str", "required": True},
        "owner": {"type": "str", "default": "root"},
        "group": {"type": "str", "default": "root"},
    }
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [], "options": entry_options},
            "files": {"type": "list", "elements": "dict", "default": [],
                      "options": {**entry_options, "content": {"type": "str", "required": True},
                                  "secret": {"type": "bool", "default": False},
                                  "validate": {"type": "str"}}},
        },
        supports_check_mode=True,
    )
    directories = module.params["directories"]
    files = module.params["files"]
    problems = [p for p in (check_entry(e, "directory") for e in directories) if p]
    problems += [p for p in (check_entry(e, "file") for e in files) if p]
    paths = [e["path"] for e in directories + files]
    problems += sorted({f"{p} is listed twice" for p in paths if paths.count(p) > 1})
    if problems:
        module.fail_json(msg="; ".join(problems))

    changed_paths = [e["path"] for e in directories if ensure_directory(module, e)]
    diffs: list = []
    planned = {e["path"] for e in directories}
    changed_paths += [e["path"] for e in files if ensure_file(module, e, planned, diffs)]
    result = {"changed": bool(changed_paths), "changed_paths": changed_paths}
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
