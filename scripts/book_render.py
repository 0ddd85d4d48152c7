"""Render MyST's site AST (``jupyter-book build --site``) into a static HTML book.

Used by scripts/book.py. Input: ``_build/site/config.json`` (pages) and
``_build/site/content/<slug>.json`` (each page's MyST AST, math already typeset by KaTeX,
notebook outputs with their images in ``_build/site/public``). Output: one HTML page per
chapter with a navigation sidebar, section links, previous/next links, launch buttons
(Binder, JupyterLab, download), exercise and solution blocks, and a client-side search
over ``search.json``. No network is needed to view it: math shows as MathML.

The MyST node types met in the chapters are rendered; any other node renders its
children, and its type is listed in ``<html>/unknown-nodes.txt`` (empty when none).
"""
from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "book_assets"

esc = html.escape


class Renderer:
    def __init__(self, public: Path, out: Path, page_of_file: dict[str, str]):
        self.public, self.out = public, out
        self.page_of_file = page_of_file  # source file name -> html file name
        self.unknown: set[str] = set()
        self.images: list[str] = []
        self.search: list[dict] = []

    # ---------------------------------------------------------------- inline / block
    def children(self, node) -> str:
        return "".join(self.node(c) for c in node.get("children", []))

    def node(self, n) -> str:  # noqa: C901 - one dispatch over MyST node types
        t = n.get("type")
        kids = self.children
        hid = f' id="{esc(n["html_id"])}"' if n.get("html_id") else ""
        if t == "text":
            return esc(n.get("value", ""))
        if t in ("root", "block"):
            if n.get("visibility") == "remove":
                return ""
            cls = n.get("kind", "")
            return f'<div class="block {esc(cls)}"{hid}>{kids(n)}</div>' if t == "block" else kids(n)
        simple = {"paragraph": "p", "strong": "strong", "emphasis": "em", "listItem": "li",
                  "blockquote": "blockquote", "subscript": "sub", "superscript": "sup",
                  "delete": "del", "underline": "u", "table": "table", "tableRow": "tr",
                  "caption": "figcaption", "definitionList": "dl", "definitionTerm": "dt",
                  "definitionDescription": "dd", "legend": "div", "span": "span"}
        if t in simple:
            tag = simple[t]
            if t == "table":
                return f'<div class="table-wrap"><table>{kids(n)}</table></div>'
            return f"<{tag}{hid}>{kids(n)}</{tag}>"
        if t == "tableCell":
            tag = "th" if n.get("header") else "td"
            align = f' style="text-align:{n["align"]}"' if n.get("align") else ""
            return f"<{tag}{align}>{kids(n)}</{tag}>"
        if t == "heading":
            d = min(int(n.get("depth", 2)), 6)
            anchor = n.get("html_id") or n.get("identifier", "")
            return f'<h{d} id="{esc(anchor)}">{kids(n)}<a class="anchor" href="#{esc(anchor)}">¶</a></h{d}>'
        if t == "list":
            tag = "ol" if n.get("ordered") else "ul"
            start = f' start="{n["start"]}"' if n.get("ordered") and n.get("start", 1) != 1 else ""
            return f"<{tag}{start}>{kids(n)}</{tag}>"
        if t == "inlineCode":
            return f"<code>{esc(n.get('value', ''))}</code>"
        if t == "code":
            lang = esc(n.get("lang") or "")
            return f'<pre class="code" data-lang="{lang}"><code>{esc(n.get("value", ""))}</code></pre>'
        if t in ("math", "inlineMath"):
            if n.get("html"):
                return n["html"] if t == "inlineMath" else f'<div class="math"{hid}>{n["html"]}</div>'
            return f"<code>{esc(n.get('value', ''))}</code>"
        if t == "break":
            return "<br>"
        if t == "thematicBreak":
            return "<hr>"
        if t == "html":
            return n.get("value", "")
        if t == "link":
            return f'<a href="{esc(self.href(n.get("url", "")))}">{kids(n)}</a>'
        if t == "crossReference":
            url = n.get("url") or ""
            target = "#" + n.get("html_id", n.get("identifier", ""))
            if url:
                target = self.href(url)
            inner = kids(n) or esc(n.get("label", n.get("identifier", "")))
            return f'<a class="xref" href="{esc(target)}">{inner}</a>'
        if t == "image":
            return self.image(n.get("url", ""), n.get("alt", ""))
        if t == "container":
            return f'<figure{hid}>{kids(n)}</figure>'
        if t == "admonition":
            kind = esc(n.get("kind", "note"))
            return f'<aside class="admonition {kind}"{hid}>{kids(n)}</aside>'
        if t == "admonitionTitle":
            return f'<p class="admonition-title">{kids(n)}</p>'
        if t == "outputs":
            inner = kids(n)
            return f'<div class="outputs">{inner}</div>' if inner else ""
        if t == "output":
            return self.output(n.get("jupyter_data") or {})
        if t in ("exercise", "solution"):
            return self.exercise(n)
        if t in ("footnoteReference",):
            return f"<sup>[{esc(str(n.get('label', '')))}]</sup>"
        if t in ("footnoteDefinition",):
            return f'<div class="footnote">[{esc(str(n.get("label", "")))}] {kids(n)}</div>'
        if t in ("comment", "mystComment", "mystTarget", "target"):
            return ""
        self.unknown.add(str(t))
        return kids(n)

    def href(self, url: str) -> str:
        """Links between chapters point at their HTML pages."""
        base, _, frag = url.partition("#")
        name = Path(base).name
        if name in self.page_of_file:
            return self.page_of_file[name] + (f"#{frag}" if frag else "")
        if base.startswith("/") and base.strip("/") in {p.removesuffix(".html") for p in self.page_of_file.values()}:
            return base.strip("/") + ".html" + (f"#{frag}" if frag else "")
        return url

    def image(self, url: str, alt: str = "") -> str:
        name = Path(url).name
        src = self.public / name
        if src.is_file():
            (self.out / "_static" / "img").mkdir(parents=True, exist_ok=True)
            shutil.copy(src, self.out / "_static" / "img" / name)
            url = f"_static/img/{name}"
            self.images.append(name)
        return f'<img src="{esc(url)}" alt="{esc(alt)}" loading="lazy">'

    def output(self, d: dict) -> str:
        kind = d.get("output_type")
        if kind == "stream":
            return f'<pre class="output stream {esc(d.get("name", ""))}">{esc(d.get("text", ""))}</pre>'
        if kind == "error":
            tb = "\n".join(d.get("traceback", [])) or f"{d.get('ename')}: {d.get('evalue')}"
            tb = re.sub(r"\x1b\[[0-9;]*m", "", tb)
            return f'<pre class="output error">{esc(tb)}</pre>'
        data = d.get("data", {})
        for mime in ("image/png", "image/jpeg", "image/svg+xml", "image/gif"):
            if mime in data:
                return f'<div class="output figure">{self.image(data[mime].get("path", ""), "figure")}</div>'
        if "application/vnd.jupyter.widget-view+json" in data:
            return ('<div class="output widget"><strong>Live explorer.</strong> It needs a running '
                    'kernel: open this chapter with the <em>Binder</em> or <em>JupyterLab</em> '
                    'button at the top of the page.</div>')
        if "text/html" in data:
            return f'<div class="output html">{data["text/html"].get("content", "")}</div>'
        if "text/markdown" in data:
            return f'<pre class="output">{esc(data["text/markdown"].get("content", ""))}</pre>'
        if "text/plain" in data:
            return f'<pre class="output">{esc(data["text/plain"].get("content", ""))}</pre>'
        return ""

    def exercise(self, n) -> str:
        t = n["type"]
        title = ""
        body = []
        for c in n.get("children", []):
            if c.get("type") == "admonitionTitle" or (not title and c.get("type") == "paragraph" and t == "exercise"):
                title = self.children(c)
            else:
                body.append(self.node(c))
        num = n.get("enumerator")
        if t == "exercise":
            head = f"Exercise {esc(str(num)) if num else ''}" + (f" — {title}" if title else "")
        else:
            head = title or "Solution"
        hid = f' id="{esc(n["html_id"])}"' if n.get("html_id") else ""
        return (f'<section class="{t}"{hid}><p class="{t}-title">{head}</p>'
                f'{"".join(body)}</section>')


# ---------------------------------------------------------------- gated blocks
def join_gates(blocks: list[dict]) -> list[dict]:
    """Move the blocks between a gate's start and end into the gated node.

    In a notebook each ``{exercise-start}``/``{solution-start}`` and its ``-end`` sit in
    cells of their own; MyST leaves them as separate blocks, so they are joined here.
    """
    out: list[dict] = []
    stack: list[dict] = []
    for block in blocks:
        kids = block.get("children", [])
        gate = next((k for k in kids if k.get("type") in ("exercise", "solution") and k.get("gate")), None)
        if gate is not None and gate["gate"] == "start":
            gate = dict(gate)
            gate.pop("gate")
            gate["children"] = list(gate.get("children", []))
            holder = dict(block, children=[gate if k.get("gate") else k for k in kids])
            (stack[-1]["children"] if stack else out).append(holder)
            stack.append(gate)
            continue
        if gate is not None and gate["gate"] == "end":
            if stack:
                stack.pop()
            continue
        (stack[-1]["children"] if stack else out).append(block)
    return out


# ---------------------------------------------------------------- pages
def _text(n) -> str:
    if n.get("type") in ("text", "inlineCode", "code", "inlineMath", "math"):
        return n.get("value", "")
    return " ".join(_text(c) for c in n.get("children", []))


def _sections(mdast) -> list[tuple[int, str, str]]:
    found = []

    def walk(n):
        if n.get("type") == "heading" and n.get("depth", 9) <= 3:
            found.append((n["depth"], n.get("html_id") or n.get("identifier", ""), _text(n)))
        for c in n.get("children", []):
            walk(c)
    walk(mdast)
    return found


def _search_records(page: str, title: str, mdast) -> list[dict]:
    """One record per section: its heading and its text (code included)."""
    records, current = [], {"page": page, "title": title, "anchor": "", "text": []}

    def walk(n):
        nonlocal current
        if n.get("type") == "heading":
            records.append(current)
            current = {"page": page, "title": f"{title} › {_text(n)}",
                       "anchor": n.get("html_id") or n.get("identifier", ""), "text": []}
            return
        if n.get("type") in ("text", "inlineCode", "code", "inlineMath", "math"):
            current["text"].append(n.get("value", ""))
            return
        for c in n.get("children", []):
            walk(c)
    walk(mdast)
    records.append(current)
    return [dict(r, text=" ".join(" ".join(r["text"]).split())[:4000]) for r in records if r["text"]]


def render_site(site: Path, src: Path, pages: list[dict], out: Path, variant: str, binder_repo: str) -> None:
    """Write the HTML book for ``pages`` (as written by scripts/book.py) into ``out``."""
    if out.exists():
        shutil.rmtree(out)
    (out / "_static").mkdir(parents=True)
    for asset in ASSETS.iterdir():
        shutil.copy(asset, out / "_static" / asset.name)
    config = json.loads((site / "config.json").read_text())
    project = config["projects"][0]
    slugs = [project.get("index", "index")] + [p["slug"] for p in project.get("pages", []) if "slug" in p]
    if len(slugs) != len(pages):
        raise RuntimeError(f"book: MyST built {len(slugs)} pages for {len(pages)} files: {slugs}")
    for p, slug in zip(pages, slugs):
        p["slug"] = slug
        p["html"] = "index.html" if p["file"] == "index.md" else f"{slug}.html"
    page_of_file = {Path(p["file"]).name: p["html"] for p in pages}
    # notebooks to download (student or instructor version, no outputs)
    dl = out / "notebooks"
    dl.mkdir()
    for nb in (src / "downloads").glob("*.ipynb"):
        shutil.copy(nb, dl / nb.name)
    renderer = Renderer(site / "public", out, page_of_file)
    for i, p in enumerate(pages):
        data = json.loads((site / "content" / f"{p['slug']}.json").read_text())
        mdast = data["mdast"]
        mdast["children"] = join_gates(mdast.get("children", []))
        title = (data.get("frontmatter") or {}).get("title") or p["title"]
        body = renderer.node(mdast)
        renderer.search.extend(_search_records(p["html"], title, mdast))
        prev_p = pages[i - 1] if i > 0 else None
        next_p = pages[i + 1] if i + 1 < len(pages) else None
        content_title = (data.get("frontmatter") or {}).get("content_includes_title") is not False
        html_text = _page(p, title, body, pages, _sections(mdast), prev_p, next_p, variant, binder_repo,
                          show_title=not content_title)
        (out / p["html"]).write_text(html_text, encoding="utf-8")
    (out / "search.json").write_text(json.dumps(renderer.search, ensure_ascii=False), encoding="utf-8")
    (out / "unknown-nodes.txt").write_text("\n".join(sorted(renderer.unknown)) + ("\n" if renderer.unknown else ""))
    (out / "book.json").write_text(json.dumps({"variant": variant, "pages": pages, "images": renderer.images},
                                              indent=1))


def _launch(p: dict, binder_repo: str) -> str:
    nb = p.get("notebook")
    if not nb:
        return ""
    binder = f"https://mybinder.org/v2/gh/{binder_repo}/HEAD?urlpath=lab/tree/notebooks/{nb}"
    local = f"http://127.0.0.1:8888/lab/tree/{nb}"
    return (f'<div class="launch"><span>Run this chapter:</span>'
            f'<a class="button binder" href="{esc(binder)}" rel="external">Binder</a>'
            f'<a class="button lab" href="{esc(local)}" rel="external" '
            f'title="after `bash scripts/lab.sh` (its working copy in workspace/)">JupyterLab (local)</a>'
            f'<a class="button download" href="notebooks/{esc(nb)}" download>Download .ipynb</a></div>')


def _page(p, title, body, pages, sections, prev_p, next_p, variant, binder_repo, show_title) -> str:
    nav = "".join(
        f'<li class="{"current" if q is p else ""}"><a href="{esc(q["html"])}">{esc(q["title"])}</a></li>'
        for q in pages)
    toc = "".join(f'<li class="lvl{d}"><a href="#{esc(a)}">{esc(t)}</a></li>' for d, a, t in sections if d >= 2)
    pager = ""
    if prev_p:
        pager += f'<a class="prev" href="{esc(prev_p["html"])}">← {esc(prev_p["title"])}</a>'
    if next_p:
        pager += f'<a class="next" href="{esc(next_p["html"])}">{esc(next_p["title"])} →</a>'
    h1 = f"<h1>{esc(title)}</h1>" if show_title else ""
    edition = "Student edition" if variant == "student" else "Instructor edition (with solutions)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} — nifkit</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="_static/book.css">
<script defer src="_static/search.js"></script>
</head><body data-variant="{variant}">
<nav class="sidebar" aria-label="chapters">
<p class="brand"><a href="index.html">nifkit</a><span class="edition">{edition}</span></p>
<form class="search" role="search" onsubmit="return false"><input id="search-input" type="search"
 placeholder="Search the book" aria-label="Search the book"><ol id="search-results"></ol></form>
<ul class="pages">{nav}</ul>
</nav>
<main><article>
{_launch(p, binder_repo)}
{h1}
{body}
</article>
<nav class="pager" aria-label="previous and next">{pager}</nav>
</main>
<aside class="toc" aria-label="sections"><p>On this page</p><ul>{toc}</ul></aside>
</body></html>
"""
