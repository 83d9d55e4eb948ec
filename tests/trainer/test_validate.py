"""Every validation problem is reported as `file:line: field: reason`, and none vanishes."""

import json

import pytest

from trainer.dataset.build import token_counter
from trainer.dataset.pipeline import DataErrors, build_dataset, load_records

GOOD = '{"instruction": "Who are you?", "output": "Lord Inosuke!"}'


def problems_of(tmp_path, persona, name, text, max_tokens=None, tokenizer=None):
    path = tmp_path / name
    path.write_text(text)
    counter = token_counter(tokenizer) if tokenizer else None
    _, problems, _ = load_records([path], persona, max_tokens, counter)
    return [str(p) for p in problems], path


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"output": "HAH!"}', "instruction: missing"),
        ('{"instruction": "Hi", "output": 42}', "output: expected text, got int"),
        ('{"instruction": "Hi", "output": "   "}', "output: is empty"),
        ('{"instruction": "", "output": "HAH!"}', "instruction: is empty"),
        ('{"instruction": "Hi", "input": ["a"], "output": "HAH!"}', "input: expected text, got list"),
        ('["Hi", "HAH!"]', "record: expected an object with instruction/input/output, got list"),
        ('{"instruction": "Hi", "output": "HAH!"', "json: invalid JSON (Expecting ',' delimiter at column 39)"),
        (
            '{"instruction": "Continue.", "input": "You: hi\\nInosuke: HAH", "output": "You: and then?"}',
            "output: has no reply by Inosuke Hashibira, only other speakers' lines",
        ),
    ],
)
def test_each_problem_names_file_line_and_field(tmp_path, persona, line, message):
    problems, path = problems_of(tmp_path, persona, "bad.jsonl", f"{GOOD}\n\n{line}\n{GOOD}\n")
    assert problems == [f"{path}:3: {message}"]


def test_all_problems_of_a_row_are_reported(tmp_path, persona):
    problems, path = problems_of(tmp_path, persona, "bad.jsonl", '{"instruction": 1, "output": ""}\n')
    assert problems == [f"{path}:1: instruction: expected text, got int", f"{path}:1: output: is empty"]


def test_sample_longer_than_the_context(tmp_path, persona, tokenizer):
    long = json.dumps({"instruction": "Talk", "output": "HAH! " * 400})
    problems, path = problems_of(tmp_path, persona, "long.jsonl", f"{GOOD}\n{long}\n", max_tokens=512, tokenizer=tokenizer)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:2: sample: ") and problems[0].endswith("tokens, over the limit of 512 (the model's context or the profile's max_seq_len)")


def test_csv_problems(tmp_path, persona):
    problems, path = problems_of(tmp_path, persona, "a.csv", "instruction,outpt\nHi,HAH\n")
    assert problems == [f"{path}:1: header: missing column(s) output (found ['instruction', 'outpt'])"]
    problems, path = problems_of(tmp_path, persona, "b.csv", "instruction,input,output\nHi,,HAH\nHi,,HAH,extra\n")
    assert problems == [f"{path}:3: csv: 4 fields, the header has 3"]


def test_json_file_that_is_not_an_array(tmp_path, persona):
    problems, path = problems_of(tmp_path, persona, "x.json", '{"instruction": "Hi", "output": "HAH"}')
    assert problems == [f"{path}:1: json: expected an array of samples or a character card"]


def test_bad_rows_fail_the_build_and_leave_the_previous_build_alone(tmp_path, persona):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text(f"{GOOD}\n")
    out = tmp_path / "out"
    build_dataset(data, persona, out, eval_fraction=0)
    before = (out / "train.jsonl").read_text()
    (data / "a.jsonl").write_text(f'{GOOD}\n{{"instruction": "x"}}\n')
    with pytest.raises(DataErrors) as error:
        build_dataset(data, persona, out, eval_fraction=0)
    assert f"{data / 'a.jsonl'}:2: output: missing" in str(error.value)
    assert "--rejects" in str(error.value)
    assert (out / "train.jsonl").read_text() == before


def test_rejects_file_keeps_the_bad_rows(tmp_path, persona):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text(f'{GOOD}\n{{"instruction": "x"}}\nnot json\n')
    rejects = tmp_path / "rejects.jsonl"
    result = build_dataset(data, persona, tmp_path / "out", eval_fraction=0, rejects=rejects)
    assert len(result.train) == 1 and len(result.problems) == 2
    rows = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert rows == [
        {"origin": f"{data / 'a.jsonl'}:2", "problems": ["output: missing"], "row": {"instruction": "x"}},
        {"origin": f"{data / 'a.jsonl'}:3", "problems": ["json: invalid JSON (Expecting value at column 1)"], "row": None},
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"messages": []}', "messages: expected a non-empty list"),
        ('{"messages": [{"role": "user", "content": "Hi"}]}', "messages: must end with a reply by Inosuke Hashibira"),
        ('{"messages": [{"role": "narrator", "content": "Hi"}, {"role": "assistant", "content": "HAH!"}]}',
         "messages[0].role: expected system, user or assistant, got 'narrator'"),
        ('{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "HAH!"}]}',
         "messages[0].content: missing or empty"),
        ('{"messages": [{"role": "user", "content": "Hi", "name": ""}, {"role": "assistant", "content": "HAH!"}]}',
         "messages[0].name: must be non-empty text when given"),
    ],
)
def test_chat_format_rows_are_checked_too(tmp_path, persona, line, message):
    problems, path = problems_of(tmp_path, persona, "logs.jsonl", line + "\n")
    assert len(problems) == 1 and problems[0].startswith(f"{path}:1: ") and message in problems[0], problems


def test_a_chat_format_row_keeps_its_labels(tmp_path, persona):
    from core.prompt import Turn, chat_messages

    row = {"messages": [{"role": "user", "content": "Race you!", "name": "Tanjiro"},
                        {"role": "user", "content": "Me too!", "name": "Zenitsu"},
                        {"role": "assistant", "content": "HAH! Both of you, then!"}]}
    path = tmp_path / "logs.jsonl"
    path.write_text(json.dumps(row) + "\n")
    [record], problems, _ = load_records([path], persona, None, None)
    assert not problems
    assert record.messages == chat_messages(persona, [Turn("Race you!", speaker="Tanjiro"), Turn("Me too!", speaker="Zenitsu"),
                                                      Turn("HAH! Both of you, then!", by_persona=True)])
    assert record.messages[1]["content"] == "Tanjiro: Race you!\nZenitsu: Me too!"
