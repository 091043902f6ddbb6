"""Keep the files of the chosen variant, drop the other one, and drop the
bytecode caches an installed copy of the template carries.

Each folder under ``variants/`` holds the files that differ between the
starting points; the chosen one is merged into the project root. pip
byte-compiles the template's .py files when it installs the package, and
cookiecutter would copy those ``__pycache__`` folders into the project.
"""

import shutil
from pathlib import Path

CHOSEN = "{{ cookiecutter.variant }}"

variants = Path("variants")
shutil.copytree(variants / CHOSEN, ".", dirs_exist_ok=True)
shutil.rmtree(variants)
for cache in sorted(Path(".").rglob("__pycache__"), reverse=True):
    shutil.rmtree(cache)
