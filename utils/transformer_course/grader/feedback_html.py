"""Feedback a learner can open anywhere: math without a network, and a word on what is still to be graded.

nbgrader's HTML (its feedback pages and formgrader's) typesets math with MathJax from a CDN, so
offline a page shows raw ``$...$``. Here the markdown cells' TeX becomes MathML before the page
is written (:class:`MathMLPreprocessor`, with ``latex2mathml``): every current browser draws
MathML itself, with no script and no download. :func:`finish_feedback_page` then drops the CDN
script from a written feedback page and, when written answers still wait for the instructor,
says so at the top.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

try:
    from nbconvert.preprocessors import Preprocessor
except ImportError:  # pragma: no cover - nbconvert comes with nbgrader
    Preprocessor = object  # type: ignore[assignment,misc]

# code that must stay as written: fenced blocks, then inline code spans (any run of backticks)
_CODE = re.compile(r"(^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\2[^\n]*$|(`+)(?:(?!\3).)+?\3)", re.M | re.S)
# $$...$$ (may span lines), then $...$ on one line; a backslash-escaped dollar is not a delimiter
_MATH = re.compile(r"(?<![\\$])\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)([^$\n]+?)(?<![\s\\])\$(?!\d)", re.S)


def tex_to_mathml(tex: str, display: bool = False) -> str | None:
    """MathML for a TeX formula, or None when it cannot be converted (the TeX is then left as it is)."""
    try:
        from latex2mathml.converter import convert
    except ImportError:  # pragma: no cover - a dependency of the course
        return None
    try:
        mathml = convert(tex.strip(), display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - anything the converter does not know
        return None
    # an HTML page knows <math> without the namespace, and nbconvert's pass over headings (an XML parser)
    # would otherwise rename the elements ns0:math, which no browser draws
    return mathml.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "")


def markdown_math_to_mathml(source: str) -> str:
    """``source`` (markdown) with every ``$...$`` and ``$$...$$`` outside code replaced by MathML."""
    def convert(segment: str) -> str:
        def one(m: re.Match) -> str:
            display = m.group(1) is not None
            mathml = tex_to_mathml(m.group(1) if display else m.group(2), display=display)
            if mathml is None:
                return m.group(0)
            return mathml.replace("\n", "")
        return _MATH.sub(one, segment)

    out, last = [], 0
    for m in _CODE.finditer(source):
        out.append(convert(source[last:m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(convert(source[last:]))
    return "".join(out)


class MathMLPreprocessor(Preprocessor):
    """nbconvert preprocessor: the TeX of markdown cells as MathML (see the module's docstring)."""

    def preprocess_cell(self, cell, resources, index):
        if cell.get("cell_type") == "markdown" and "$" in cell.get("source", ""):
            cell.source = markdown_math_to_mathml(cell.source)
        return cell, resources


_CDN_MATHJAX = re.compile(r"<script[^>]*src=\"https?://[^\"]*mathjax[^\"]*\"[^>]*>\s*</script>", re.I)
_MATHJAX_CONFIG = re.compile(r"<script type=\"text/x-mathjax-config\">.*?</script>", re.S)
MANUAL_NOTE_ID = "tc-needs-manual-grading"


def finish_feedback_page(path: str | Path, needs_manual_grading: bool) -> None:
    """Make a written feedback page self-contained (no CDN MathJax) and say whether grading is finished."""
    path = Path(path)
    page = path.read_text(encoding="utf-8")
    page = _CDN_MATHJAX.sub("", page)
    page = _MATHJAX_CONFIG.sub("", page)
    if needs_manual_grading and MANUAL_NOTE_ID not in page:
        note = (f'<div id="{MANUAL_NOTE_ID}" style="border:2px solid #c77c00;background:#fff4e0;padding:0.8em 1em;'
                f'margin:1em 0;font-size:15px"><strong>Not final yet.</strong> {html.escape(MANUAL_NOTE)}</div>')
        page = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + note, page, count=1)
    path.write_text(page, encoding="utf-8")


MANUAL_NOTE = ("Your written answers still wait for the instructor's grading: the score below counts the "
               "autograded tests only, and this page will be written again when the grading is done.")
