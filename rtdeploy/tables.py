"""Plain aligned text tables for terminals, logs and Markdown code blocks (core: used by every layer)."""

from __future__ import annotations

import textwrap
from typing import Any

WIDTH = 100  # a table is at most this many columns wide: long text cells wrap onto more lines
_MIN_TEXT = 12  # a wrapped text column keeps at least this many characters per line


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None, *, width: int = WIDTH) -> str:
    """A plain aligned text table of ``rows`` (dicts), for terminals and logs.

    Numbers are right-aligned and never broken; when the table would be wider than ``width``,
    the widest text columns are narrowed and their cells wrap onto continuation lines. Lines
    carry no trailing blanks.
    """
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    # A column narrows no further than its header, its numbers (never broken) and _MIN_TEXT.
    floor = [max(len(c), *(len(row[i]) for row in cells if _numeric(row[i])), min(_MIN_TEXT, widths[i]))
             for i, c in enumerate(columns)]
    widths = _fit(widths, floor, width)
    out = _lines(columns, widths) + [_join(["-" * w for w in widths], widths)]
    for row in cells:
        out += _lines(row, widths)
    return "\n".join(out)


def _fit(widths: list[int], floor: list[int], limit: int) -> list[int]:
    """Narrow the widest text columns, one character at a time, until the table fits ``limit``."""
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > limit:
        narrowable = [i for i, w in enumerate(widths) if w > floor[i]]
        if not narrowable:
            break
        widest = max(narrowable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _lines(values: list[str], widths: list[int]) -> list[str]:
    """One row as one or more text lines (text cells wrapped to their column's width)."""
    wrapped = [[v] if len(v) <= w else textwrap.wrap(v, w, break_on_hyphens=False) or [""] for v, w in zip(values, widths)]
    height = max(len(w) for w in wrapped)
    return [_join([w[k] if k < len(w) else "" for w in wrapped], widths) for k in range(height)]


def _join(values: list[str], widths: list[int]) -> str:
    return "  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(values, widths)).rstrip()


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _numeric(s: str) -> bool:
    return s.replace(",", "").replace(".", "", 1).replace("-", "", 1).replace("e", "", 1).isdigit()
