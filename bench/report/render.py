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

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 68rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.5; }
h1, h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; }
figcaption { font-size: .9rem; color: #555; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; }
code { background: #f6f8fa; padding: 0 .2rem; }
"""


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
    return "\n\n".join(parts) + "\n"


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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(blocks: Sequence[Block], directory: Path, title: str) -> str:
    """A self-contained HTML page; ``directory`` is where the blocks' image files are."""
    parts = []
    for block in blocks:
        match block:
            case Heading(text, level):
                parts.append(f"<h{level}>{inline_html(text)}</h{level}>")
            case Paragraph(text):
                parts.append(f"<p>{inline_html(text)}</p>")
            case Table(header, rows):
                parts.append(_table_html(header, rows))
            case Image(file, caption):
                parts.append(_image_html(file, caption, directory))
            case Code(text):
                parts.append(f"<pre><code>{html.escape(text)}</code></pre>")
    body = "\n".join(parts)
    head = f'<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n<style>{CSS}</style>'
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n'
