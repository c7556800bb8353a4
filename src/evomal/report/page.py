"""A report as a document model, rendered twice: self-contained HTML and a Markdown twin.

The report is built once as :class:`Section` objects holding blocks
(paragraphs, images, tables, formulas, code); :func:`to_html` embeds every
image as a base64 data URI (the page is one file that opens anywhere), and
:func:`write_markdown` writes the same content with the images as PNG files
in a folder beside it.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from evomal.files import write_bytes_atomic, write_text_atomic


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Image:
    name: str  # file name stem in the Markdown twin's folder
    png: bytes
    caption: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Formula:
    """LaTeX, with its rendering as an image where matplotlib's mathtext can draw it."""

    latex: str
    png: bytes | None
    name: str


Block = Paragraph | Image | Table | Code | Formula


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


def render_latex(latex: str, fontsize: int = 15) -> bytes | None:
    """The formula as a PNG drawn by matplotlib's mathtext, or None where mathtext cannot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(0.01, 0.01))
    fig.text(0, 0, f"${latex}$", fontsize=fontsize)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight", pad_inches=0.05)
    except ValueError:  # mathtext covers a subset of LaTeX (no cases environment, ...)
        return None
    return buffer.getvalue()


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; } code, pre { background: #f6f6f6; font-size: 0.85em; }
pre { padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.formula { margin: 0.5em 0; }
"""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def to_html(title: str, sections: list[Section]) -> str:
    """One self-contained HTML page (styles inline, images as data URIs)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        out.append(f"<section><h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            out.append(_html_block(block))
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Image):
        return (
            f'<figure><img src="{_data_uri(block.png)}" alt="{html.escape(block.caption)}">'
            f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Code):
        return f"<pre><code>{html.escape(block.text)}</code></pre>"
    latex = html.escape(block.latex)
    if block.png is None:
        return f'<div class="formula"><code>{latex}</code></div>'
    return (
        f'<div class="formula"><img src="{_data_uri(block.png)}" alt="{latex}">'
        f"<br><code>{latex}</code></div>"
    )


def write_markdown(path: Path, title: str, sections: list[Section]) -> Path:
    """The Markdown twin: same sections, images written to ``<stem>_files/``."""
    folder = path.parent / f"{path.stem}_files"
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += [*_markdown_block(block, folder, path.parent), ""]
    write_text_atomic(path, "\n".join(lines))
    return path


def _markdown_block(block: Block, folder: Path, base: Path) -> list[str]:
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, Image):
        target = folder / f"{block.name}.png"
        write_bytes_atomic(target, block.png)
        return [
            f"![{block.caption}]({target.relative_to(base).as_posix()})",
            "",
            f"*{block.caption}*",
        ]
    if isinstance(block, Table):
        cells = [[c.replace("|", "\\|").replace("\n", " ") for c in row] for row in block.rows]
        header = "| " + " | ".join(block.header) + " |"
        rule = "| " + " | ".join("---" for _ in block.header) + " |"
        return [header, rule, *("| " + " | ".join(row) + " |" for row in cells)]
    if isinstance(block, Code):
        return ["```", block.text, "```"]
    return ["$$", block.latex, "$$"]
