"""Every setting of the grader, defined once (environment variables override the defaults).

Read by the trusted side (:mod:`.nbgrading`, :mod:`.sandbox`, :mod:`.classroom`) and by the harness that
runs inside the sandbox (:mod:`.harness`), so this module imports nothing but the standard library.
"""
from __future__ import annotations

import os

#: Longest a cell may run (seconds). nbgrader's default is 30 s; this course's training cells take about a
#: minute on a 2-core CPU.
CELL_TIMEOUT_S = float(os.environ.get("TRANSFORMER_COURSE_CELL_TIMEOUT", "300"))
#: Longest a whole notebook may run, restarts included (seconds).
NOTEBOOK_TIMEOUT_S = float(os.environ.get("TRANSFORMER_COURSE_NOTEBOOK_TIMEOUT", "1800"))
#: Address space of the graded process (MiB): a cell that allocates more gets a MemoryError.
MEMORY_MB = int(os.environ.get("TRANSFORMER_COURSE_MEMORY_MB", "8192"))
#: Processes and threads the graded notebook may have at once (where cgroups allow the limit).
MAX_PROCESSES = int(os.environ.get("TRANSFORMER_COURSE_MAX_PROCESSES", "256"))

#: Packages the checks run on. Nothing in them may be rebound between the start of grading and the end of a
#: test (the harness's guard compares them with a snapshot), and code that assigns to their attributes is
#: flagged for review (the static review). ``sys`` and ``builtins`` are in the list for the review; the
#: guard watches their entries by name (see harness.SYS_NAMES and the builtins snapshot).
PROTECTED_PACKAGES = frozenset({
    "numpy", "torch", "transformers", "sentence_transformers", "safetensors", "transformer_course",
    "math", "cmath", "operator", "functools", "contextlib", "io", "inspect", "copy", "tracemalloc",
    "builtins", "sys", "_frozen_importlib", "_frozen_importlib_external",
})
