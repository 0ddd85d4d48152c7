"""What the book adds to a chapter's cells: figure captions and alt text, glossary links.

* :func:`caption_figures` gives every code cell with a picture a caption and alt text,
  as myst-nb cell metadata (``mystnb: {figure: {caption}, image: {alt}}``), made from
  the cell itself: the section it is in, the titles its code gives the axes, the
  explorer it shows. A cell that already carries ``mystnb`` metadata keeps it. Outputs
  that only a live kernel can show (ipywidgets views without a picture) are dropped;
  an explorer's output keeps the PNG of its view (nifkit.widgets.Explorer writes it).
* :func:`link_glossary_terms` links the first use of each glossary term in a chapter's
  text to its entry (docs/glossary.md).
"""
from __future__ import annotations

import re
from pathlib import Path

from course import _heading_before, source

REPO = Path(__file__).resolve().parents[1]
WIDGET = "application/vnd.jupyter.widget-view+json"
_TITLE = re.compile(r"""(?:set_title|suptitle|plt\.title|title)\s*[(=]\s*f?(["'])(.+?)\1""")
_EXPLORER = re.compile(r"\b(\w*Explorer)\s*\(")


def _clean_title(text: str) -> str:
    text = re.sub(r"\{[^{}]*\}", "…", text).replace("\\n", " ")
    return re.sub(r"\s+", " ", text).strip()


def _plain(text: str) -> str:
    """Heading text without Markdown emphasis, code ticks or maths dollars."""
    return re.sub(r"[*`$\\]", "", text).strip()


def caption_figures(nb: dict, stem: str) -> int:
    """Caption and alt text on each cell with a picture; returns how many cells got one."""
    n = 0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET in data:
                if "image/png" not in data:
                    continue  # a live view only (progress bar, bare widget): nothing to show here
                out["data"] = {"image/png": data["image/png"]}
            outputs.append(out)
        cell["outputs"] = outputs
        n_img = sum(1 for o in outputs if any(k.startswith("image/") for k in o.get("data", {})))
        meta = cell.setdefault("metadata", {})
        if not n_img or "mystnb" in meta:
            continue
        n += 1
        src = source(cell)
        section = _plain(_heading_before(nb, i))
        explorer = _EXPLORER.search(src)
        if explorer:
            name = explorer.group(1)
            caption = (f"{name}, as it first appears (section \u201c{section}\u201d). Open the chapter "
                       "on Binder or Colab to move its controls.")
            alt = f"Picture of the {name} explorer's first view: its plot for the default settings"
        else:
            titles = list(dict.fromkeys(_clean_title(m.group(2)) for m in _TITLE.finditer(src)))
            titles = [t for t in titles if t and t != "…"]
            what = ("; ".join(titles)) if titles else f"the output of the code cell above"
            caption = f"{what[0].upper() + what[1:]} (section \u201c{section}\u201d)."
            alt = f"Plot from section \u201c{section}\u201d: {what}"
        meta["mystnb"] = {"figure": {"caption": caption}, "image": {"alt": alt}}
    return n


# ------------------------------------------------------------------ glossary
def glossary_terms(path: Path = REPO / "docs" / "glossary.md") -> list[str]:
    """The terms of the glossary page (the unindented lines of its glossary block)."""
    text = path.read_text(encoding="utf-8")
    block = text.split("```{glossary}", 1)[1].split("\n```", 1)[0]
    return [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.startswith((" ", "\t"))]


#: spans of Markdown where a link cannot go: code, maths, links, HTML, headings
_PROTECTED = re.compile(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|\[[^\]\n]*\]\([^)\n]*\)|<[^>\n]+>|^#[^\n]*",
                        flags=re.S | re.M)


def _surface(term: str) -> re.Pattern:
    """How a term appears in prose: hyphen or space, any case, '-' or en dash in names."""
    words = [re.escape(w) for w in re.split(r"[\s\-–]+", term)]
    body = r"[\s\-–]+".join(words)
    left = r"(?<![\w^])" if term[0].isalnum() else ""
    right = r"(?![\w(])" if term[-1].isalnum() else ""
    return re.compile(left + body + right, flags=re.I)


def link_glossary_terms(nb: dict, terms: list[str] | None = None) -> list[str]:
    """Link the first prose use of each term to the glossary (MyST ``{term}`` role)."""
    terms = glossary_terms() if terms is None else terms
    pending = {t: _surface(t) for t in terms if t[0].isalnum()}  # do(.), H^max: in maths only
    linked = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown" or not pending:
            continue
        text = source(cell)
        for term in list(pending):
            pos, parts, done = 0, [], False
            for m in _PROTECTED.finditer(text + "\n"):
                chunk = text[pos:m.start()]
                if not done:
                    chunk, k = pending[term].subn(lambda mm: f"{{term}}`{mm.group(0)} <{term}>`", chunk, count=1)
                    done = k > 0
                parts.append(chunk + text[m.start():min(m.end(), len(text))])
                pos = m.end()
            tail = text[pos:]
            if not done and tail:
                tail, k = pending[term].subn(lambda mm: f"{{term}}`{mm.group(0)} <{term}>`", tail, count=1)
                done = k > 0
            if done:
                text = "".join(parts) + tail
                linked.append(term)
                del pending[term]
        cell["source"] = text
    return linked
