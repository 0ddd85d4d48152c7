"""Sphinx configuration of the course book (scripts/book.py writes the sources).

The edition comes as a Sphinx tag: ``sphinx-build -t student`` or ``-t instructor``.
Everything here works offline: the chapters arrive executed (myst-nb does not run
them), MathJax is served from the book itself (sphinx-mathjax-offline), and no page
loads anything from another site.
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

import book_launch  # noqa: E402

REPOSITORY = book_launch.repository_url()  # [project.urls] Repository of pyproject.toml
OWNER, NAME = book_launch.github_parts(REPOSITORY)
EDITION = "instructor" if tags.has("instructor") else "student"  # noqa: F821 (Sphinx's tags)

project = "nifkit"
author = "nifkit developers"
copyright = "nifkit developers"
html_title = f"nifkit — the course ({EDITION} edition)"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_exercise",
    "sphinx_togglebutton",
    "sphinx_copybutton",
    "sphinx_design",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static: maths without the network
]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
numfig = False  # captions say which section a figure belongs to; no book-wide numbers
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]

# myst-nb: show the outputs the notebooks carry, never execute
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc (the API reference): signatures without the full type clutter
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
napoleon_numpy_docstring = True

html_theme = "sphinx_book_theme"
html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": book_launch.COLAB_BRANCH,
    "path_to_docs": "",  # the chapters sit in notebooks/ in the book as in the repository
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {
        "binderhub_url": book_launch.BINDER,
        "colab_url": book_launch.COLAB,
        "notebook_interface": "jupyterlab",
    },
    "home_page_in_toc": True,
    "show_toc_level": 2,
}
# light or dark as the reader's system says (an empty mode logs a console error)
html_context = {"default_mode": "auto"}
html_static_path = ["_static"]
html_css_files = ["nifkit-book.css"]
html_last_updated_fmt = None
