"""The dataset's composition: the seed's statistics table (samples per source, share, total)
and a pie chart of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trainer.dataset.records import Record


@dataclass(frozen=True)
class SourceCount:
    source: str
    samples: int
    share: float  # percent of the total


def composition(records: list[Record]) -> list[SourceCount]:
    """Samples per source, largest first (ties by name), shares in percent."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record.source] = counts.get(record.source, 0) + 1
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [SourceCount(source, n, 100.0 * n / total) for source, n in ordered]


def print_table(rows: list[SourceCount], console: Console, title: str = "Dataset composition") -> None:
    # The title holds the persona's name and the rows the data files' names: text, not Rich
    # markup (a card named "Ino [/b]" made the build fail after its files were written).
    table = Table(title=escape(title))
    table.add_column("Source")
    table.add_column("Samples", justify="right")
    table.add_column("Share", justify="right")
    for row in rows:
        table.add_row(escape(row.source), f"{row.samples:,}", f"{row.share:.1f}%")
    table.add_section()
    table.add_row("Total", f"{sum(r.samples for r in rows):,}", "100.0%" if rows else "-")
    console.print(table)


def draw_pie(rows: list[SourceCount], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    wedges, _texts, _pcts = ax.pie(
        [r.samples for r in rows],
        # Percentages only where the slice has room; the legend names every source.
        autopct=lambda pct: f"{pct:.1f}%" if pct >= 4 else "",
        startangle=90,
        counterclock=False,
        pctdistance=0.75,
        wedgeprops={"linewidth": 1, "edgecolor": "white"},
    )
    ax.legend(
        wedges,
        [literal(f"{r.source}: {r.samples:,} ({r.share:.1f}%)") for r in rows],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
    )
    ax.set_title(literal(f"{title} ({sum(r.samples for r in rows):,} samples)"), pad=12)
    ax.axis("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def literal(text: str) -> str:
    """Text for matplotlib as it reads: a name with two `$` would be parsed as mathtext (and fail
    on an unknown symbol)."""
    return text.replace("$", r"\$")
