"""The console's one severity palette (ITU-T X.733 perceived severity), used by every badge, map,
grid and chart so that "major" looks the same everywhere.

Colours are the Okabe-Ito set (designed to stay distinguishable with the common colour-vision
deficiencies), ordered so that lightness falls as severity rises, and every use also carries the
severity's name (badge text, grid cell text, legend tick labels): colour is never the only cue.
"""

from __future__ import annotations

from dash import html

__all__ = ["SEVERITIES", "COLOURS", "TEXT_COLOURS", "rank", "badge", "grid_cell_style", "FLOOR_LEVELS",
           "floor_colorscale", "legend"]

# most severe first; `rank` orders them for sorting (higher = more severe)
SEVERITIES = ("critical", "major", "minor", "warning", "indeterminate", "cleared")
COLOURS = {
    "critical": "#7a0019",       # deep red
    "major": "#d55e00",          # vermillion
    "minor": "#e69f00",          # orange
    "warning": "#f0e442",        # yellow
    "indeterminate": "#56b4e9",  # sky blue
    "cleared": "#009e73",        # bluish green
}
TEXT_COLOURS = {"critical": "#ffffff", "major": "#ffffff", "minor": "#000000", "warning": "#000000",
                "indeterminate": "#000000", "cleared": "#ffffff"}
_RANK = {"cleared": 0, "indeterminate": 1, "warning": 2, "minor": 3, "major": 4, "critical": 5}


def rank(severity) -> int:
    """Sort key: higher is more severe; unknown severities sort with indeterminate."""
    return _RANK.get(str(getattr(severity, "value", severity) or "").lower(), 1)


def badge(severity, bid: str | None = None, prefix: str = "", suffix: str = "") -> html.Span:
    """A severity badge: the palette's colour with the severity's name on it."""
    sev = str(getattr(severity, "value", severity) or "indeterminate").lower()
    style = {"backgroundColor": COLOURS.get(sev, COLOURS["indeterminate"]),
             "color": TEXT_COLOURS.get(sev, "#000000")}
    kw = {"id": bid} if bid else {}
    return html.Span(f"{prefix}{sev}{suffix}", className=f"badge me-1 dcops-sev dcops-sev-{sev}", style=style, **kw)


def grid_cell_style(field_expr: str = "params.value") -> dict:
    """AG Grid `cellStyle` (styleConditions) colouring a severity cell by the palette."""
    return {"styleConditions": [
        {"condition": f"{field_expr} == '{sev}'",
         "style": {"backgroundColor": COLOURS[sev], "color": TEXT_COLOURS[sev], "fontWeight": "600"}}
        for sev in SEVERITIES]}


# The floor's "alarm state" colouring: the worst active alarm of a rack, 0 (none) .. 4 (critical).
FLOOR_LEVELS = ("none", "warning", "minor", "major", "critical")
_FLOOR_COLOURS = ("#d9d9d9", COLOURS["warning"], COLOURS["minor"], COLOURS["major"], COLOURS["critical"])


def floor_colorscale() -> list:
    """A stepped Plotly colorscale for z in 0..4, one flat band per level (no blending)."""
    n = len(FLOOR_LEVELS)
    out = []
    for k, colour in enumerate(_FLOOR_COLOURS):
        out += [[k / n, colour], [(k + 1) / n, colour]]
    return out


def legend(lid: str = "severity-legend") -> html.Div:
    """The palette with its names, for pages that colour by severity."""
    return html.Div([html.Span("Severity: ", className="me-2 small text-muted")]
                    + [badge(s) for s in SEVERITIES], id=lid, className="d-flex align-items-center flex-wrap")
