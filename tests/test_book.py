"""The course book builds, and reads right in a browser.

Both editions are built once per test session with scripts/book.py, from the executed
copies the notebook tests left in tests/reports/executed/ (tests marked ``book`` run
after the notebook tests, see conftest.py; a chapter without a fresh copy is executed
here). Then Chromium opens the built site, served from 127.0.0.1, and checks every page:
it renders, its figures load, its internal links (pages and anchors) resolve, its launch
buttons point at its notebook, search finds a section; the student edition shows no
solution, the instructor edition shows each one.
"""
from __future__ import annotations

import contextlib
import functools
import html as html_mod
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

import book
import course
from notebook_utils import NOTEBOOKS_DIR, notebook_paths, report_line

pytestmark = [pytest.mark.book, pytest.mark.timeout(1200)]

CHAPTERS = notebook_paths(NOTEBOOKS_DIR)


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """{edition: html folder} of a fresh build of both editions."""
    import time

    out = tmp_path_factory.mktemp("book")
    t0 = time.perf_counter()
    html = {v: book.build(v, out) for v in book.VARIANTS}
    seconds = time.perf_counter() - t0
    (out / "seconds.txt").write_text(f"{seconds:.1f}\n")
    return html


@contextlib.contextmanager
def serve(folder: Path):
    """A static file server for ``folder`` on 127.0.0.1 (a free port), in a thread."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


def _pages(html: Path) -> list[dict]:
    return json.loads((html / "book.json").read_text())["pages"]


def _image_outputs(nb: dict) -> int:
    return sum(1 for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
               if any(k.startswith("image/") for k in o.get("data", {})))


# ------------------------------------------------------------------ without a browser
def test_every_chapter_has_a_page(built_book):
    for edition, html in built_book.items():
        pages = _pages(html)
        files = {p.get("notebook") for p in pages}
        missing = [p.name for p in CHAPTERS if p.name not in files]
        assert not missing, f"the {edition} book has no page for {missing}"
        for p in pages:
            assert (html / p["html"]).is_file(), f"{p['html']} was not written"
        unknown = (html / "unknown-nodes.txt").read_text().split()
        assert not unknown, (f"MyST node types the renderer does not know: {unknown}; "
                             "add them to scripts/book_render.py (Renderer.node)")


def test_student_book_has_no_solution_and_instructor_book_has_each(built_book):
    for path in CHAPTERS:
        nb = course.read(path)
        cells = nb["cells"]
        sol_index = [i for i, c in enumerate(cells) if course.SOLUTION in course.tags(c)]
        solutions = [course.source(cells[i]) for i in sol_index]
        stubs = "\n".join(course.stub_source(nb, i) for i in sol_index)
        exercise_text = "\n".join(course.source(c) for c in cells if course.EXERCISE in course.tags(c))
        page = next(p["html"] for p in _pages(built_book["student"]) if p.get("notebook") == path.name)
        student = (built_book["student"] / page).read_text()
        instructor = (built_book["instructor"] / page).read_text()
        index = (built_book["student"] / "search.json").read_text()
        assert 'class="solution"' not in student, f"the student page {page} has a solution block"
        assert instructor.count('<section class="solution"') == len(solutions), (
            f"{page}: the instructor page should show {len(solutions)} solution block(s)")
        for sol in solutions:
            # the lines that make the fix (not in the first attempt, nor the stub's checker
            # call) are nowhere in the student edition
            fix = [ln for ln in sol.splitlines() if ln.strip() and ln not in exercise_text and ln not in stubs]
            assert fix, f"{page}: the solution does not differ from the exercise"
            for ln in fix:
                assert html_mod.escape(ln) not in student, f"{page}: solution line {ln!r} is in the student page"
                assert json.dumps(ln)[1:-1] not in index, f"solution line {ln!r} is in the student search index"
                assert html_mod.escape(ln) in instructor, f"{page}: solution line {ln!r} missing (instructor)"
        # the downloadable student notebook carries the stubs, not the solutions
        dl = course.read(built_book["student"] / "notebooks" / path.name)
        assert not course.has_solution(dl)
        assert sum(course.STUB in course.tags(c) for c in dl["cells"]) == len(solutions)


def test_an_executed_copy_stands_for_the_chapter_only_when_it_is_fresh(tmp_path):
    src = course.read(CHAPTERS[0])
    ex = course.read(CHAPTERS[0])
    for i, c in enumerate(ex["cells"]):
        if c["cell_type"] == "code":
            c["execution_count"] = i
    path = tmp_path / "executed.ipynb"
    course.write(ex, path)
    assert book.stale_reason(src, path) is None
    assert book.stale_reason(src, tmp_path / "missing.ipynb") == "no executed copy"
    code = next(c for c in ex["cells"] if c["cell_type"] == "code" and c["source"])
    code["outputs"] = [{"output_type": "error", "ename": "NameError", "evalue": "x", "traceback": []}]
    course.write(ex, path)
    assert "error" in book.stale_reason(src, path)
    code["outputs"], code["execution_count"] = [], None
    course.write(ex, path)
    assert "not executed" in book.stale_reason(src, path)
    edited = course.read(CHAPTERS[0])
    edited["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "new text"})
    assert book.stale_reason(edited, path) == "the chapter changed since it was executed"


# ------------------------------------------------------------------ in the browser
def _check_page(page, base: str, p: dict, src: Path, edition: str, checked_links: set) -> dict:
    url = urljoin(base, p["html"])
    resp = page.goto(url, wait_until="load")
    assert resp is not None and resp.status == 200, f"{url}: HTTP {resp and resp.status}"
    assert page.locator("article h1").count() >= 1, f"{p['html']} shows no title"
    assert page.locator("nav.sidebar .pages a").count() >= 2, f"{p['html']} has no chapter navigation"
    stats = {"page": p["html"], "images": 0}
    if p.get("notebook"):
        nb = course.read(src / "chapters" / p["notebook"])
        want = _image_outputs(nb)
        imgs = page.locator("article .outputs img")
        # lazy images: scroll each into view, then check it decoded
        sizes = imgs.evaluate_all("""async els => {
            for (const e of els) { e.loading = 'eager'; e.scrollIntoView(); }
            await Promise.all(els.map(e => e.decode().catch(() => null)));
            return els.map(e => e.naturalWidth);
        }""")
        assert len(sizes) == want, f"{p['html']}: {len(sizes)} figures shown, the chapter has {want}"
        assert all(w > 0 for w in sizes), f"{p['html']}: figures that did not load: {sizes}"
        stats["images"] = len(sizes)
        binder = page.locator(".launch a.binder").get_attribute("href")
        lab = page.locator(".launch a.lab").get_attribute("href")
        assert binder and binder.endswith("notebooks/" + p["notebook"]), binder
        assert lab and lab.endswith("/lab/tree/" + p["notebook"]), lab
        if edition == "student":
            assert page.locator(".solution").count() == 0, f"{p['html']}: a solution is on the student page"
        else:
            sols = page.locator("section.solution")
            for i in range(sols.count()):
                assert sols.nth(i).is_visible(), f"{p['html']}: solution {i} is not shown"
    # every internal link: the page exists, and so does the anchor
    hrefs = page.locator("a[href]").evaluate_all("els => els.map(e => e.href)")
    for href in hrefs:
        if urlparse(href).netloc != urlparse(base).netloc:
            continue
        doc, frag = urldefrag(href)
        if (doc, frag) in checked_links:
            continue
        checked_links.add((doc, frag))
        r = page.request.get(doc)
        assert r.status == 200, f"{p['html']}: broken link {href} (HTTP {r.status})"
        if frag and doc.endswith(".html"):
            body = r.text()
            assert f'id="{frag}"' in body, f"{p['html']}: link {href} points at a missing anchor #{frag}"
    return stats


@pytest.mark.browser
@pytest.mark.parametrize("edition", ["student", "instructor"])
def test_book_in_the_browser(built_book, browser_page, edition, request):
    html = built_book[edition]
    src = html.parent / "src"
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    with serve(html) as base:
        checked: set = set()
        stats = [_check_page(page, base, p, src, edition, checked) for p in _pages(html)]
        # search: a word of the primer finds its section, and the result link works
        page.goto(urljoin(base, "index.html"))
        page.fill("#search-input", "mutual information")
        page.wait_for_selector("#search-results li a", timeout=10_000)
        first = page.locator("#search-results li a").first
        target = first.get_attribute("href")
        first.click()
        page.wait_for_load_state("load")
        assert page.url.split("#")[0].endswith(target.split("#")[0]), (page.url, target)
    assert not errors, f"errors in the page console: {errors[:5]}"
    n_img = sum(s["images"] for s in stats)
    report_line(request, f"[book] {edition}: {len(stats)} pages, {n_img} figures, "
                         f"{len(checked)} internal links checked")
