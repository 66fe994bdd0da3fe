"""Text corpora for character-level language models, and batches drawn from them.

Used by notebook 07 (GPT).  Two corpora:

- **Tiny Shakespeare** (Karpathy 2015, char-rnn; nanoGPT's ``shakespeare_char``):
  1,115,394 characters of Shakespeare's plays, downloaded once into a cache
  directory and verified by its SHA-256 checksum on every load;
- an **offline corpus** present on every machine: the docstrings of the Python
  standard library, read from its source files in a fixed order and cleaned to
  printable ASCII.  :func:`load_corpus` falls back to it (and says so) when Tiny
  Shakespeare is neither cached nor downloadable.

Set ``TRANSFORMER_COURSE_CACHE`` to choose the cache directory and
``TRANSFORMER_COURSE_OFFLINE=1`` to never try the network.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import os
import re
import sysconfig
import tempfile
import urllib.request
from pathlib import Path

import torch

from .paths import cache_dir

__all__ = [
    "TINY_SHAKESPEARE_URL",
    "TINY_SHAKESPEARE_SHA256",
    "TINY_SHAKESPEARE_BYTES",
    "CorpusUnavailable",
    "cache_dir",
    "load_tiny_shakespeare",
    "offline_corpus",
    "load_corpus",
    "CharTokenizer",
    "train_val_split",
    "get_batch",
]

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_BYTES = 1_115_394
TINY_SHAKESPEARE_FILE = "tinyshakespeare.txt"


class CorpusUnavailable(OSError):
    """The corpus is neither in the cache nor downloadable (offline, or a bad download)."""


def _offline_requested() -> bool:
    return os.environ.get("TRANSFORMER_COURSE_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified(data: bytes) -> bool:
    return len(data) == TINY_SHAKESPEARE_BYTES and _sha256(data) == TINY_SHAKESPEARE_SHA256


def load_tiny_shakespeare(*, download: bool = True, cache: str | os.PathLike | None = None,
                          timeout: float = 10) -> str:
    """Tiny Shakespeare as one string, from the cache or downloaded into it.

    ``cache``: the cache directory (default :func:`cache_dir`).  A cached file
    whose checksum is wrong (a truncated download, an edited file) is deleted
    and fetched again.  A download is verified before it is cached.  Raises
    :class:`CorpusUnavailable` when the file cannot be had (``download=False``
    or ``TRANSFORMER_COURSE_OFFLINE=1`` with nothing valid cached, no network,
    a wrong checksum).
    """
    folder = Path(cache).expanduser() if cache is not None else cache_dir()
    path = folder / TINY_SHAKESPEARE_FILE
    problem = "it is not in the cache"
    if path.exists():
        data = path.read_bytes()
        if _verified(data):
            return data.decode("utf-8")
        path.unlink()                                       # corrupt or truncated: never use it
        problem = "the cached copy failed its SHA-256 check and was deleted"
    if not download or _offline_requested():
        raise CorpusUnavailable(f"Tiny Shakespeare is unavailable: {problem} ({path}) and downloading is off")
    try:
        with urllib.request.urlopen(TINY_SHAKESPEARE_URL, timeout=timeout) as response:
            data = response.read()
    except Exception as exc:                                # URLError, timeouts, HTTP errors, DNS
        raise CorpusUnavailable(f"Tiny Shakespeare is unavailable: {problem} ({path}) and the download from "
                                f"{TINY_SHAKESPEARE_URL} failed: {exc}") from exc
    if not _verified(data):
        raise CorpusUnavailable(f"the download from {TINY_SHAKESPEARE_URL} is not Tiny Shakespeare: "
                                f"{len(data)} bytes, SHA-256 {_sha256(data)} (expected {TINY_SHAKESPEARE_BYTES} "
                                f"bytes, {TINY_SHAKESPEARE_SHA256})")
    try:                                                    # write then rename: never a half-written cache file
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
    except OSError:
        pass                                                # a read-only cache still gives the text
    return data.decode("utf-8")


# ------------------------------------------------------------- offline ---

# well-documented modules first (a fixed order); then the rest of the standard library, sorted
_FIRST_MODULES = (
    "collections/__init__.py", "functools.py", "argparse.py", "random.py", "statistics.py", "fractions.py",
    "textwrap.py", "string.py", "pathlib.py", "json/__init__.py", "csv.py", "datetime.py", "calendar.py",
    "heapq.py", "bisect.py", "difflib.py", "shutil.py", "subprocess.py", "threading.py", "logging/__init__.py",
    "unittest/case.py", "inspect.py", "typing.py", "dataclasses.py", "enum.py", "os.py", "pydoc.py",
    "doctest.py", "email/message.py", "http/client.py", "tarfile.py", "zipfile.py", "configparser.py",
    "optparse.py", "pickle.py", "ipaddress.py", "turtle.py", "mailbox.py", "imaplib.py", "ftplib.py",
    "smtplib.py", "asyncio/events.py", "contextlib.py", "abc.py", "copy.py", "pprint.py", "tempfile.py",
    "weakref.py", "urllib/parse.py", "urllib/request.py", "codecs.py", "locale.py", "queue.py", "socket.py",
    "ssl.py", "base64.py", "uuid.py", "numbers.py",
)
_SKIP_PARTS = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages", "dist-packages",
               "ensurepip", "__pycache__", "tkinter", "pydoc_data", "encodings"}
_NOT_PRINTABLE = re.compile(r"[^\n\x20-\x7e]")


def _docstrings(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc) >= 40:
                out.append(doc)
    return out


def _clean(doc: str) -> str:
    doc = doc.replace("\t", "    ")
    doc = _NOT_PRINTABLE.sub("", doc)
    lines = [line.rstrip() for line in doc.splitlines()
             if not line.lstrip().startswith((">>>", "..."))]     # doctest code is not prose
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _stdlib_sources(stdlib: Path):
    """The listed modules first, then every other source file of the standard library in sorted order
    (walked only if needed)."""
    first = [stdlib / name for name in _FIRST_MODULES]
    yield from first
    rest = []
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = [d for d in dirs if d not in _SKIP_PARTS]
        rest.extend(Path(root) / f for f in files if f.endswith(".py"))
    yield from sorted(p for p in rest if p not in first)


@functools.lru_cache(maxsize=4)
def offline_corpus(min_chars: int = 200_000) -> str:
    """At least ``min_chars`` characters of English prose available offline on every machine.

    The docstrings of the Python standard library (modules, classes,
    functions), read with :mod:`ast` from the source files (nothing is
    imported), in a fixed order, cleaned to printable ASCII plus newlines and
    separated by blank lines.  The text depends only on the Python version.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pieces, total, seen = [], 0, set()
    for path in _stdlib_sources(stdlib):
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for doc in _docstrings(source):
            doc = _clean(doc)
            if len(doc) < 40 or doc in seen:
                continue
            seen.add(doc)
            pieces.append(doc)
            total += len(doc) + 2
        if total >= min_chars:
            break
    text = "\n\n".join(pieces) + "\n"
    if len(text) < min_chars:
        raise CorpusUnavailable(f"the standard library's sources give only {len(text)} characters of docstrings "
                                f"(wanted {min_chars}); is the Python installation stripped of its .py files?")
    return text


def load_corpus(prefer: str = "tinyshakespeare", *, download: bool = True) -> tuple[str, str]:
    """``(text, name)``: Tiny Shakespeare when cached or downloadable, else the offline corpus.

    ``prefer="tinyshakespeare"`` tries :func:`load_tiny_shakespeare` and falls
    back, printing a one-line note, to :func:`offline_corpus` (name
    ``"offline"``); ``prefer="offline"`` goes straight to the offline corpus.
    """
    if prefer == "offline":
        return offline_corpus(), "offline"
    if prefer != "tinyshakespeare":
        raise ValueError(f"prefer must be 'tinyshakespeare' or 'offline', got {prefer!r}")
    try:
        return load_tiny_shakespeare(download=download), "tinyshakespeare"
    except CorpusUnavailable as exc:
        print(f"Note: using the offline corpus (Python standard-library docstrings) instead of Tiny "
              f"Shakespeare: {exc}")
        return offline_corpus(), "offline"


# ------------------------------------------------------------ tokens ---

class CharTokenizer:
    """Character-level tokenizer: one id per distinct character of ``text``, in sorted order.

    ``stoi`` maps characters to ids, ``itos`` ids to characters;
    ``encode(str) -> list[int]``, ``decode(ids) -> str``.
    """

    def __init__(self, text: str) -> None:
        self.itos: list[str] = sorted(set(text))
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, s: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in s]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in this tokenizer's vocabulary") from None

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.itos[int(i)] for i in ids)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def train_val_split(ids: torch.Tensor, frac: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``frac`` of ``ids`` for training, the rest for validation (no shuffling: text is sequential)."""
    n = int(frac * len(ids))
    return ids[:n], ids[n:]


def get_batch(data: torch.Tensor, block_size: int, batch_size: int, *, generator: torch.Generator | None = None,
              device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``data`` (1-D int64): inputs ``x`` and targets ``y``, both ``(B, block_size)``.

    ``y`` is ``x`` shifted by one position: ``y[b, t] = data[i_b + t + 1]``, the
    token that follows ``x[b, t]``.
    """
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens: need more than block_size={block_size}")
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    windows = data.unfold(0, block_size + 1, 1)[ix]               # (B, block_size + 1): one copy
    x, y = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y
