"""Feedback worth opening: the learner's figures inline, widgets and progress bars as a short note or
their last state, math drawn without a network, hidden tests still absent, and a word when written
answers still wait for the instructor.

The toy course (tests/fixtures/99_toy) is graded through the classroom's real path (the sandbox where
bubblewrap works); one submission draws a figure, an interactive widget, a progress bar, and tries to
put a script and a fake image into its feedback.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from transformer_course.grader import classroom
from transformer_course.grader.feedback_html import (MANUAL_NOTE_ID, finish_feedback_page,
                                                     markdown_math_to_mathml)
from transformer_course.grader.nbgrading import WIDGET_NOTE

from notebook_tools import build_toy_course, need_system_package, toy_submission
from test_pipeline import GOOD_DOUBLE, GOOD_SQUARE, _class_sandbox

# --- math without MathJax -----------------------------------------------------------------------------

def test_inline_and_display_math_become_mathml():
    out = markdown_math_to_mathml("The scale $\\sqrt{d_k}$ and\n\n$$\\frac{a}{b}$$\n")
    assert '<math display="inline"><mrow><msqrt>' in out and '<math display="block">' in out
    assert "$" not in out and "xmlns" not in out


@pytest.mark.parametrize("source", [
    "code `x = $a$` stays",
    "```python\nprint('$x$')\n```\n",
    "prices \\$5 and \\$10",
    "costs $5 and $10 each",
])
def test_code_and_dollars_that_are_not_math_stay(source):
    assert markdown_math_to_mathml(source) == source


def test_math_the_converter_cannot_read_stays_as_tex():
    assert markdown_math_to_mathml("broken $x^$ here") == "broken $x^$ here"


def test_every_formula_of_the_course_converts():
    from transformer_course.grader.feedback_html import _MATH, tex_to_mathml

    root = Path(__file__).resolve().parents[1] / "solutions"
    failed, total = [], 0
    for source in sorted(root.glob("*/*.py")):
        markdown = "\n".join(line[2:] for line in source.read_text().splitlines() if line.startswith("# "))
        for m in _MATH.finditer(markdown):
            total += 1
            tex = m.group(1) if m.group(1) is not None else m.group(2)
            if tex_to_mathml(tex) is None:
                failed.append((source.name, tex))
    assert total > 1000 and not failed, failed[:10]


def test_finishing_a_page_drops_the_cdn_and_adds_the_note_once(tmp_path):
    page = tmp_path / "f.html"
    page.write_text('<html><head><script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js'
                    '?config=TeX-AMS_CHTML-full,Safe"> </script><script type="text/x-mathjax-config">init();'
                    '</script></head><body class="x"><p>hi</p></body></html>')
    finish_feedback_page(page, needs_manual_grading=True)
    finish_feedback_page(page, needs_manual_grading=True)
    text = page.read_text()
    assert "cdnjs" not in text and "x-mathjax-config" not in text
    assert text.count(MANUAL_NOTE_ID) == 1 and text.index(MANUAL_NOTE_ID) > text.index("<body")


# --- the class: figures, widgets, progress bars, and what must not get in ------------------------------

RICH_DOUBLE = GOOD_DOUBLE + '''

import matplotlib.pyplot as plt
import ipywidgets as widgets
from IPython.display import HTML, display
from tqdm.auto import tqdm

plt.plot([0, 1, 2], [0, 1, 4])
plt.title("a learner's figure")
plt.show()

def draw(k=2):
    plt.plot([0, 1, 2], [0, k, 2 * k])
    plt.show()

widgets.interact(draw, k=widgets.IntSlider(value=2, min=1, max=5))
for _ in tqdm(range(50), desc="looping", mininterval=0):
    pass
display(HTML("<script>document.title = 'owned'</script>"))
display({"image/png": base64.b64encode(b"not a png").decode()}, raw=True)
'''


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """ada: full marks, figures and a written answer; cy: untouched."""
    sandbox = _class_sandbox()
    root = build_toy_course(tmp_path_factory.mktemp("course"))
    inbox = root.parent / "inbox"
    ada = toy_submission(root, inbox / "ada", double="import base64\n" + RICH_DOUBLE, square=GOOD_SQUARE)
    nb = nbformat.read(ada, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "why":
            cell.source = "Doubling adds $x + x = 2x$, and $\\sqrt{x^2} = |x|$."
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("My notes: $\\frac{1}{\\sqrt{d_k}}$ scales the scores."))
    nbformat.write(nb, ada)
    toy_submission(root, inbox / "cy")
    assert classroom.collect("99_toy", inbox, root=root) == 2
    summary = classroom.autograde(["99_toy"], workers=1, root=root, sandbox=sandbox)
    assert {r.student: r.score for r in summary.graded} == {"ada": 5, "cy": 0}, summary.report()
    pages = {p.parts[-3]: p for p in classroom.feedback(["99_toy"], root=root)}
    return root, pages


def test_feedback_shows_the_figures_and_notes_the_widget(graded_class):
    _, pages = graded_class
    html = pages["ada"].read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 2                                   # plt.show(), and what interact drew first
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert WIDGET_NOTE.split(":")[0] in html
    assert "interactive(children=" not in html


def test_a_progress_bar_keeps_its_last_state(graded_class):
    _, pages = graded_class
    html = pages["ada"].read_text()
    assert html.count("looping") == 2                     # the source line, and the bar's last state once
    assert re.search(r"looping: 100%", html)


def test_nothing_but_figures_and_text_comes_from_the_learners_outputs(graded_class):
    _, pages = graded_class
    html = pages["ada"].read_text()
    assert "<script>document.title" not in html          # only its escaped source, in the code cell
    assert "&lt;IPython.core.display.HTML object&gt;" in html     # what the display became: its text
    assert base64.b64encode(b"not a png").decode() not in html


def test_math_is_mathml_and_nothing_loads_from_a_cdn(graded_class):
    _, pages = graded_class
    html = pages["ada"].read_text()
    assert "cdnjs" not in html and not re.search(r"<script[^>]*src=[^>]*mathjax", html, re.I)
    assert "<msqrt>" in html and "$\\frac" not in html


def test_hidden_tests_stay_hidden(graded_class):
    _, pages = graded_class
    for page in pages.values():
        assert "double(21)" not in page.read_text()


def test_only_the_submission_with_a_written_answer_waits_for_manual_grading(graded_class):
    _, pages = graded_class
    assert MANUAL_NOTE_ID in pages["ada"].read_text()
    assert MANUAL_NOTE_ID not in pages["cy"].read_text()


@pytest.mark.slow
def test_the_page_offline_in_chromium_draws_figures_and_math(graded_class, tmp_path):
    """Opened from disk with every network request refused: the figures load and the math is laid out."""
    need_system_package("chromium")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    _, pages = graded_class
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    shot = tmp_path / "feedback.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 1600})
            asked = []
            context.route(re.compile(r"^https?://"), lambda route: (asked.append(route.request.url), route.abort()))
            page = context.new_page()
            page.goto(pages["ada"].resolve().as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=os.fspath(shot), full_page=True)
            keep = os.environ.get("TRANSFORMER_COURSE_SCREENSHOTS")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(keep) / "feedback.png")
            widths = page.eval_on_selector_all('img[src^="data:image/png"]', "els => els.map(e => e.naturalWidth)")
            assert len(widths) >= 2 and min(widths) > 100
            # MathML laid out by the browser: a fraction is taller than a line of text, a root has its sign
            display = page.eval_on_selector("math", "e => getComputedStyle(e).display")
            assert "math" in display, display
            # numerator over denominator: taller than one letter (unsupported MathML would put them side by side)
            frac, letter = page.eval_on_selector(
                "mfrac", "e => [e.getBoundingClientRect().height, e.querySelector('mi, mn').getBoundingClientRect().height]")
            assert frac > 1.4 * letter, (frac, letter)
            assert page.locator(f"#{MANUAL_NOTE_ID}").is_visible()
            assert asked == [], f"the page asked the network for {asked}"
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000


def test_clear_output_keeps_an_animations_last_frame_and_what_came_before():
    from transformer_course.grader.harness import _Displays

    chunks: list = []
    shown = _Displays()
    shown.start(chunks)
    shown.add({"text/plain": "before"})
    for frame in range(5):
        shown.clear()
        shown.add({"text/plain": f"frame {frame}"})
    assert [c[1]["text/plain"] for c in chunks] == ["before", "frame 4"]
