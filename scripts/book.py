"""Build the course book: every chapter with its executed outputs, as a static site.

    python scripts/book.py [student|instructor] [--out build/book] [--rerun]

Steps (``bash scripts/book.sh`` runs this after installing what it needs):

1. **Executed chapters.** For each ``notebooks/*.ipynb`` the executed copy that the
   notebook tests left in ``tests/reports/executed/`` is used when it is *fresh* (same
   cell sources as the chapter, every code cell executed, no error output); otherwise
   the chapter is executed here in fast mode with ``tests/notebook_utils.run_notebook``
   (so CI, which runs the notebook tests first, executes each chapter once).
2. **Book sources** in ``build/book/<variant>/src``: each chapter with MyST gated
   ``exercise``/``solution`` blocks around the tagged cells (see scripts/course.py). The
   student variant replaces each solution by the student stub; the instructor variant
   keeps it in a ``solution`` block and adds the course plan (docs/course.md).
3. **MyST** (Jupyter Book 2's ``jupyter-book build --site``, pip package, runs on
   Node.js) parses notebooks and Markdown into the MyST AST, with cross-references,
   KaTeX math and a search index, into ``src/_build/site``.
4. **HTML**: scripts/book_render.py turns that AST into a static site in
   ``build/book/<variant>/html`` (navigation, search, launch buttons per chapter). Jupyter
   Book 2's own web theme is downloaded from GitHub at build time, which cannot be done
   offline, so nifkit renders the AST itself (MathML for math, no network at view time).
"""
from __future__ import annotations

import argparse
import copy
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

import course  # noqa: E402
from course import EXERCISE, SOLUTION, source, tags  # noqa: E402

EXECUTED_DIR = REPO / "tests" / "reports" / "executed"
NOTEBOOKS_DIR = REPO / "notebooks"
BINDER_REPO = "nifkit/nifkit"  # the Binder badge of README.md
VARIANTS = ("student", "instructor")


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
    """The chapter with outputs: the tests' fresh executed copy, or a new fast-mode run."""
    src_nb = course.read(path)
    copy_path = EXECUTED_DIR / path.name
    reason = "asked to re-run" if rerun else stale_reason(src_nb, copy_path)
    if reason is None:
        print(f"book: {path.name}: using the executed copy of the notebook tests")
    else:
        from notebook_utils import run_notebook

        print(f"book: {path.name}: executing in fast mode ({reason}) ...", flush=True)
        run = run_notebook(path, fast=True)
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
def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def book_notebook(nb: dict, variant: str, stem: str) -> dict:
    """Gated exercise/solution blocks around the tagged cells; student stubs."""
    out = copy.deepcopy(nb)
    out["metadata"].pop("widgets", None)  # widget state: the book shows no live widgets
    cells, new, n_ex = out["cells"], [], 0
    for i, cell in enumerate(cells):
        t = tags(cell)
        if EXERCISE in t:
            n_ex += 1
            label = f"{stem}-ex{n_ex}"
            title = course.exercise_title(nb, i)
            new.append(_md(f":::{{exercise-start}} {title}\n:label: {label}\n:::"))
            new.append(cell)
            new.append(_md(":::{exercise-end}\n:::"))
            continue
        if SOLUTION in t:
            label = f"{stem}-ex{n_ex}"
            if variant == "student":
                stub = {"cell_type": "code", "execution_count": None, "metadata": {"tags": [course.STUB]},
                        "outputs": [], "source": course.stub_source(nb, i)}
                new.append(stub)
            else:
                new.append(_md(f":::{{solution-start}} {label}\n:::"))
                new.append(cell)
                new.append(_md(":::{solution-end}\n:::"))
            continue
        new.append(cell)
    out["cells"] = new
    return out


def write_sources(variant: str, src: Path, rerun: bool) -> list[dict]:
    """Chapters, landing page, course plan and myst.yml in ``src``; returns the pages."""
    if src.exists():
        shutil.rmtree(src)
    (src / "chapters").mkdir(parents=True)
    pages = [{"file": "index.md", "kind": "page", "title": "nifkit — the course"}]
    for path in course.notebook_paths():
        nb = executed_chapter(path, rerun=rerun)
        course.write(book_notebook(nb, variant, path.stem), src / "chapters" / path.name)
        title = next((ln.lstrip("# ").strip() for c in nb["cells"] if c["cell_type"] == "markdown"
                      for ln in source(c).splitlines() if ln.startswith("# ")), path.stem)
        pages.append({"file": f"chapters/{path.name}", "kind": "chapter", "title": title,
                      "notebook": path.name})
        # the notebook to download: the student or instructor version, without outputs
        version = course.student_version if variant == "student" else course.instructor_version
        course.write(version(course.read(path)), src / "downloads" / path.name)
    plan = REPO / "docs" / "course.md"
    if variant == "instructor" and plan.is_file():
        text = plan.read_text(encoding="utf-8").replace(RUN_TIMES_MARKER, run_times_table())
        (src / "course.md").write_text(text, encoding="utf-8")
        pages.append({"file": "course.md", "kind": "page", "title": "Course plan (instructors)"})
    (src / "index.md").write_text(_landing(variant, pages), encoding="utf-8")
    toc = "\n".join(f"    - file: {p['file']}" for p in pages)
    (src / "myst.yml").write_text(
        "version: 1\nproject:\n  title: nifkit\n  toc:\n" + toc + "\n"
        "site:\n  template: ./template\n", encoding="utf-8")
    # a local, empty site template: the site content is built without downloading a theme
    (src / "template").mkdir()
    (src / "template" / "template.yml").write_text(
        "myst: v1\nkind: site\ntitle: nifkit static renderer (scripts/book_render.py)\n", encoding="utf-8")
    return pages


RUN_TIMES_MARKER = "<!-- run-times: scripts/book.py puts the measured table here -->"


def run_times_table() -> str:
    """Fast-mode run time and peak memory of each chapter from tests/reports/notebooks.json."""
    report = REPO / "tests" / "reports" / "notebooks.json"
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return "*(No measurement yet: run `bash scripts/test.sh -m notebook` to measure the chapters.)*"
    rows = [f"| {name} | {e.get('seconds', 0):.0f} s | {e.get('peak_mb') or 0:,.0f} MB | {e.get('when', '')} |"
            for name, e in sorted(data.items())
            if e.get("ok") and (NOTEBOOKS_DIR / name).is_file()]
    return ("Fast mode, as measured by the last notebook test run on the machine that built this "
            "book (a machine shared with other work runs slower):\n\n"
            "| chapter | run time (fast mode) | peak memory | measured |\n|---|---:|---:|---|\n"
            + "\n".join(rows))


def _landing(variant: str, pages: list[dict]) -> str:
    chapters = "\n".join(f"* [{p['title']}]({p['file']})" for p in pages if p["kind"] == "chapter")
    who = ("This is the **student** edition: each exercise has a cell to fill in and a checker "
           "that says what is wrong; the solutions are in the instructor edition."
           if variant == "student" else
           "This is the **instructor** edition: every exercise is followed by its solution, "
           "and the [course plan](course.md) says which chapter fits which session.")
    return f"""# nifkit — information theory inside neural networks

Every chapter reproduces one method on small models that train in seconds on a CPU. The
pages show the outputs of a run in fast mode (fewer epochs and samples than the full run
in JupyterLab). The live explorers (sliders) need a kernel: open a chapter with its
**Binder** or **JupyterLab** button.

{who}

## Chapters

{chapters}

## Run the chapters yourself

```bash
bash scripts/lab.sh     # JupyterLab on a working copy of the chapters (workspace/)
```
"""


# ------------------------------------------------------------------ MyST
def jupyter_book() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if not exe.exists():
        raise BookError("book: jupyter-book is not installed: run `bash scripts/setup.sh book`")
    if shutil.which("node") is None:
        raise BookError("book: Node.js is missing (jupyter-book runs on it): `apt-get install nodejs`, "
                         "or run `bash scripts/setup.sh book` as root")
    return [str(exe)]


def run_myst(src: Path) -> None:
    env = dict(os.environ, JB_ALLOW_NODEENV="no", NO_COLOR="1")  # never download a Node.js
    cmd = jupyter_book() + ["build", "--site"]
    proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)
    log = (proc.stdout + proc.stderr).strip()
    (src / "myst.log").write_text(log + "\n", encoding="utf-8")
    # gated exercise/solution blocks span notebook cells: MyST reports them as unclosed
    # per cell, the renderer joins them; any other error is shown
    problems = [ln for ln in log.splitlines() if ln.startswith("⛔") and "Gated node is not closed" not in ln]
    for ln in problems:
        print(f"book: MyST: {ln}")
    if proc.returncode != 0 or not (src / "_build" / "site" / "config.json").is_file():
        raise BookError(f"book: `{' '.join(cmd)}` failed (exit {proc.returncode}):\n{log[-3000:]}")


def build(variant: str, out: Path, rerun: bool = False) -> Path:
    import book_render

    t0 = time.perf_counter()
    root = out / variant
    src = root / "src"
    pages = write_sources(variant, src, rerun)
    t1 = time.perf_counter()
    run_myst(src)
    t2 = time.perf_counter()
    html = root / "html"
    book_render.render_site(src / "_build" / "site", src, pages, html, variant=variant, binder_repo=BINDER_REPO)
    t3 = time.perf_counter()
    print(f"book: {variant} edition in {html} (sources {t1 - t0:.1f} s, MyST {t2 - t1:.1f} s, "
          f"HTML {t3 - t2:.1f} s)")
    print(f"book: view it with  {Path(sys.executable).name} -m http.server -b 127.0.0.1 -d {html} 8000")
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the course book (static HTML).")
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
