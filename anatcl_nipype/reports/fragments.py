"""HTML fragments (the reportlets' contents): escaped text, tables, figures with captions.

>>> table(["a", "b"], [[1, "x<y"]])
'<table><tr><th>a</th><th>b</th></tr><tr><td class="num">1</td><td>x&lt;y</td></tr></table>'
>>> sig3(0.123456), sig3(14.82009996), sig3("n/a")
('0.123', '14.8', 'n/a')
"""

import html
import re

from anatcl_nipype.prediction.summary_text import sd_text, sig3

_SVG_SIZE = re.compile(r'\s(width|height)="[^"]*"')


def esc(text):
    return html.escape(str(text), quote=True)


def _cell(value, raw=False):
    text = str(value) if raw else esc(value)
    try:
        float(str(value))
        return f'<td class="num">{text}</td>'
    except ValueError:
        return f"<td>{text}</td>"


def table(header, rows, row_classes=None, raw_columns=(), css_class=None):
    """An HTML table; cells in ``raw_columns`` (indices) are inserted unescaped;
    ``css_class="sortable"``: the report's script sorts it by a click on a header."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        css = (row_classes or {}).get(index)
        cells = "".join(_cell(v, raw=i in raw_columns) for i, v in enumerate(row))
        body.append(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    opening = f'<table class="{css_class}">' if css_class else "<table>"
    return f"{opening}<tr>{head}</tr>{''.join(body)}</table>"


def records_table(records):
    """A table of dict rows (as TSV readers give them): the first row's keys as the header,
    numbers to 3 significant digits; empty for no rows.

    >>> print(records_table([{"fold": "0", "mae": "2.34567"}]).replace("<tr>", "\\n<tr>"))
    <table>
    <tr><th>fold</th><th>mae</th></tr>
    <tr><td class="num">0</td><td class="num">2.35</td></tr></table>
    """
    if not records:
        return ""
    header = list(records[0])
    return table(header, [[sig3(row.get(column, "")) for column in header] for row in records])


def metrics_table(records):
    """:func:`records_table` of a metrics TSV (per fold, then ``mean`` and ``sd`` rows), its
    ``sd`` row shown by the one rule for standard deviations (:func:`sd_text`).

    >>> metrics_table([{"fold": "sd", "pearson_r": "5.551115123e-17"}]).split("<tr>")[-1]
    '<td>sd</td><td class="num">0</td></tr></table>'
    """
    if not records:
        return ""
    header = list(records[0])
    return table(header, [[(sd_text if row.get("fold") == "sd" and column != "fold" else sig3)(
        row.get(column, "")) for column in header] for row in records])


def key_values(pairs):
    """A table of ``(name, value)`` rows, names as row headers, values escaped."""
    rows = "".join(f"<tr><th>{esc(name)}</th>{_cell(value)}</tr>" for name, value in pairs)
    return f"<table>{rows}</table>" if rows else ""


def figure_img(uri, alt, caption, width=None):
    """A PNG figure with its caption directly below it."""
    size = f' width="{width}"' if width else ""
    style = f' style="max-width: {width}px"' if width else ""
    return (f'<figure{style}><img alt="{esc(alt)}" src="{uri}"{size}>'
            f"<figcaption>{caption}</figcaption></figure>")


def figure_svg(svg, caption):
    """An inline SVG figure (fixed width/height removed: it scales to its box) + caption."""
    opening_end = svg.find(">")
    svg = _SVG_SIZE.sub("", svg[:opening_end]) + svg[opening_end:]
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


def flags_list(flags):
    if not flags:
        return '<p class="ok">No automatic check flagged this participant.</p>'
    return '<ul class="flag">' + "".join(f"<li>{esc(f)}</li>" for f in flags) + "</ul>"
