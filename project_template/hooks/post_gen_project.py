"""Keep the files of the chosen variant and drop the other one.

Each folder under ``variants/`` holds the files that differ between the
starting points; the chosen one is merged into the project root.
"""

import shutil
from pathlib import Path

CHOSEN = "{{ cookiecutter.variant }}"

variants = Path("variants")
shutil.copytree(variants / CHOSEN, ".", dirs_exist_ok=True)
shutil.rmtree(variants)
