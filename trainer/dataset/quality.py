"""The data-quality report of `python -m trainer data build`, for anyone's dataset: what a persona
adapter learns badly from, found before training. Warnings, never errors; thresholds in
config/data_quality.yaml.

- distinct replies: how many of the persona's lines are different, and the most repeated ones
  (a model trained on the same line a dozen times says it to everything);
- near-duplicate replies: clusters of replies whose sentence embeddings (all-MiniLM-L6-v2) are
  almost the same, with file:line of each;
- prompt/reply coherence: a reply that is closer to many other prompts than to its own was
  probably written for another line (the "answers a sibling variant" failure), with file:line;
- reply lengths: their distribution (drawn), and the replies too short or too long;
- over-used phrases: word triples and opening words found in too many replies.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from trainer.dataset.records import Record

# Word triples made only of these say nothing about a dataset's habits.
COMMON = frozenset("a an and are as at be but by do for from have he her his i if in is it its just me my no not of "
                   "on or our so that the their them they this to up was we what when with you your".split())


@dataclass(frozen=True)
class QualitySettings:
    min_distinct_reply_ratio: float = 0.9  # warn when fewer than this share of persona lines are distinct
    max_reply_uses: int = 3  # list persona lines used more than this many times
    near_duplicate_similarity: float = 0.95  # two replies at least this similar (cosine) are near-duplicates
    max_near_duplicate_share: float = 0.05  # warn when more than this share of replies sit in near-duplicate clusters
    coherence_closer_prompts: int = 5  # an outlier's reply is closer to at least this many other prompts than to its own ...
    coherence_closer_share: float = 0.1  # ... and to at least this share of all prompts
    max_incoherent_share: float = 0.2  # warn when more than this share of samples are coherence outliers
    min_reply_words: int = 2  # list replies shorter than this
    max_reply_words: int = 80  # list replies longer than this
    max_phrase_share: float = 0.02  # list word triples found in more than this share of replies
    max_opening_share: float = 0.08  # list opening words of more than this share of replies
    show: int = 10  # examples listed per finding

    RANGES: ClassVar[dict] = {
        "min_distinct_reply_ratio": (0, 1), "max_reply_uses": (1, None), "near_duplicate_similarity": (0, 1),
        "max_near_duplicate_share": (0, 1), "coherence_closer_prompts": (1, None), "coherence_closer_share": (0, 1),
        "max_incoherent_share": (0, 1), "min_reply_words": (0, None), "max_reply_words": (1, None),
        "max_phrase_share": (0, 1), "max_opening_share": (0, 1), "show": (0, None)}


@dataclass
class Finding:
    """One line of the report: what was measured, its examples, and whether it is a warning."""

    name: str
    summary: str
    warning: bool
    examples: list[str] = field(default_factory=list)


@dataclass
class QualityReport:
    samples: int
    persona_lines: int
    distinct_lines: int
    findings: list[Finding]
    lengths: list[int]
    seconds: float
    stats: dict = field(default_factory=dict)

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.warning]

    def to_json(self) -> dict:
        return {"samples": self.samples, "persona_lines": self.persona_lines, "distinct_lines": self.distinct_lines,
                "seconds": round(self.seconds, 1), "stats": self.stats, "findings": [asdict(f) for f in self.findings]}


def exchange(record: Record) -> tuple[str, str]:
    """The sample's last prompt (what the user said last) and its reply."""
    messages = record.messages
    reply = messages[-1]["content"]
    prompt = next((m["content"] for m in reversed(messages[:-1]) if m["role"] == "user"), "")
    return prompt, reply


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def clip(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def repeated_lines(records: list[Record], settings: QualitySettings) -> tuple[Finding, int, int]:
    uses: Counter[str] = Counter()
    where: dict[str, list] = defaultdict(list)
    for record in records:
        for message in record.messages:
            if message["role"] == "assistant":
                uses[message["content"]] += 1
                where[message["content"]].append(record.origin)
    total, distinct = sum(uses.values()), len(uses)
    ratio = distinct / total if total else 1.0
    over = [(line, n) for line, n in uses.most_common() if n > settings.max_reply_uses]
    first = {line: min(where[line], key=lambda o: (o.file, o.line)) for line, _ in over[: settings.show]}
    examples = [f"{n}x {clip(line)!r} (first at {first[line]})" for line, n in over[: settings.show]]
    summary = (f"{distinct:,} distinct of {total:,} persona lines ({ratio:.1%}); "
               f"{len(over):,} used more than {settings.max_reply_uses} times")
    return Finding("distinct replies", summary, ratio < settings.min_distinct_reply_ratio or bool(over), examples), total, distinct


def near_duplicates(records: list[Record], replies, settings: QualitySettings, chunk: int = 1024) -> Finding:
    import torch

    n = len(records)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    texts = [exchange(r)[1] for r in records]
    for start in range(0, n, chunk):
        sims = replies[start:start + chunk] @ replies.T
        rows, cols = torch.nonzero(sims >= settings.near_duplicate_similarity, as_tuple=True)
        for i, j in zip((rows + start).tolist(), cols.tolist()):
            if i < j and texts[i] != texts[j]:  # exact repeats are the "distinct replies" finding
                parent[root(j)] = root(i)
    clusters: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        clusters[root(i)].append(i)
    groups = sorted((g for g in clusters.values() if len({texts[i] for i in g}) > 1), key=len, reverse=True)
    members = sum(len(g) for g in groups)
    share = members / n if n else 0.0
    examples = [" ~ ".join(f"{records[i].origin} {clip(texts[i], 50)!r}" for i in g[:3]) + (f" (+{len(g) - 3})" if len(g) > 3 else "")
                for g in groups[: settings.show]]
    summary = (f"{len(groups):,} clusters of near-duplicate replies (cosine >= {settings.near_duplicate_similarity}), "
               f"{members:,} replies ({share:.1%})")
    return Finding("near-duplicate replies", summary, share > settings.max_near_duplicate_share, examples)


def coherence(records: list[Record], prompts, replies, settings: QualitySettings, chunk: int = 1024) -> Finding:
    """For each sample, how many other prompts its reply is closer to than to its own prompt."""
    import torch

    n = len(records)
    own = (replies * prompts).sum(-1)
    prompt_texts = [exchange(r)[0] for r in records]
    needed = max(settings.coherence_closer_prompts, math.ceil(settings.coherence_closer_share * n))
    outliers = []
    for start in range(0, n, chunk):
        sims = replies[start:start + chunk] @ prompts.T
        closer = (sims > own[start:start + chunk, None] + 1e-6).sum(-1)
        for offset in torch.nonzero(closer >= needed).flatten().tolist():
            i = start + offset
            best = int(sims[offset].argmax())
            outliers.append((int(closer[offset]), i, best))
    outliers.sort(reverse=True)
    share = len(outliers) / n if n else 0.0
    examples = [f"{records[i].origin}: {clip(prompt_texts[i], 40)!r} -> {clip(exchange(records[i])[1], 50)!r} "
                f"is closer to {count} other prompts, e.g. {clip(prompt_texts[best], 40)!r} ({records[best].origin})"
                for count, i, best in outliers[: settings.show]]
    summary = (f"{len(outliers):,} replies ({share:.1%}) closer to at least {needed} other prompts than to their own")
    return Finding("prompt/reply coherence", summary, share > settings.max_incoherent_share, examples)


def length_finding(records: list[Record], settings: QualitySettings) -> tuple[Finding, list[int]]:
    lengths = [len(words(exchange(r)[1])) for r in records]
    ordered = sorted(lengths)
    p50 = ordered[len(ordered) // 2] if ordered else 0
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0
    short = [r for r, n in zip(records, lengths) if n < settings.min_reply_words]
    long = [r for r, n in zip(records, lengths) if n > settings.max_reply_words]
    examples = [f"{r.origin}: {len(words(exchange(r)[1]))} words {clip(exchange(r)[1], 60)!r}"
                for r in (long + short)[: settings.show]]
    summary = (f"reply length in words: median {p50}, 95th percentile {p95}, longest {ordered[-1] if ordered else 0}; "
               f"{len(long)} over {settings.max_reply_words}, {len(short)} under {settings.min_reply_words}")
    return Finding("reply lengths", summary, bool(short or long), examples), lengths


def phrase_finding(records: list[Record], settings: QualitySettings) -> tuple[Finding, Finding]:
    triples: Counter[tuple[str, ...]] = Counter()
    openings: Counter[str] = Counter()
    replies = [words(exchange(r)[1]) for r in records]
    for tokens in replies:
        triples.update({tuple(tokens[i:i + 3]) for i in range(len(tokens) - 2)})  # once per reply
        if tokens:
            openings[tokens[0]] += 1
    n = max(len(replies), 1)
    frequent = [(" ".join(t), c / n) for t, c in triples.most_common(200)
                if c / n > settings.max_phrase_share and not set(t) <= COMMON]
    opening = [(w, c / n) for w, c in openings.most_common(20) if c / n > settings.max_opening_share]
    top_phrases = ", ".join(f"{' '.join(t)!r} {c / n:.1%}" for t, c in triples.most_common(5))
    top_openings = ", ".join(f"{w!r} {c / n:.1%}" for w, c in openings.most_common(5))
    phrases = Finding("over-used phrases", f"{len(frequent)} word triples in more than {settings.max_phrase_share:.0%} of "
                      f"replies (most common: {top_phrases})", bool(frequent),
                      [f"{p!r} in {s:.1%} of replies" for p, s in frequent[: settings.show]])
    starts = Finding("opening words", f"{len(opening)} opening words start more than {settings.max_opening_share:.0%} of "
                     f"replies (most common: {top_openings})", bool(opening),
                     [f"{w!r} opens {s:.1%} of replies" for w, s in opening[: settings.show]])
    return phrases, starts


def assess(records: list[Record], settings: QualitySettings = QualitySettings(), embedder=None) -> QualityReport:
    """The whole report for the samples of a dataset (after validation and de-duplication)."""
    from trainer.embeddings import Embedder

    started = time.perf_counter()
    distinct, total, distinct_count = repeated_lines(records, settings)
    embedder = embedder or Embedder()
    pairs = [exchange(r) for r in records]
    prompts = embedder.embed_many([p for p, _ in pairs], progress="embedding prompts")
    replies = embedder.embed_many([r for _, r in pairs], progress="embedding replies")
    lengths, length_list = length_finding(records, settings)
    phrases, openings = phrase_finding(records, settings)
    findings = [distinct, near_duplicates(records, replies, settings), coherence(records, prompts, replies, settings),
                lengths, phrases, openings]
    return QualityReport(len(records), total, distinct_count, findings, length_list, time.perf_counter() - started)


def print_report(report: QualityReport, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    # Summaries quote the data (phrases, openings): text, never Rich markup.
    table = Table(title=f"data quality ({report.samples:,} samples, {report.seconds:.0f}s)")
    table.add_column("check")
    table.add_column("finding")
    table.add_column("", justify="center")
    for finding in report.findings:
        table.add_row(finding.name, escape(finding.summary), "[yellow]warning[/]" if finding.warning else "ok")
    console.print(table)
    for finding in report.warnings:
        console.print(f"[yellow]warning:[/] {finding.name}: {escape(finding.summary)}", highlight=False)
        for example in finding.examples:
            console.print(f"  {example}", markup=False, highlight=False)


def write_report(report: QualityReport, out: Path) -> list[Path]:
    """quality.json, quality.md and quality.png (reply lengths, warnings) in `out`."""
    import matplotlib

    from core.files import write_atomic, write_json

    write_json(out / "quality.json", report.to_json())
    lines = [f"# Data quality: {report.samples:,} samples", "",
             f"{report.distinct_lines:,} distinct of {report.persona_lines:,} persona lines. Report made in {report.seconds:.0f} s.", "",
             "| check | finding | |", "|---|---|---|"]
    lines += [f"| {f.name} | {f.summary} | {'warning' if f.warning else 'ok'} |" for f in report.findings]
    for finding in report.findings:
        if finding.examples:
            lines += ["", f"## {finding.name}", ""] + [f"- `{e}`" for e in finding.examples]
    lines += ["", "![reply lengths](quality.png)"]
    write_atomic(out / "quality.md", "\n".join(lines) + "\n")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.hist(report.lengths, bins=range(0, max(report.lengths, default=1) + 2), color="#c0392b")
    ax.set_xlabel("reply length (words)")
    ax.set_ylabel("samples")
    ax.set_title(f"reply lengths, {report.samples:,} samples; {len(report.warnings)} warning(s)")
    fig.tight_layout()
    fig.savefig(out / "quality.png", dpi=100)
    plt.close(fig)
    return [out / "quality.json", out / "quality.md", out / "quality.png"]
