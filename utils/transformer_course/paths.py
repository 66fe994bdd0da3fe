"""Where the course keeps what it caches (downloaded data, the grader's generated gradebooks)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$TRANSFORMER_COURSE_CACHE`` if set, else ``~/.cache/transformer_course``."""
    env = os.environ.get("TRANSFORMER_COURSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "transformer_course"
