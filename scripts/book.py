"""Build the course book with Sphinx: the Jupyter Book 1 stack, offline.

    python scripts/book.py [student|instructor|both] [--out build/book] [--rerun]

(``bash scripts/book.sh`` installs what it needs first, then runs this.)

1. **Executed chapters.** For each ``notebooks/*.ipynb`` the executed copy that the
   notebook tests left in ``tests/reports/executed/`` is used when it is *fresh* (same
   cell sources as the chapter, every code cell executed, no error output); otherwise the
   chapter is executed here with ``tests/notebook_utils.run_notebook`` (nbclient).
2. **Book sources** in ``build/book/<edition>/src``: each chapter as a notebook that
   myst-nb renders without executing it, with ``sphinx-exercise`` blocks around the
   tagged cells (scripts/course.py: ``exercise``/``solution``). The student edition puts
   the student's cell (the stub) where the solution was; the instructor edition keeps the
   solution, folded (``:class: dropdown``), and adds the course plan (docs/course.md).
   Every figure gets a caption and alt text from its cell (book_figures.py); an explorer
   shows the picture of its view when the chapter ran (the PNG that
   :class:`nifkit.widgets.Explorer` puts beside its widget). The glossary
   (docs/glossary.md), the API reference (autodoc over every package's ``__all__``,
   book_api.py) and a page on running the chapters complete it.
3. **Sphinx** (``sphinx-build`` with scripts/book_conf/conf.py: myst-nb,
   sphinx-book-theme, sphinx-exercise, sphinx-togglebutton, sphinx-copybutton,
   sphinx-design, MathJax from a PyPI package) writes ``build/book/<edition>/html``.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

import book_launch  # noqa: E402
import course  # noqa: E402
from course import EXERCISE, SOLUTION, source, tags  # noqa: E402

EXECUTED_DIR = REPO / "tests" / "reports" / "executed"
NOTEBOOKS_DIR = REPO / "notebooks"
CONF_DIR = HERE / "book_conf"
VARIANTS = ("student", "instructor")
#: the chapters' folder inside the book sources: the same as in the repository, so the
#: theme's Binder and Colab buttons point at the notebook's real path
CHAPTER_DIR = "notebooks"


class BookError(RuntimeError):
    """The book cannot be built (the message says why and what to do)."""


# ------------------------------------------------------------------ executed copies
def stale_reason(src_nb: dict, executed: Path) -> str | None:
    """Why the executed copy cannot stand for the chapter (None: it can)."""
    if not executed.is_file():
        return "no executed copy"
    try:
        ex = course.read(executed)
    except (OSError, ValueError) as exc:
        return f"unreadable executed copy ({exc})"
    a = [(c["cell_type"], source(c)) for c in src_nb["cells"]]
    b = [(c["cell_type"], source(c)) for c in ex["cells"]]
    if a != b:
        return "the chapter changed since it was executed"
    for i, cell in enumerate(ex["cells"]):
        if cell["cell_type"] != "code" or not source(cell).strip():
            continue
        if cell.get("execution_count") is None:
            return f"cell {i} was not executed"
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return f"cell {i} ended in an error"
    return None


def executed_chapter(path: Path, rerun: bool = False) -> dict:
    """The chapter with outputs: the tests' fresh executed copy, or a new run, in full mode
    (what a student sees, as the notebook tests run it)."""
    src_nb = course.read(path)
    copy_path = EXECUTED_DIR / path.name
    reason = "asked to re-run" if rerun else stale_reason(src_nb, copy_path)
    if reason is None:
        print(f"book: {path.name}: using the executed copy of the notebook tests")
    else:
        from notebook_utils import run_notebook

        print(f"book: {path.name}: executing in full mode ({reason}) ...", flush=True)
        run = run_notebook(path, fast=False)
        if run.error is not None:
            raise BookError(f"book: {path.name} failed to execute:\n{run.error}")
        print(f"book: {run.summary()}")
        copy_path = Path(run.executed_copy)
    executed = course.read(copy_path)
    # tags come from the source (the executed copy carries the same cells)
    for cell, src_cell in zip(executed["cells"], src_nb["cells"]):
        cell.setdefault("metadata", {})["tags"] = tags(src_cell)
    return executed


# ------------------------------------------------------------------ book sources
_CELL_IDS = itertools.count(1)


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "id": f"book-{next(_CELL_IDS)}", "metadata": {}, "source": text}


def _fence(directive: str, arg: str = "", options: dict | None = None) -> dict:
    opts = "".join(f":{k}: {v}\n" for k, v in (options or {}).items())
    return _md(f"```{{{directive}}} {arg}".rstrip() + "\n" + opts + "```")


def book_notebook(nb: dict, variant: str, stem: str) -> dict:
    """The chapter as the book shows it (the source notebook is not modified).

    Exercise and solution cells go into ``sphinx-exercise`` gated blocks; the student
    edition has the student's cell instead of the solution; the Colab install cell is
    left out (it does nothing outside Colab); figures get captions and alt text; the
    glossary terms are linked at their first use.
    """
    import book_figures

    out = copy.deepcopy(nb)
    out["metadata"].pop("widgets", None)  # no live widgets in the book: pictures instead
    book_figures.caption_figures(out, stem)
    book_figures.link_glossary_terms(out)
    cells, new, n_ex = out["cells"], [], 0
    for i, cell in enumerate(cells):
        t = tags(cell)
        if i == 1:  # after the title cell: where to run the chapter
            new.append(_md(f"```{{tip}}\nRun this chapter with its explorers live: **Binder** or **Colab** from the "
                           "rocket button at the top of the page, or on your machine with "
                           f"`bash scripts/lab.sh`, then open `{stem}.ipynb` ([how](../run.md)).\n```"))
        if book_launch.COLAB_TAG in t:
            continue
        if EXERCISE in t:
            n_ex += 1
            label = f"{stem}-ex{n_ex}"
            new.append(_fence("exercise-start", course.exercise_title(nb, i), {"label": label}))
            new.append(cell)
            if variant == "student" and i + 1 < len(cells) and SOLUTION in tags(cells[i + 1]):
                new.append({"cell_type": "code", "execution_count": None, "id": f"{label}-stub",
                            "metadata": {"tags": [course.STUB]},
                            "outputs": [], "source": course.stub_source(nb, i + 1)})
            new.append(_fence("exercise-end"))
            continue
        if SOLUTION in t:
            if variant == "instructor":
                new.append(_fence("solution-start", f"{stem}-ex{n_ex}", {"class": "dropdown"}))
                new.append(cell)
                new.append(_fence("solution-end"))
            continue
        new.append(cell)
    out["cells"] = new
    return out


def chapter_title(nb: dict, default: str) -> str:
    return next((ln.lstrip("# ").strip() for c in nb["cells"] if c["cell_type"] == "markdown"
                 for ln in source(c).splitlines() if ln.startswith("# ")), default)


def write_sources(variant: str, src: Path, rerun: bool) -> list[dict]:
    """Every page of the book in ``src``; returns the pages (file, kind, title, notebook)."""
    import book_api

    if src.exists():
        shutil.rmtree(src)
    (src / CHAPTER_DIR).mkdir(parents=True)
    pages = []
    for path in course.notebook_paths():
        nb = executed_chapter(path, rerun=rerun)
        course.write(book_notebook(nb, variant, path.stem), src / CHAPTER_DIR / path.name)
        pages.append({"file": f"{CHAPTER_DIR}/{path.name}", "kind": "chapter",
                      "title": chapter_title(nb, path.stem), "notebook": path.name})
    shutil.copy(REPO / "docs" / "glossary.md", src / "glossary.md")
    (src / "run.md").write_text(run_page(), encoding="utf-8")
    (src / "api.rst").write_text(book_api.api_page(), encoding="utf-8")
    pages += [{"file": "run.md", "kind": "page", "title": "Run the chapters"},
              {"file": "glossary.md", "kind": "page", "title": "Glossary"},
              {"file": "api.rst", "kind": "page", "title": "API reference"}]
    plan = REPO / "docs" / "course.md"
    if variant == "instructor" and plan.is_file():
        text = plan.read_text(encoding="utf-8").replace(RUN_TIMES_MARKER, run_times_table())
        (src / "course.md").write_text(text, encoding="utf-8")
        pages.append({"file": "course.md", "kind": "page", "title": "Course plan (instructors)"})
    (src / "index.md").write_text(landing(variant, pages), encoding="utf-8")
    (src / "book.json").write_text(json.dumps({"edition": variant, "pages": pages}, indent=1), encoding="utf-8")
    return pages


RUN_TIMES_MARKER = "<!-- run-times: scripts/book.py puts the measured table here -->"


def run_times_table() -> str:
    """Run time and peak memory of each chapter from tests/reports/notebooks.json."""
    report = REPO / "tests" / "reports" / "notebooks.json"
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return "*(No measurement yet: run `bash scripts/test.sh -m notebook` to measure the chapters.)*"
    rows = [f"| {name} | {e.get('seconds', 0):.0f} s | {e.get('peak_mb') or 0:,.0f} MB | {e.get('when', '')} |"
            for name, e in sorted(data.items())
            if e.get("ok") and (NOTEBOOKS_DIR / name).is_file()]
    return ("As measured by the last notebook test run on the machine that built this book (a "
            "machine shared with other work runs slower):\n\n"
            "| chapter | run time | peak memory | measured |\n|---|---:|---:|---|\n" + "\n".join(rows))


def run_page() -> str:
    url = book_launch.repository_url()
    return f"""# Run the chapters

Every chapter page has a launch button (the rocket at the top right) that opens the
chapter where it can run, with its explorers live:

* **Binder** builds the repository's `binder/` environment (CPU-only PyTorch) and opens the
  chapter in JupyterLab: nothing to install, about 1 GB of memory, sessions end when idle.
  All chapters: [{book_launch.binder_url(url)}]({book_launch.binder_url(url)}).
* **Colab** opens the notebook from the repository; its first code cell installs nifkit
  (it runs only on Colab). Run it first, then the chapter from the top.
* **On your machine**: clone {url}, then

  ```bash
  bash scripts/lab.sh              # JupyterLab on a working copy of the chapters (workspace/)
  bash scripts/lab.sh --student    # the student versions: no solutions
  ```

  `lab.sh` sets up `.venv` the first time, picks a free port from 8888 and a new access
  token at every start, and prints the address to open,
  `http://127.0.0.1:<port>/lab?token=<token>`. Open that address (the token is what lets
  you in), then the chapter's file in the file browser on the left; or add the chapter's
  path to the address: `http://127.0.0.1:<port>/lab/tree/01_nif.ipynb?token=<token>`.
  On a remote machine, forward the port first (`ssh -L 8888:127.0.0.1:8888 host`).

The repository address of these buttons is the one setting `[project.urls] Repository` in
`pyproject.toml`.
"""


def landing(variant: str, pages: list[dict]) -> str:
    chapters = [p for p in pages if p["kind"] == "chapter"]
    others = [p for p in pages if p["kind"] != "chapter"]
    who = ("This is the **student** edition: each exercise has a cell to fill in and a checker "
           "that says what is wrong; the solutions are in the instructor edition."
           if variant == "student" else
           "This is the **instructor** edition: every exercise is followed by its solution "
           "(folded: click to open it), and the [course plan](course.md) says which chapter fits "
           "which session.")
    toc = lambda ps, cap: ("```{toctree}\n:maxdepth: 1\n:caption: " + cap + "\n\n"  # noqa: E731
                           + "\n".join(p["file"] for p in ps) + "\n```\n")
    return f"""# nifkit — information theory inside neural networks

Every chapter reproduces one method on small models that train in seconds on a CPU. The
pages show the outputs of a run of the chapter; each explorer (sliders and menus in
JupyterLab) is shown as a picture of its first view. To move the controls, open the
chapter with the launch button at the top of its page (Binder, Colab) or on your machine
([Run the chapters](run.md)).

{who}

{toc(chapters, "Chapters")}
{toc(others, "Reference")}"""


# ------------------------------------------------------------------ Sphinx
def run_sphinx(src: Path, html: Path, variant: str) -> None:
    if shutil.which("sphinx-build", path=str(Path(sys.executable).parent)) is None:
        raise BookError("book: Sphinx is not installed: run `bash scripts/setup.sh book`")
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(CONF_DIR), "-t", variant,
           "-d", str(src.parent / "doctrees"), str(src), str(html)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)] + [os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
    log = (proc.stdout + proc.stderr).strip()
    (src.parent / "sphinx.log").write_text(log + "\n", encoding="utf-8")
    if log:
        print(log[-4000:])
    if proc.returncode != 0 or not (html / "index.html").is_file():
        raise BookError(f"book: `{' '.join(cmd)}` failed (exit {proc.returncode}):\n{log[-3000:]}")


def build(variant: str, out: Path, rerun: bool = False) -> Path:
    t0 = time.perf_counter()
    root = out / variant
    src, html = root / "src", root / "html"
    write_sources(variant, src, rerun)
    t1 = time.perf_counter()
    if html.exists():
        shutil.rmtree(html)
    run_sphinx(src, html, variant)
    shutil.copy(src / "book.json", html / "book.json")
    t2 = time.perf_counter()
    print(f"book: {variant} edition in {html} (sources {t1 - t0:.1f} s, Sphinx {t2 - t1:.1f} s)")
    print(f"book: view it with  {Path(sys.executable).name} -m http.server -b 127.0.0.1 -d {html} 8000")
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the course book (static HTML, offline).")
    parser.add_argument("variant", nargs="?", default="student", choices=VARIANTS + ("both",))
    parser.add_argument("--out", default=str(REPO / "build" / "book"))
    parser.add_argument("--rerun", action="store_true", help="execute every chapter again")
    args = parser.parse_args(argv)
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    try:
        for i, v in enumerate(variants):
            build(v, Path(args.out), rerun=args.rerun and i == 0)  # executed once for both
    except BookError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
