"""HTML building blocks of the report: escaped text, tables, figures, notes, the page.

Everything the page needs is inside it: the style sheet is inline, images are ``data:`` URIs
(:func:`image_data_uri`), there is no script and no link to anything outside the file, so it
opens offline in any browser and prints to PDF as it looks (a print style sheet keeps figures
and table rows from splitting across pages). The functions return HTML fragments as strings;
text passed in is escaped here, HTML passed in (``Html``) is not.
"""
from __future__ import annotations

import base64
import html
from typing import Iterable, Optional, Sequence, Union


class Html(str):
    """A string that is already HTML (not escaped again)."""


Content = Union[str, Html, None]

#: Inline style sheet: readable on screen and on paper (A4 / letter), no web fonts.
STYLE = """
body { font-family: -apple-system, 'Segoe UI', 'DejaVu Sans', Arial, sans-serif;
       font-size: 14px; line-height: 1.45; color: #1a1a1a; max-width: 1100px;
       margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 20px; border-bottom: 2px solid #2b5d8a; padding-bottom: 3px; margin-top: 32px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
h4 { font-size: 14px; margin: 16px 0 4px; }
p.meta { color: #555; margin: 0 0 8px; }
nav.toc { background: #f3f6f9; border: 1px solid #d5dee8; padding: 6px 12px; }
nav.toc a { margin-right: 14px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid #c9d2dc; padding: 3px 7px; vertical-align: top;
         overflow-wrap: break-word; }
table.facts { width: 100%; }
table.facts td { overflow-wrap: anywhere; }
table.facts td:first-child { width: 18%; overflow-wrap: normal; }
th { background: #eef2f6; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr { page-break-inside: avoid; }
figure { display: inline-block; margin: 6px 10px 10px 0; vertical-align: top;
         page-break-inside: avoid; }
figure img { max-width: 100%; border: 1px solid #e1e6eb; }
figure.plot img { width: 520px; }
figure.wide img { width: 780px; }
figcaption { font-size: 12px; color: #333; max-width: 520px; }
div.gallery figure { width: 250px; }
div.gallery figure img { width: 250px; image-rendering: auto; }
div.gallery figcaption { max-width: 250px; }
p.missing { background: #fff4e5; border-left: 4px solid #e69500; padding: 5px 9px; }
p.problem { background: #fdecea; border-left: 4px solid #c0392b; padding: 5px 9px; }
p.ok { background: #eaf7ee; border-left: 4px solid #2e8b57; padding: 5px 9px; }
table.checklist td:nth-child(3) { white-space: nowrap; }
span.author { background: #fdecea; color: #8e1b10; font-weight: bold; padding: 0 4px; }
span.filled { background: #eaf7ee; color: #1d6b3a; font-weight: bold; padding: 0 4px; }
span.partly { background: #fff4e5; color: #8a5300; font-weight: bold; padding: 0 4px; }
pre { background: #f6f8fa; border: 1px solid #d5dee8; padding: 8px; font-size: 12px;
      white-space: pre-wrap; word-break: break-all; }
code { font-size: 12px; background: #f3f3f3; padding: 0 3px; }
details summary { cursor: pointer; color: #2b5d8a; }
div.flow { display: flex; align-items: stretch; gap: 8px; flex-wrap: wrap; margin: 8px 0; }
div.flow div.box { border: 2px solid #2b5d8a; border-radius: 6px; padding: 6px 10px;
                   background: #f3f6f9; min-width: 150px; }
div.flow div.arrow { align-self: center; font-size: 22px; color: #2b5d8a; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  nav.toc { display: none; }
  h2 { page-break-before: auto; page-break-after: avoid; }
  h3, h4 { page-break-after: avoid; }
  figure.plot { width: 48%; margin-right: 1%; }
  figure.plot img { width: 100%; }
  figure.wide { width: 80%; }
  figure.wide img { width: 100%; }
  figcaption { max-width: none; }
  div.gallery figure { width: 23%; }
  div.gallery figure img { width: 100%; }
  a { color: inherit; text-decoration: none; }
}
"""


def esc(text: Content) -> str:
    """``text`` escaped for HTML (``Html`` is returned as it is; None gives '')."""
    if text is None:
        return ''
    if isinstance(text, Html):
        return text
    return html.escape(str(text), quote=True)


def tag(name: str, content: Content = '', **attributes: Optional[str]) -> Html:
    """``<name attr="...">content</name>``; ``class_`` gives ``class``; None drops one."""
    attrs = ''.join(f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"'
                    for key, value in attributes.items() if value is not None)
    return Html(f'<{name}{attrs}>{esc(content)}</{name}>')


def join(parts: Iterable[Content]) -> Html:
    """Fragments one after the other (text parts escaped)."""
    return Html('\n'.join(esc(part) for part in parts if part))


def paragraph(text: Content, class_: Optional[str] = None) -> Html:
    """A ``<p>``."""
    return tag('p', text, class_=class_)


def missing(what: str, why: str, how: Optional[str] = None) -> Html:
    """The visible note of a part the run does not have: ``not available: why (how)``."""
    text = f'{what} not available: {why}' + (f' ({how})' if how else '')
    return tag('p', text, class_='missing')


def code(text: str) -> Html:
    """Inline ``<code>``."""
    return tag('code', text)


def table(header: Sequence[Content], rows: Iterable[Sequence[Content]],
          numeric: Sequence[bool] = (), class_: Optional[str] = None) -> Html:
    """A table; ``numeric[i]`` right-aligns column ``i`` (numbers)."""
    head = ''.join(f'<th>{esc(cell)}</th>' for cell in header)
    body = []
    for row in rows:
        cells = ''.join(
            f'<td class="num">{esc(cell)}</td>' if i < len(numeric) and numeric[i]
            else f'<td>{esc(cell)}</td>' for i, cell in enumerate(row))
        body.append(f'<tr>{cells}</tr>')
    attribute = f' class="{esc(class_)}"' if class_ else ''
    return Html(f'<table{attribute}><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>')


def image_data_uri(data: bytes, mime: str = 'image/png') -> str:
    """``data:<mime>;base64,...`` of image bytes (embedded, nothing fetched)."""
    return f'data:{mime};base64,{base64.b64encode(data).decode("ascii")}'


def figure(png: bytes, caption: Content, alt: str, class_: str = 'plot',
           mime: str = 'image/png') -> Html:
    """An embedded image with its caption."""
    image = f'<img src="{image_data_uri(png, mime)}" alt="{esc(alt)}">'
    return Html(f'<figure class="{class_}">{image}<figcaption>{esc(caption)}</figcaption>'
                '</figure>')


def details(summary: str, content: Content) -> Html:
    """A collapsible block (closed until clicked)."""
    return Html(f'<details><summary>{esc(summary)}</summary>{esc(content)}</details>')


def pre(text: str) -> Html:
    """Preformatted text (commands, the config)."""
    return tag('pre', text)


def section(anchor: str, title: str, content: Content) -> Html:
    """A top-level report section ``<section id=anchor>`` with its ``<h2>``."""
    return Html(f'<section id="{esc(anchor)}" class="report-section">'
                f'{tag("h2", title)}\n{esc(content)}</section>')


def page(title: str, subtitle: Content, toc: Sequence[tuple], body: Content) -> str:
    """The whole document: ``toc`` is ``[(anchor, title), ...]``."""
    links = ' '.join(f'<a href="#{esc(anchor)}">{esc(name)}</a>' for anchor, name in toc)
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n'
            f'<header>{tag("h1", title)}{esc(subtitle)}</header>\n'
            f'<nav class="toc">{links}</nav>\n{esc(body)}\n</body>\n</html>\n')
