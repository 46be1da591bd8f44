"""The report's two renderings: one self-contained HTML page (figures embedded as base64 PNG
data URIs, the stylesheet ``report.css`` inlined, no external resources) and Markdown (figures
referenced in ``figures/``).
"""

from __future__ import annotations

import base64
import html
import re
from importlib import resources

from drgrader.reporting.document import THUMBNAIL_PX, Alert, Code, Fig, Gallery, Note, Para, Section, Table


def _inline(text: str) -> str:
    """Escaped HTML with ``**bold**`` and ```code``` spans."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _cell_html(cell, align: str, header: bool = False) -> str:
    text, cls = (cell if isinstance(cell, tuple) else (cell, ""))
    classes = " ".join(c for c in (cls, "r" if align == "r" else "") if c)
    tag = "th" if header else "td"
    attribute = f' class="{classes}"' if classes else ""
    return f"<{tag}{attribute}>{_inline(str(text))}</{tag}>"


def _img_html(name: str, figures: dict[str, bytes], alt: str) -> str:
    data = base64.b64encode(figures[name]).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _block_html(block, figures: dict[str, bytes]) -> str:
    if isinstance(block, Para):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Note):
        return f'<p class="note">{_inline(block.text)}</p>'
    if isinstance(block, Alert):
        listed = "".join(f"<li>{_inline(i)}</li>" for i in block.items)
        return f'<div class="alert {block.level}"><h3>{_inline(block.title)}</h3><ul>{listed}</ul></div>'
    if isinstance(block, Table):
        align = block.align.ljust(len(block.header), "l")
        head = "".join(_cell_html(h, "l", header=True) for h in block.header)
        body = "".join("<tr>" + "".join(_cell_html(c, a) for c, a in zip(row, align)) + "</tr>" for row in block.rows)
        caption = f'<p class="caption">{_inline(block.caption)}</p>' if block.caption else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{caption}"
    if isinstance(block, Fig):
        caption = f"<figcaption>{_inline(block.caption)}</figcaption>" if block.caption else ""
        return f"<figure>{_img_html(block.name, figures, block.alt)}{caption}</figure>"
    if isinstance(block, Gallery):
        items: list[str] = []
        for name, lines in block.items:
            text = "<br>".join(
                f'<span class="alarm">{html.escape(line)}</span>' if line.startswith(("MISSED", "false alarm"))
                else html.escape(line) for line in lines)
            wide = ' class="wide"' if _png_width(figures[name]) > 1.5 * THUMBNAIL_PX else ""
            items.append(f"<figure{wide}>{_img_html(name, figures, lines[0])}<figcaption>{text}</figcaption></figure>")
        return f'<div class="gallery">{"".join(items)}</div>'
    if isinstance(block, Code):
        pre = f"<pre><code>{html.escape(block.text)}</code></pre>"
        return f"<details><summary>{html.escape(block.summary)}</summary>{pre}</details>" if block.summary else pre
    raise TypeError(f"unknown report block {type(block).__name__}")


def _png_width(data: bytes) -> int:
    return int.from_bytes(data[16:20], "big")  # IHDR width


def render_html(title: str, meta: str, sections: list[Section], figures: dict[str, bytes]) -> str:
    """The report as one self-contained HTML page."""
    css = resources.files("drgrader.reporting").joinpath("report.css").read_text(encoding="utf-8")
    nav = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    body = []
    for s in sections:
        body.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>')
        body += [_block_html(b, figures) for b in s.blocks]
        body.append("</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>\n{css}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class=\"meta\">{_inline(meta)}</p><nav>{nav}</nav>"
        + "\n".join(body) + "</body></html>\n"
    )


def _md_cell(cell) -> str:
    text = cell[0] if isinstance(cell, tuple) else cell
    return str(text).replace("|", "\\|").replace("\n", " ")


def _block_md(block) -> str:
    if isinstance(block, Para):
        return block.text
    if isinstance(block, Note):
        return f"_{block.text}_"
    if isinstance(block, Alert):
        mark = {"warning": "⚠ ", "ok": "✓ ", "info": ""}.get(block.level, "")
        return "\n".join([f"> **{mark}{block.title}**", ">"] + [f"> - {i}" for i in block.items])
    if isinstance(block, Table):
        align = block.align.ljust(len(block.header), "l")
        lines = ["| " + " | ".join(_md_cell(h) for h in block.header) + " |",
                 "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        if block.caption:
            lines += ["", f"_{block.caption}_"]
        return "\n".join(lines)
    if isinstance(block, Fig):
        return f"![{block.alt}](figures/{block.name})" + (f"\n\n_{block.caption}_" if block.caption else "")
    if isinstance(block, Gallery):
        return "\n\n".join(f"![{lines[0]}](figures/{name})<br>" + "<br>".join(lines) for name, lines in block.items)
    if isinstance(block, Code):
        fence = f"```{block.language}\n{block.text.rstrip()}\n```"
        return f"<details><summary>{block.summary}</summary>\n\n{fence}\n\n</details>" if block.summary else fence
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(title: str, meta: str, sections: list[Section]) -> str:
    """The report as Markdown; figures are referenced in ``figures/``."""
    parts = [f"# {title}", meta]
    for s in sections:
        parts.append(f"## {s.title}")
        parts += [_block_md(b) for b in s.blocks]
    return "\n\n".join(parts) + "\n"
