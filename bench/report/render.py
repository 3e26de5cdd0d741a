"""A report is a list of blocks (heading, paragraph, table, image, code); render it as Markdown or HTML.

Writing the content once as blocks keeps report.md and report.html identical in substance. Paragraphs may
use two bits of Markdown, ``code`` in backticks and **bold**, which the HTML renderer translates.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    file: str  # relative to the report directory
    caption: str


@dataclass
class Code:
    text: str


Block = Heading | Paragraph | Table | Image | Code

# Laptop-first: the page itself never scrolls sideways. A table wider than the text scrolls inside its own box,
# figures shrink to the column, and long paths or run names in text break anywhere rather than push the page.
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 68rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.5; overflow-wrap: anywhere; }
h1, h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
nav { background: #f6f8fa; padding: .5rem 1rem; font-size: .95rem; }
nav ol { margin: .3rem 0; columns: 2; }
.table-wrap { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: .9rem; overflow-wrap: normal; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: .9rem; color: #555; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; overflow-wrap: normal; }
code { background: #f6f8fa; padding: 0 .2rem; }
"""


def slug(text: str) -> str:
    """A heading's anchor, as GitHub makes it for Markdown (so report.md's contents links work there too)."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def contents(blocks: Sequence[Block]) -> list[tuple[str, str]]:
    """(title, anchor) of each section (level-2 heading), for the list of contents at the top."""
    return [
        (block.text, slug(block.text)) for block in blocks if isinstance(block, Heading) and block.level == 2
    ]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (pandas' to_markdown needs the optional ``tabulate``)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(row) for row in rows)])


def to_markdown(blocks: Sequence[Block]) -> str:
    parts = []
    for block in blocks:
        match block:
            case Heading(text, level):
                parts.append(f"{'#' * level} {text}")
            case Paragraph(text):
                parts.append(text)
            case Table(header, rows):
                parts.append(markdown_table(header, rows))
            case Image(file, caption):
                parts.append(f"![{caption}]({file})\n\n*{caption}*")
            case Code(text):
                parts.append(f"```\n{text}\n```")
    sections = contents(blocks)
    if sections:
        links = " · ".join(f"[{name}](#{anchor})" for name, anchor in sections)
        parts.insert(_after_title(blocks), f"Contents: {links}")
    return "\n\n".join(parts) + "\n"


def _after_title(blocks: Sequence[Block]) -> int:
    """Where the list of contents goes: after the level-1 title when the document starts with one."""
    return 1 if blocks and isinstance(blocks[0], Heading) and blocks[0].level == 1 else 0


def inline_html(text: str) -> str:
    """Escape text, then turn the Markdown ``code`` and **bold** of paragraphs into tags."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)


def _image_html(file: str, caption: str, directory: Path) -> str:
    """The figure inlined as base64, so the HTML file can be mailed or archived on its own."""
    data = base64.b64encode((directory / file).read_bytes()).decode("ascii")
    alt = html.escape(caption)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'
    )


def _table_html(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def to_html(blocks: Sequence[Block], directory: Path, title: str) -> str:
    """A self-contained HTML page; ``directory`` is where the blocks' image files are."""
    parts = []
    for block in blocks:
        match block:
            case Heading(text, level):
                anchor = f' id="{slug(text)}"' if level == 2 else ""
                parts.append(f"<h{level}{anchor}>{inline_html(text)}</h{level}>")
            case Paragraph(text):
                parts.append(f"<p>{inline_html(text)}</p>")
            case Table(header, rows):
                parts.append(_table_html(header, rows))
            case Image(file, caption):
                parts.append(_image_html(file, caption, directory))
            case Code(text):
                parts.append(f"<pre><code>{html.escape(text)}</code></pre>")
    sections = contents(blocks)
    if sections:
        links = "".join(f'<li><a href="#{anchor}">{html.escape(name)}</a></li>' for name, anchor in sections)
        parts.insert(_after_title(blocks), f"<nav>Contents<ol>{links}</ol></nav>")
    body = "\n".join(parts)
    viewport = '<meta name="viewport" content="width=device-width, initial-scale=1">'
    head = f'<meta charset="utf-8">\n{viewport}\n<title>{html.escape(title)}</title>\n<style>{CSS}</style>'
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n'
