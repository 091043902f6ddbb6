"""Refuse a project name that is not a usable Python package name.

``wsio new`` checks the name more thoroughly before rendering; this guard is
for plain ``cookiecutter`` runs. cookiecutter runs it inside the new
project's folder, whose name is the project name, and removes the folder
when it exits non-zero.
"""

import keyword
import os
import re
import sys

NAME = os.path.basename(os.getcwd())
DEPENDENCIES = {"web", "gevent", "socketio", "engineio", "mako", "click", "webpy_socketio"}
# the project's own modules
OWN = {"app", "events", "settings", "tests", "conftest"}

if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", NAME) or keyword.iskeyword(NAME):
    problem = "is not a valid Python identifier (ASCII letters, digits, underscores)"
elif NAME.lower() in sys.stdlib_module_names or NAME.lower() in DEPENDENCIES:
    problem = "would shadow a module of the same name"
elif NAME.lower() in OWN:
    problem = "is the name of one of the project's own modules"
else:
    problem = None
if problem:
    print(f"project_name {NAME!r} {problem}; choose another name.", file=sys.stderr)
    sys.exit(1)
