"""Paragraph answers limited to the HTML Splose accepts: ``p div br ul ol li blockquote h1 h2 b i u a``.

Safe tags are kept without attributes, except ``href`` on ``a`` when it starts with ``http:``,
``https:`` or ``mailto:``. Any other tag is removed and its text kept; the text of ``script`` and
``style`` is dropped too (code, not clinical content). Entities stay as written (``&amp;``,
``&lt;urgent&gt;``); a stray ``<``, ``>`` or ``&`` in text is encoded. Comments and declarations go.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

SAFE_TAGS = frozenset({"p", "div", "br", "ul", "ol", "li", "blockquote", "h1", "h2", "b", "i", "u", "a"})
VOID_TAGS = frozenset({"br"})
DROPPED_CONTENT = frozenset({"script", "style"})
SAFE_HREF = re.compile(r"^(https?:|mailto:)")


class _Sanitiser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self.dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED_CONTENT:
            self.dropping += 1
        elif tag in SAFE_TAGS and not self.dropping:
            href = next((value.strip() for name, value in attrs if name == "href" and value), "")
            keep = tag == "a" and SAFE_HREF.match(href)
            self.out.append(f'<{tag} href="{html.escape(href, quote=True)}">' if keep else f"<{tag}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in SAFE_TAGS and tag not in VOID_TAGS and not self.dropping:
            self.out.append(f"</{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in DROPPED_CONTENT:
            self.dropping = max(0, self.dropping - 1)
        elif tag in SAFE_TAGS and tag not in VOID_TAGS and not self.dropping:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.out.append(html.escape(data, quote=False))

    def handle_entityref(self, name: str) -> None:
        if not self.dropping:
            self.out.append(f"&{name};" if f"&{name};" != html.unescape(f"&{name};") else f"&amp;{name};")

    def handle_charref(self, name: str) -> None:
        if not self.dropping:
            self.out.append(f"&#{name};")


def sanitise_html(fragment: str) -> str:
    parser = _Sanitiser()
    parser.feed(fragment)
    parser.close()
    return "".join(parser.out)
