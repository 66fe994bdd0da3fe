"""The system packages the course's tools and tests use beyond Python, and installing them where one may.

- ``bubblewrap``: the grader's sandbox (``transformer-course autograde``; the red-team suite);
- ``postgresql``: a PostgreSQL gradebook for large classes (the class-scale test starts a server);
- ``chromium``: the browser tests (JupyterLab driven by Playwright; never a downloaded browser).

``python -m transformer_course.system --install`` (what ``make test`` runs first) installs the missing
ones with ``apt-get`` when it runs as root on Debian or Ubuntu; otherwise it says once what is missing
and how to install it, and the tests that need a missing package skip with that reason, except under
``CI=true``, where a missing package is a failure (the exit status here, and the tests).
``transformer-course doctor`` reports the same.
"""
from __future__ import annotations

import argparse
import glob
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class SystemPackage:
    debian: str                          # the Debian/Ubuntu package name
    needed_for: str
    find: Callable[[], str | None]       # where it is installed, or None


def _postgres() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


PACKAGES = (
    SystemPackage("bubblewrap", "the grader's sandbox (classroom autograding, tests/test_redteam.py)",
                  lambda: shutil.which("bwrap")),
    SystemPackage("postgresql", "a PostgreSQL gradebook (tests/test_scale.py)", _postgres),
    SystemPackage("chromium", "the browser tests (tests/test_browser.py)",
                  lambda: shutil.which("chromium") or shutil.which("chromium-browser")),
)


def missing() -> list[SystemPackage]:
    return [p for p in PACKAGES if not p.find()]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def can_install() -> bool:
    """Root on a machine with apt-get (Debian, Ubuntu): this process can install Debian packages itself."""
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def how_to_install(packages: list[SystemPackage]) -> str:
    names = " ".join(p.debian for p in packages)
    if platform.system() == "Linux":
        return f"sudo apt-get install {names}   (Debian/Ubuntu; other distributions have packages of the same names)"
    return ("bubblewrap is Linux-only: classroom autograding needs a Linux machine; "
            "PostgreSQL and Chromium come from your system's package manager")


def skip_reason(debian: str) -> str | None:
    """Why a test that needs ``debian`` cannot run here, or None when it is installed."""
    package = next(p for p in PACKAGES if p.debian == debian)
    if package.find():
        return None
    return f"{debian} is not installed ({package.needed_for}): {how_to_install([package])}"


def install(packages: list[SystemPackage], log=print) -> bool:
    """``apt-get install`` the packages (root only); True when all of them are there afterwards."""
    names = [p.debian for p in packages]
    log(f"installing system packages: {' '.join(names)} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *names], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"apt-get failed: {exc}")
    return not missing()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transformer_course.system", description=__doc__.split("\n")[0])
    parser.add_argument("--install", action="store_true", help="install what is missing, where this process may")
    args = parser.parse_args(argv)
    lacking = missing()
    if lacking and args.install and can_install():
        install(lacking)
        lacking = missing()
    if not lacking:
        print("system packages: " + ", ".join(f"{p.debian} ({p.find()})" for p in PACKAGES))
        return 0
    print("system packages missing: " + ", ".join(p.debian for p in lacking))
    for p in lacking:
        print(f"  {p.debian}: for {p.needed_for}")
    print(f"  install with: {how_to_install(lacking)}")
    if in_ci():
        print("  CI=true: the tests that need them will fail", file=sys.stderr)
        return 1
    print("  the tests that need them will be skipped, with this reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
