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
  - A file is given by its C(content), or C(generate)d once (a random password or key, never rewritten),
    or rendered on the target from a C(template) whose C(${name}) placeholders are read from C(sources)
    files (e.g. a connection URL holding a generated password): the values never reach the controller.
  - Check mode changes nothing and reports what would change; diff mode shows the old and new text of
    each file that would change (never for files marked C(secret), generated or rendered from sources).
options:
  root:
    description: Directory that relative paths (of directories, files and C(sources)) are taken under.
    type: path
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
      content: {description: The whole text of the file (one of C(content) C(generate) C(template))., type: str}
      generate:
        description:
          - Create the file once with random content, never rewrite it (its owner, group and mode are still set).
          - C(length) letters and digits (C(format=text)), or the URL-safe base64 of 32 random bytes, a Fernet key
            (C(format=fernet)).
        type: dict
        suboptions:
          length: {description: Characters of a text secret., type: int, default: 32}
          format: {description: Kind of secret., type: str, choices: [text, fernet], default: text}
      template:
        description:
          - Text whose C(${name}) placeholders are replaced with the contents of C(sources) (surrounding whitespace
            dropped), read on the target, also from files generated earlier in the same call. C($$) is a C($).
        type: str
      sources:
        description: Placeholder name to the absolute path of the file that holds its value.
        type: dict
        default: {}
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
created_paths:
  description: The paths among C(changed_paths) that did not exist before (would not, in check mode).
  type: list
  elements: str
  returned: always
"""

import base64
import os
import secrets
import string
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


def entry_problem(entry: dict) -> str | None:
    """The problem with how a file's content is given, or None."""
    given = [key for key in ("content", "generate", "template") if entry[key] is not None]
    if len(given) != 1:
        return f"file {entry['path']}: give exactly one of content, generate, template (got {', '.join(given) or 'none'})"
    if entry["generate"] is not None and not 8 <= entry["generate"]["length"] <= 256:
        return f"file {entry['path']}: generate.length must be 8-256 (got {entry['generate']['length']})"
    for name, source in entry["sources"].items():
        if not os.path.isabs(source):
            return f"file {entry['path']}: source {name} ({source!r}) is not an absolute path"
    return None


def generated(spec: dict) -> bytes:
    if spec["format"] == "fernet":
        return base64.urlsafe_b64encode(os.urandom(32))
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(spec["length"])).encode()


def rendered(module: AnsibleModule, entry: dict) -> bytes | None:
    """The template with its sources filled in; None in check mode when a source is still to be made."""
    values = {}
    for name, source in entry["sources"].items():
        data = read_bytes(source)
        if data is None:
            if module.check_mode:
                return None
            module.fail_json(msg=f"{entry['path']}: source {name} ({source}) does not exist")
        values[name] = to_text(data, errors="surrogate_or_strict").strip()
    try:
        return to_bytes(string.Template(entry["template"]).substitute(values), errors="surrogate_or_strict")
    except (KeyError, ValueError) as exc:
        module.fail_json(msg=f"{entry['path']}: the template names a placeholder that sources lack or is malformed: {exc}")


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
    old = read_bytes(path)
    if entry["generate"] is not None:
        new = old if old is not None else generated(entry["generate"])
    elif entry["template"] is not None:
        new = rendered(module, entry)
    else:
        new = to_bytes(entry["content"], errors="surrogate_or_strict")
    changed = new is None or old != new  # None: check mode, a source still to be generated
    if changed:
        secret = entry["secret"] or entry["content"] is None
        if module._diff and not secret:
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
            "root": {"type": "path"},
            "directories": {"type": "list", "elements": "dict", "default": [], "options": entry_options},
            "files": {"type": "list", "elements": "dict", "default": [],
                      "options": {**entry_options, "content": {"type": "str"},
                                  "generate": {"type": "dict", "options": {
                                      "length": {"type": "int", "default": 32},
                                      "format": {"type": "str", "choices": ["text", "fernet"], "default": "text"}}},
                                  "template": {"type": "str"},
                                  "sources": {"type": "dict", "default": {}},
                                  "secret": {"type": "bool", "default": False},
                                  "validate": {"type": "str"}}},
        },
        supports_check_mode=True,
    )
    directories = module.params["directories"]
    files = module.params["files"]
    root = module.params["root"]
    if root:
        for entry in directories + files:
            entry["path"] = os.path.join(root, entry["path"])
        for entry in files:
            entry["sources"] = {name: os.path.join(root, path) for name, path in entry["sources"].items()}
    problems = [p for p in (check_entry(e, "directory") for e in directories) if p]
    problems += [p for p in (check_entry(e, "file") or entry_problem(e) for e in files) if p]
    paths = [e["path"] for e in directories + files]
    problems += sorted({f"{p} is listed twice" for p in paths if paths.count(p) > 1})
    if problems:
        module.fail_json(msg="; ".join(problems))

    created_paths = [e["path"] for e in directories + files if not os.path.lexists(e["path"])]
    changed_paths = [e["path"] for e in directories if ensure_directory(module, e)]
    diffs: list = []
    planned = {e["path"] for e in directories}
    changed_paths += [e["path"] for e in files if ensure_file(module, e, planned, diffs)]
    result = {"changed": bool(changed_paths), "changed_paths": changed_paths, "created_paths": created_paths}
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
