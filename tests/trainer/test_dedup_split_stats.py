import struct

from trainer.dataset.dedup import dedupe
from trainer.dataset.records import Origin, Record
from trainer.dataset.split import split
from trainer.dataset.stats import composition, draw_pie


def record(output, source="quotes", line=1, instruction="Say it"):
    return Record(instruction, "", output, source, Origin(f"{source}.jsonl", line))


def test_exact_and_normalized_duplicates_are_removed_and_reported():
    records = [
        record("Fight me!", line=1),
        record("Fight me!", line=2),
        record("  FIGHT   me ", line=3),
        record("Fight, me!!", line=4),
        record("Fight me now!", line=5),
    ]
    kept, removed = dedupe(records)
    assert [r.origin.line for r in kept] == [1, 5]
    assert [(d.removed.origin.line, d.kept.origin.line, d.exact) for d in removed] == [(2, 1, True), (3, 1, False), (4, 1, False)]
    assert str(removed[0]) == "quotes.jsonl:2: exact duplicate of quotes.jsonl:1"


def many():
    return [record(f"line {i}", source=s, line=i) for s, n in (("conversations", 60), ("quotes", 20), ("persona", 3)) for i in range(n)]


def test_split_is_deterministic_whatever_the_order():
    records = many()
    train, evaluation = split(records, 0.1, seed=3)
    train2, evaluation2 = split(list(reversed(records)), 0.1, seed=3)
    assert [r.output for r in evaluation] == [r.output for r in evaluation2]
    assert sorted(r.output for r in train) == sorted(r.output for r in train2)
    assert {r.output for r in split(records, 0.1, seed=4)[1]} != {r.output for r in evaluation}


def test_split_is_stratified_by_source():
    train, evaluation = split(many(), 0.1, seed=0)
    counts = {s: sum(r.source == s for r in evaluation) for s in ("conversations", "quotes", "persona")}
    assert counts == {"conversations": 6, "quotes": 2, "persona": 1}
    assert len(train) + len(evaluation) == 83 and not {id(r) for r in train} & {id(r) for r in evaluation}


def test_statistics_numbers_and_chart(tmp_path):
    rows = composition(many())
    assert [(r.source, r.samples, round(r.share, 1)) for r in rows] == [
        ("conversations", 60, 72.3), ("quotes", 20, 24.1), ("persona", 3, 3.6),
    ]
    png = tmp_path / "pie.png"
    draw_pie(rows, png, "test")
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width > 400 and height > 300
