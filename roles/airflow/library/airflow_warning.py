#!/usr/bin/python
"""Emit an Ansible [WARNING] (ansible.builtin has no module for that)."""

DOCUMENTATION = r"""
module: airflow_warning
short_description: Show a message as an Ansible warning
description:
  - Returns the message in C(warnings), so the callback prints it as C([WARNING]) in the
    play output and in the recap's warnings; changes nothing.
options:
  msg:
    description: The warning text.
    type: str
    required: true
author: lakehouse-tick MLOps
"""

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(argument_spec={"msg": {"type": "str", "required": True}}, supports_check_mode=True)
    module.warn(module.params["msg"])
    module.exit_json(changed=False, msg=module.params["msg"])


if __name__ == "__main__":
    main()
