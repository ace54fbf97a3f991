"""Self-contained HTML reports: headings, paragraphs, tables and inlined PNG figures.

Example
-------
>>> from whiteboxdl.viz.report import Report
>>> r = Report("Demo")
>>> r.table(["measure", "value"], [["clean accuracy", "99.5%"]])
>>> "<td>99.5%</td>" in r.html()
True
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Sequence

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}.warn{color:#a00;font-weight:bold}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
"""


class Report:
    """Accumulates sections and writes one HTML file with every figure inlined as base64."""

    def __init__(self, title: str):
        self.title = title
        self._parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, warn: bool = False) -> None:
        cls = ' class="warn"' if warn else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                       for row in rows)
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, png_path: str | Path, caption: str = "") -> None:
        data = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f'<figure><img alt="{html.escape(caption or Path(png_path).name)}" '
                           f'src="data:image/png;base64,{data}">{cap}</figure>')

    def extend(self, other: "Report") -> None:
        """Append every section of ``other`` (its title is dropped)."""
        self._parts.extend(other._parts)

    def html(self) -> str:
        body = "\n".join(self._parts)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
                f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
                f"\n{body}\n</body></html>")

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
        return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (also readable in a terminal)."""
    lines = ["| " + " | ".join(map(str, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)
