"""One figure for every claim (the report's Figure 1) and its ``dvc plots`` table, from ``results/claims.json``.

Each claim is a panel; each of its parts (the verdict's parts, not the secondary lines) a row: the pooled estimate
with its 95 % interval over seeds, coloured by the part's verdict, the threshold as a line, the negligible band
``threshold +- delta`` shaded, and each seed's own estimate as a dot. A part's **margin** is how far its estimate
lies on the claimed side of the threshold in units of its interval's half-width: above 1 the interval clears
the threshold (holds), below -1 it lies on the other side; the ``dvc plots`` table (``results/curves/claims.csv``)
has one margin per part (:func:`freqbias.plot_data.claims_rows`), so ``dvc plots diff`` shows which parts an
experiment moved.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

from .headline import source

COLOURS = {"holds": "tab:green", "does not hold": "tab:red", "negligible": "tab:blue", "inconclusive": "tab:gray",
           "not measured": "lightgray"}


def _number(v: Any) -> float:
    """A JSON number as float; None (n/a) as NaN."""
    return math.nan if v is None else float(v)


def label(part: Mapping[str, Any], width: int = 34) -> str:
    """A part's statistic without its mask source, wrapped to two lines of ``width`` characters."""
    named = source(part["statistic"])
    lines = textwrap.wrap(part["statistic"].removesuffix(f" ({named})") if named else part["statistic"], width)
    return "\n".join(lines[:2]) + (" ..." if len(lines) > 2 else "")


def draw(claims: Sequence[Mapping[str, Any]], path: Path, dpi: int = 110) -> Path:
    """Two columns of panels, one per claim (see the module docstring); its aspect ratio stays below 1.3."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .plots import _save

    cols = 2
    rows = max(1, math.ceil(len(claims) / cols))
    heights = [max(len(c.get("parts", [])) for c in claims[r * cols:(r + 1) * cols]) + 1.5 for r in range(rows)]
    fig, axes = plt.subplots(rows, cols, figsize=(11, 0.42 * sum(heights) + 1), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, c in zip(axes.flat, claims):
        parts = c.get("parts", [])
        for y, p in enumerate(parts):
            est, lo, hi, thr = (_number(p.get(k)) for k in ("estimate", "lo", "hi", "threshold"))
            colour = COLOURS.get(p["verdict"], "black")
            if p.get("delta") is not None and math.isfinite(thr):
                ax.fill_betweenx([y - 0.4, y + 0.4], thr - p["delta"], thr + p["delta"], color="tab:blue", alpha=0.12,
                                 lw=0)
            if math.isfinite(thr):
                ax.plot([thr, thr], [y - 0.45, y + 0.45], color="black", lw=0.9)
            if all(math.isfinite(v) for v in (est, lo, hi)):
                ax.errorbar(est, y, xerr=[[est - lo], [hi - est]], fmt="o", color=colour, ms=5, capsize=3)
            else:
                ax.text(0.5, y, f"n/a: {p.get('reason') or 'not measured'}"[:60], transform=ax.get_yaxis_transform(),
                        ha="center", va="center", fontsize=6.5, color="dimgray")
            seeds = [_number(s.get("estimate")) for s in p.get("per_seed") or []]
            ax.plot([s for s in seeds if math.isfinite(s)], [y + 0.22] * sum(math.isfinite(s) for s in seeds), ".",
                    color=colour, ms=4, alpha=0.7)
        ax.set_yticks(range(len(parts)), [label(p) for p in parts], fontsize=6.5)
        ax.set_ylim(len(parts) - 0.5, -0.6)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        head = f"Claim {c['claim']}" + (f" ({c['title']})" if c.get("title") else "")
        ax.set_title(textwrap.shorten(f"{head}: {c['verdict']}. {c['text']}", 66), fontsize=8,
                     loc="left", color=COLOURS.get(c["verdict"], "black"))
        if not parts:
            ax.text(0.5, 0.5, f"no part measured: {c.get('reason') or c.get('note') or 'n/a'}"[:80],
                    transform=ax.transAxes, ha="center", fontsize=7)
    for ax in axes.flat[len(claims):]:
        ax.axis("off")
    handles = [Line2D([], [], marker="o", ls="", color=col, label=v) for v, col in COLOURS.items()]
    handles += [Line2D([], [], marker=".", ls="", color="gray", label="one seed"),
                Line2D([], [], color="black", label="threshold")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle("Every claim's parts: estimate and 95% interval over seeds against the threshold (shaded: "
                 "negligible band)", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    return _save(fig, path, dpi)
