"""Compile DAG files without running them; print {"errors": [{"path", "error"}]} as JSON.

Runs on the controller before anything is copied, so a file with a syntax error never
reaches the live DAG folder.
"""
import json
import sys

errors = []
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as handle:
            compile(handle.read(), path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        errors.append({"path": path, "error": f"{type(exc).__name__}: {exc.msg if hasattr(exc, 'msg') else exc}"
                       + (f" (line {line})" if line else "")})
print(json.dumps({"errors": errors}))
