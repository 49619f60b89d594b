"""Read figures out of admin pages without depending on the theme's CSS classes."""

from __future__ import annotations

import re


def cell(html: str, field: str) -> list[str]:
    """The text of every changelist cell of column `field` (its `field-<name>` class), in order."""
    pattern = rf'<td class="field-{re.escape(field)}(?:\s[^"]*)?"[^>]*>(.*?)</td>'
    return [re.sub(r"<[^>]+>", "", text).strip() for text in re.findall(pattern, html, re.DOTALL)]


def readonly_starts(html: str, text: str) -> bool:
    """Whether a read-only field of a change form starts with `text` (HTML as rendered)."""
    return re.search(r'<div class="readonly(?:\s[^"]*)?">' + re.escape(text), html) is not None


def text(fragment: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed (icon ligatures left out)."""
    icon = r'<span class="material-symbols-outlined[^"]*">.*?</span>'
    fragment = re.sub(icon, " ", fragment, flags=re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def links(html: str, href: str) -> list[str]:
    """The visible text of every link to exactly `href`."""
    pattern = rf'<a\s[^>]*href="{re.escape(href)}"[^>]*>(.*?)</a>'
    return [text(inner) for inner in re.findall(pattern, html, re.DOTALL)]


def table_row(html: str, label: str) -> list[str]:
    """The cells of every table row headed `label` (a <th>), as text."""
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.DOTALL)
    found = []
    for row in rows:
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.DOTALL)
        if cells and text(cells[0]) == label:
            found.append([text(c) for c in cells[1:]])
    return found
