"""Where the chapters run: the repository URL (one setting) and the launch links made from it.

The repository URL is ``[project.urls] Repository`` in pyproject.toml, nowhere else by
hand: the course book's Binder and Colab buttons (scripts/book_conf/conf.py), the
README's Binder badge (checked by tests/test_book.py) and each chapter's Colab install
cell (written by this script) all come from it. After changing it, run

    python scripts/book_launch.py colab-cell      # rewrite the install cell of every chapter

and update the badge at the top of README.md (the test says what it must be).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import course  # noqa: E402

BINDER = "https://mybinder.org"
COLAB = "https://colab.research.google.com"
BRANCH = "HEAD"  # Binder resolves HEAD to the default branch
COLAB_BRANCH = "main"  # Colab needs a branch name
#: the tag of the Colab install cell (the book leaves it out: it only matters on Colab)
COLAB_TAG = "colab"


def repository_url(pyproject: Path = REPO / "pyproject.toml") -> str:
    """``[project.urls] Repository`` of pyproject.toml, e.g. ``https://github.com/OWNER/NAME``."""
    text = pyproject.read_text(encoding="utf-8")
    try:
        import tomllib

        url = tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository")
    except ImportError:  # Python 3.10: the one line is enough
        m = re.search(r'^Repository\s*=\s*"([^"]+)"', text, flags=re.M)
        url = m.group(1) if m else None
    if not url:
        raise ValueError(f"{pyproject}: set [project.urls] Repository = \"https://github.com/OWNER/NAME\"")
    return url.rstrip("/")


def github_parts(url: str) -> tuple[str, str]:
    """(owner, name) of a ``https://github.com/OWNER/NAME`` URL; ValueError otherwise."""
    u = urlparse(url)
    parts = [p for p in u.path.split("/") if p]
    if u.scheme != "https" or u.netloc != "github.com" or len(parts) != 2:
        raise ValueError(f"repository URL {url!r}: Binder and Colab need https://github.com/OWNER/NAME")
    return parts[0], parts[1].removesuffix(".git")


def binder_url(url: str, notebook: str | None = None) -> str:
    """Binder link for the repository, opening JupyterLab on ``notebook`` (a repo path)."""
    owner, name = github_parts(url)
    return f"{BINDER}/v2/gh/{owner}/{name}/{BRANCH}?urlpath=lab/tree/{notebook or 'notebooks'}"


def colab_url(url: str, notebook: str) -> str:
    owner, name = github_parts(url)
    return f"{COLAB}/github/{owner}/{name}/blob/{COLAB_BRANCH}/{notebook}"


def readme_badge(url: str) -> str:
    return f"[![Binder]({BINDER}/badge_logo.svg)]({binder_url(url)})"


def colab_cell_source(url: str) -> str:
    """Plain Python (no ``%pip`` magic): every tool that parses the chapters can read it."""
    return ("# On Google Colab only: install nifkit and what the chapters use (elsewhere this does nothing)\n"
            "import sys\n"
            "\n"
            'if "google.colab" in sys.modules:\n'
            "    import subprocess\n"
            "\n"
            f'    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "nifkit[lab] @ git+{url}"], check=True)')


def colab_cell(url: str) -> dict:
    """The install cell, as nbformat 4.5 writes a code cell (source as a list of lines)."""
    import nbformat

    cell = {"cell_type": "code", "execution_count": None, "id": "colab-install",
            "metadata": {"tags": [COLAB_TAG]}, "outputs": [],
            "source": colab_cell_source(url).splitlines(keepends=True)}
    nbformat.validate(nbformat.from_dict({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return cell


def with_colab_cell(nb: dict, url: str) -> bool:
    """Put the install cell right after the chapter's title cell (or refresh it); True if changed."""
    cells = nb["cells"]
    old = [i for i, c in enumerate(cells) if COLAB_TAG in course.tags(c)]
    want = colab_cell(url)
    if old == [1] and course.source(cells[1]) == course.source(want):
        return False
    for i in reversed(old):
        del cells[i]
    cells.insert(1, want)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("colab-cell", help="write the Colab install cell into every chapter")
    sub.add_parser("url", help="print the repository URL")
    args = parser.parse_args(argv)
    url = repository_url()
    if args.cmd == "url":
        print(url)
        return 0
    for path in course.notebook_paths():
        nb = course.read(path)  # (course.write keeps the file's key order: small diffs)
        if with_colab_cell(nb, url):
            course.write(nb, path)
            print(f"{path.name}: Colab install cell written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
