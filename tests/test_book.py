"""The course book builds with Sphinx, offline, and reads right in a browser.

Both editions are built once per test session with scripts/book.py, from the executed
copies the notebook tests left in tests/reports/executed/ (tests marked ``book`` run
after the notebook tests, see conftest.py; a chapter without a fresh copy is executed
here). Without a browser: every chapter has a page, the student edition holds no
solution anywhere (pages, sources, search index) and the instructor edition holds each,
every launch URL is well formed and points at the configured repository and a notebook
that exists, the README's badge agrees, the API reference documents every public name,
the glossary defines the terms the chapters use. In Chromium (served from 127.0.0.1,
every request to another host refused and reported): every page at desktop and phone
width has no horizontal overflow, every image has alt text, search finds a known word,
the launch buttons carry those URLs, the instructor's solutions are folded.
"""
from __future__ import annotations

import contextlib
import functools
import html as html_mod
import http.server
import json
import re
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import pytest

import book
import book_api
import book_figures
import book_launch
import course
from notebook_utils import NOTEBOOKS_DIR, notebook_paths, report_line

pytestmark = [pytest.mark.book, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = notebook_paths(NOTEBOOKS_DIR)
URL = book_launch.repository_url()
OWNER, NAME = book_launch.github_parts(URL)
WIDTHS = {"desktop": 1400, "phone": 390}


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, request):
    """{edition: html folder} of a fresh build of both editions."""
    out = tmp_path_factory.mktemp("book")
    t0 = time.perf_counter()
    html = {v: book.build(v, out) for v in book.VARIANTS}
    report_line(request, f"[book] both editions built in {time.perf_counter() - t0:.0f} s")
    return html


def _pages(html: Path) -> list[dict]:
    return json.loads((html / "book.json").read_text())["pages"]


def _html_name(page: dict) -> str:
    return re.sub(r"\.(ipynb|md|rst)$", ".html", page["file"])


def _text(page_html: str) -> str:
    """The text of an HTML page (code highlighting splits lines into spans)."""
    body = re.sub(r"<(script|style)\b.*?</\1>", "", page_html, flags=re.S)
    return html_mod.unescape(re.sub(r"<[^>]+>", "", body))


def _code(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _solution_fixes(nb: dict) -> list[list[str]]:
    """Per solution, the code lines only it has (comments aside: not in any other cell of
    the chapter nor in the student's stub)."""
    cells = nb["cells"]
    elsewhere = {_code(ln) for c in cells if course.SOLUTION not in course.tags(c)
                 for ln in course.source(c).splitlines()}
    fixes = []
    for i, c in enumerate(cells):
        if course.SOLUTION in course.tags(c):
            stub = {_code(ln) for ln in course.stub_source(nb, i).splitlines()}
            fix = [_code(ln) for ln in course.source(c).splitlines()
                   if _code(ln) and _code(ln) not in elsewhere and _code(ln) not in stub]
            assert fix, f"solution cell {i} does not differ from the rest of the chapter"
            fixes.append(fix)
    return fixes


# ------------------------------------------------------------------ without a browser
def test_every_chapter_and_reference_page_is_built(built_book):
    for edition, html in built_book.items():
        files = {p["file"] for p in _pages(html)}
        for path in CHAPTERS:
            assert f"notebooks/{path.name}" in files, f"the {edition} book has no page for {path.name}"
        for p in _pages(html):
            assert (html / _html_name(p)).is_file(), f"{_html_name(p)} was not written ({edition})"
        assert ("course.md" in files) == (edition == "instructor"), "the course plan is for instructors only"
        assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is not served by the book"


def test_student_book_has_no_solution_and_instructor_book_has_each(built_book):
    student, instructor = built_book["student"], built_book["instructor"]
    every_student_file = "\n".join(p.read_text(errors="ignore") for p in student.rglob("*") if p.is_file()
                                   and p.suffix in {".html", ".txt", ".js", ".ipynb", ".json"})
    for path in CHAPTERS:
        nb = course.read(path)
        page = f"notebooks/{path.stem}.html"
        s_html, i_html = (student / page).read_text(), (instructor / page).read_text()
        fixes = _solution_fixes(nb)
        assert "solution" not in re.findall(r'class="([^"]*solution[^"]*)"', s_html), page
        assert not re.search(r'class="[^"]*\bsolution\b', s_html), f"the student page {page} has a solution block"
        assert len(re.findall(r'class="[^"]*\bsolution\b[^"]*\bdropdown\b', i_html)) == len(fixes), (
            f"{page}: the instructor page should show {len(fixes)} folded solution block(s)")
        assert len(re.findall(r'class="[^"]*\bexercise\b', s_html)) == len(fixes), page
        s_text, i_text = _text(s_html), _text(i_html)
        for fix in fixes:
            for ln in fix:
                assert ln not in s_text, f"{page}: solution line {ln!r} is on the student page"
                assert ln not in every_student_file, f"solution line {ln!r} is in a file of the student book"
                assert ln in i_text, f"{page}: solution line {ln!r} is missing from the instructor page"
        # the student's cell to fill in is there instead
        for i, c in enumerate(nb["cells"]):
            if course.SOLUTION in course.tags(c):
                first = course.stub_source(nb, i).splitlines()[0]
                assert first in s_text and first not in i_text, f"{page}: stub {first!r}"


def _launch_links(page_html: str) -> list[str]:
    return [html_mod.unescape(h) for h in re.findall(r'href="([^"]+)"', page_html)
            if h.startswith((book_launch.BINDER + "/v2", book_launch.COLAB + "/github"))]


def check_launch_url(href: str) -> str:
    """The repository path of the notebook a Binder or Colab URL opens (asserts its form)."""
    u = urlparse(href)
    assert u.scheme == "https" and not u.fragment, href
    if u.netloc == urlparse(book_launch.BINDER).netloc:
        parts = u.path.split("/")
        assert parts[:3] == ["", "v2", "gh"] and parts[3:5] == [OWNER, NAME] and len(parts) == 6 and parts[5], href
        urlpath = parse_qs(u.query)["urlpath"][0]
        assert urlpath.startswith("lab/tree/"), href
        return urlpath.removeprefix("lab/tree/")
    assert u.netloc == urlparse(book_launch.COLAB).netloc, href
    m = re.fullmatch(rf"/github/{re.escape(OWNER)}/{re.escape(NAME)}/blob/[\w.\-]+/(.+)", u.path)
    assert m, href
    return m.group(1)


def test_launch_urls_open_the_chapter_in_the_configured_repository(built_book):
    for edition, html in built_book.items():
        for path in CHAPTERS:
            page = (html / f"notebooks/{path.stem}.html").read_text()
            assert 'href="../run.html"' in page and f"{path.stem}.ipynb" in _text(page), (
                f"{path.name}: the page does not say how to run the chapter on your machine")
            links = _launch_links(page)
            kinds = {urlparse(h).netloc for h in links}
            assert kinds == {"mybinder.org", "colab.research.google.com"}, (edition, path.name, links)
            for href in links:
                rel = check_launch_url(href)
                assert rel == f"notebooks/{path.name}" and (REPO / rel).is_file(), href
    # the README's badge and the run page come from the same setting
    readme = (REPO / "README.md").read_text()
    assert book_launch.readme_badge(URL) in readme, (
        f"README.md's Binder badge must be {book_launch.readme_badge(URL)} ([project.urls] Repository)")
    assert (REPO / check_launch_url(book_launch.binder_url(URL, "notebooks/00_primer.ipynb"))).is_file()
    assert check_launch_url(book_launch.binder_url(URL)) == "notebooks"
    with pytest.raises(ValueError, match="github.com/OWNER/NAME"):
        book_launch.github_parts("https://example.org/a/b")


def test_each_chapter_installs_nifkit_on_colab_first():
    want = book_launch.colab_cell_source(URL)
    for path in CHAPTERS:
        cells = course.read(path)["cells"]
        first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
        assert course.source(cells[first_code]) == want, (
            f"{path.name}: the first code cell must be the Colab install cell: "
            "run `python scripts/book_launch.py colab-cell`")
        assert f"git+{URL}" in want and 'if "google.colab" in sys.modules' in want


def test_api_reference_lists_every_public_name(built_book):
    api = book_api.public_api()
    assert sum(map(len, api.values())) > 100 and "nifkit.info" in api
    for edition, html in built_book.items():
        page = (html / "api.html").read_text()
        missing = [f"{pkg}.{n}" for pkg, names in api.items() for n in names if f'id="{pkg}.{n}"' not in page]
        assert not missing, f"the API reference ({edition}) lacks {missing[:10]} ({len(missing)} in all)"
    # a docstring made it: Binner's says what its parameters are
    assert "bin_range" in _text(page.split('id="nifkit.info.Binner"', 1)[1][:4000])


def test_glossary_defines_the_terms_and_chapters_link_them(built_book):
    terms = book_figures.glossary_terms()
    for t in ("alpha rule", "telescoping", "Gauss-Legendre", "shuffle null", "plug-in", "swish",
              "conditional co-information", "prec@k", "percentile interval", "EI_parts", "Miller-Madow",
              "one-hot codes", "synergy", "Louvain modularity", "data processing inequality",
              "Morcos et al.'s index", "do(.)", "H^max", "degen_p"):
        assert t in terms, f"the glossary lacks {t!r}"
    html = built_book["student"]
    glossary = (html / "glossary.html").read_text()
    assert len(re.findall(r'<dt id="term-', glossary)) == len(terms)
    n_links = sum(len(re.findall(r'href="\.\./glossary\.html#term-', (html / f"notebooks/{p.stem}.html").read_text()))
                  for p in CHAPTERS)
    assert n_links >= 10, f"only {n_links} glossary links in the chapters"


def test_glossary_links_only_the_first_prose_use():
    nb = {"cells": [{"cell_type": "markdown", "source": "## The plug-in estimate\n`plug-in` in code, $plug-in$"},
                    {"cell_type": "markdown", "source": "The Plug-in estimator [plug-in](x.md); plug-in again"}]}
    assert book_figures.link_glossary_terms(nb, ["plug-in", "swish"]) == ["plug-in"]
    assert nb["cells"][0]["source"] == "## The plug-in estimate\n`plug-in` in code, $plug-in$"
    assert nb["cells"][1]["source"] == "The {term}`Plug-in <plug-in>` estimator [plug-in](x.md); plug-in again"


def test_figures_get_captions_and_alt_text_and_explorers_a_picture(built_book):
    png = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBO", "text/plain": "<Figure>"}}
    widget = {"output_type": "display_data", "metadata": {},
              "data": {book_figures.WIDGET: {"model_id": "m"}, "text/plain": "VBox()"}}

    def code(src, outputs, **meta):
        return {"cell_type": "code", "metadata": dict(meta), "outputs": outputs, "source": src}

    nb = {"cells": [{"cell_type": "markdown", "source": "## 2. The *plane*"},
                    code('ax.set_title(f"bins = {n}")', [png]),
                    code("ex = FlowExplorer(net)\nex", [dict(widget, data={**widget["data"], "image/png": "iVBO"})]),
                    code("progress()", [widget]),
                    code("plt.plot(x)", [png], mystnb={"figure": {"caption": "mine"}})]}
    assert book_figures.caption_figures(nb, "x") == 2
    c = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert c[0]["metadata"]["mystnb"]["figure"]["caption"] == "Bins = … (section \u201c2. The plane\u201d)."
    assert "bins = …" in c[0]["metadata"]["mystnb"]["image"]["alt"]
    assert list(c[1]["outputs"][0]["data"]) == ["image/png"] and "FlowExplorer" in c[1]["metadata"]["mystnb"]["image"]["alt"]
    assert c[2]["outputs"] == [] and "mystnb" not in c[2]["metadata"]
    assert c[3]["metadata"]["mystnb"] == {"figure": {"caption": "mine"}}
    # in the book: every chapter with an explorer shows its picture, every figure has a caption
    for path in CHAPTERS:
        page = (built_book["student"] / f"notebooks/{path.stem}.html").read_text()
        explorers = set(re.findall(r"\b(\w+Explorer)\(", "\n".join(
            course.source(c) for c in course.read(path)["cells"] if c["cell_type"] == "code")))
        for name in explorers:
            assert f"Picture of the {name} explorer" in page, f"{path.name}: no picture of {name}"
        n_fig = len(re.findall(r'<img alt="(?:Plot from|Picture of)', page))
        assert n_fig and page.count("<figcaption>") >= n_fig, f"{path.name}: {n_fig} figures, not all captioned"


def test_an_explorer_carries_a_picture_of_its_view():
    from nifkit.widgets.primer import BiasExplorer

    ex = BiasExplorer(rho=0.8, n_bins=8, n_samples=500)
    bundle = ex._repr_mimebundle_()
    assert book_figures.WIDGET in bundle and bundle["image/png"].startswith("iVBOR")  # base64 of a PNG


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


def _check_page(page, url: str, p: dict, edition: str) -> dict:
    resp = page.goto(url, wait_until="load")
    assert resp is not None and resp.status == 200, f"{url}: HTTP {resp and resp.status}"
    page.wait_for_timeout(50)
    found = page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth, width: window.innerWidth,
        noAlt: [...document.images].filter(i => !(i.getAttribute('alt') || '').trim()).map(i => i.src),
        images: document.images.length,
        broken: [...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src),
        launch: [...document.querySelectorAll('a[href]')].map(a => a.href)
                 .filter(h => h.startsWith('https://mybinder.org/v2') || h.startsWith('https://colab.research.google.com/github')),
        solutions: document.querySelectorAll('.solution').length,
        // content past the window's right edge must sit in a box that scrolls, not be cut off
        clipped: [...document.querySelectorAll('article *')].filter(e => {
            const r = e.getBoundingClientRect();
            if (r.width === 0 || r.right <= innerWidth + 1) return false;
            if (e.closest('mjx-assistive-mml')) return false;  // MathJax's hidden copy for screen readers
            for (let a = e.parentElement; a; a = a.parentElement) {
                const o = getComputedStyle(a).overflowX;
                if (o === 'auto' || o === 'scroll') return false;
            }
            return true;
        }).slice(0, 3).map(e => e.tagName + ' ' + (e.textContent || '').slice(0, 60)),
        h1: document.querySelectorAll('h1').length,
    })""")
    assert found["h1"] >= 1, f"{url} shows no title"
    assert found["scroll"] <= found["width"] + 1, (
        f"{url}: the page is {found['scroll']} px wide in a {found['width']} px window")
    assert not found["clipped"], f"{url}: content cut off at the right edge: {found['clipped']}"
    assert not found["noAlt"], f"{url}: images without alt text: {found['noAlt'][:3]}"
    assert not found["broken"], f"{url}: images that did not load: {found['broken'][:3]}"
    if p.get("notebook"):
        assert len(found["launch"]) == 2, f"{url}: launch buttons {found['launch']}"
        for href in found["launch"]:
            assert check_launch_url(href) == f"notebooks/{p['notebook']}", href
        if edition == "student":
            assert found["solutions"] == 0, f"{url}: a solution is on the student page"
    return found


@pytest.mark.browser
@pytest.mark.parametrize("edition", ["student", "instructor"])
def test_book_in_the_browser(built_book, browser_page, edition, request):
    html = built_book[edition]
    page = browser_page
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    def offline(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    n_img = 0
    try:
        with serve(html) as base:
            for label, width in WIDTHS.items():
                page.set_viewport_size({"width": width, "height": 900})
                for p in _pages(html):
                    n_img += _check_page(page, urljoin(base, _html_name(p)), p, edition)["images"]
            page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})
            # search: Sphinx's search page finds a word of the primer and links to its page
            page.goto(urljoin(base, "search.html?q=entropy"), wait_until="load")
            page.wait_for_selector("#search-results li a", timeout=20_000)
            hits = page.locator("#search-results li a").evaluate_all("els => els.map(e => e.href)")
            assert any("00_primer" in h for h in hits), hits[:5]
            # maths is typeset (MathJax from the book itself)
            page.goto(urljoin(base, "notebooks/00_primer.html"), wait_until="load")
            page.wait_for_selector("mjx-container", timeout=20_000)
            assert page.locator("div.cell_input button.copybtn").count() >= 5, "code cells without a copy button"
            assert page.locator("div.cell_input .highlight span.kn").count() >= 1, "code is not highlighted"
            if edition == "instructor":
                # a solution is folded until its button is pressed
                sol = page.locator(".solution.dropdown").first
                sol.scroll_into_view_if_needed()
                body = sol.locator(".solution-content, section, .highlight").last
                assert not body.is_visible(), "the first solution is not folded"
                sol.locator("button.toggle-button, .toggle-button").first.click()
                body.wait_for(state="visible", timeout=5_000)
    finally:
        page.unroute("**/*")
    assert not outside, f"the book asked another site for {outside[:5]} (it must work offline)"
    assert not errors, f"errors in the page console: {errors[:5]}"
    report_line(request, f"[book] {edition}: {len(_pages(html))} pages x {len(WIDTHS)} widths, {n_img} images checked")
