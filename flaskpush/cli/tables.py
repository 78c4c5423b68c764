"""Plain-text output for people: aligned tables and one-line descriptions."""
from urllib.parse import urlsplit

import click


def echo_table(headers, rows):
    """Print ``rows`` under ``headers`` in columns as wide as their widest
    cell; integer columns are right-aligned so they line up by magnitude."""
    text = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(line[i]) for line in text) for i in range(len(headers))]
    numeric = [bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]
    for line in text:
        cells = (c.rjust(w) if num else c.ljust(w) for c, w, num in zip(line, widths, numeric))
        click.echo("  ".join(cells).rstrip())


def minute(value):
    """A naive UTC datetime as ``YYYY-MM-DD HH:MM`` (tables say they are UTC)."""
    return value.strftime("%Y-%m-%d %H:%M") if value else None


def plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def short_endpoint(endpoint, width=24):
    """The endpoint's path, cut in the middle: enough to tell rows apart."""
    path = urlsplit(endpoint).path
    if len(path) <= width:
        return path
    half = (width - 3) // 2
    return f"{path[:half]}...{path[-half:]}"


def describe(sub):
    """One subscription on one line, for commands that report what they did."""
    return f"#{sub.id} {sub.user.name} {sub.push_service} {short_endpoint(sub.endpoint)}"
