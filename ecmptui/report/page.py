"""A self-contained HTML page: inline CSS, inline SVG, no script, nothing fetched. Built as
an element tree, so every text is escaped by the serializer, never by hand."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1d1d1f; margin: 24px auto;
       max-width: 1180px; padding: 0 16px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 6px; border-top: 1px solid #ddd; padding-top: 14px; }
p.meta { color: #555; margin: 0 0 14px; }
table { border-collapse: collapse; margin: 8px 0 12px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.bad, span.bad { color: #b00020; font-weight: 600; }
td.good { color: #1b7f2a; }
svg.chart { display: block; margin: 6px 0; border: 1px solid #e0e0e0; }
ul.notes { margin: 4px 0 10px; }
p.help { color: #555; font-size: 13px; }
"""


class Page:
    """An HTML document being put together, in order."""

    def __init__(self, title: str) -> None:
        self.root = ET.Element("html", {"lang": "en"})
        head = ET.SubElement(self.root, "head")
        ET.SubElement(head, "meta", {"charset": "utf-8"})
        ET.SubElement(head, "meta", {"name": "viewport", "content": "width=device-width"})
        ET.SubElement(head, "title").text = title
        ET.SubElement(head, "style").text = STYLE
        self.body = ET.SubElement(self.root, "body")

    def heading(self, level: int, words: str, anchor: str | None = None) -> ET.Element:
        h = ET.SubElement(self.body, f"h{level}", {"id": anchor} if anchor else {})
        h.text = words
        return h

    def paragraph(self, words: str, cls: str | None = None) -> ET.Element:
        p = ET.SubElement(self.body, "p", {"class": cls} if cls else {})
        p.text = words
        return p

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str | Cell]],
        cls: str | None = None,
    ) -> ET.Element:
        t = ET.SubElement(self.body, "table", {"class": cls} if cls else {})
        tr = ET.SubElement(ET.SubElement(t, "thead"), "tr")
        for h in header:
            ET.SubElement(tr, "th").text = h
        tbody = ET.SubElement(t, "tbody")
        for row in rows:
            tr = ET.SubElement(tbody, "tr")
            for cell in row:
                c = cell if isinstance(cell, Cell) else Cell(cell)
                td = ET.SubElement(tr, "td", {"class": c.cls} if c.cls else {})
                td.text = c.text
        return t

    def items(self, lines: Sequence[str], cls: str = "notes") -> ET.Element:
        ul = ET.SubElement(self.body, "ul", {"class": cls})
        for line in lines:
            ET.SubElement(ul, "li").text = line
        return ul

    def add(self, element: ET.Element) -> None:
        self.body.append(element)

    def html(self) -> str:
        return "<!DOCTYPE html>\n" + ET.tostring(self.root, encoding="unicode", method="html")


class Cell:
    """A table cell's text and class (num, good, bad)."""

    def __init__(self, text: str, cls: str | None = None) -> None:
        self.text, self.cls = text, cls
