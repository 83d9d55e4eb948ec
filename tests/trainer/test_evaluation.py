"""Persona evaluation: each metric on hand-made inputs whose right answer is known, the gate's
decisions, the held-out set kept out of training, and a real comparison (trained adapter vs
base): report with its charts, same numbers on a second run."""

from __future__ import annotations

import json

import pytest

from core.errors import UserError
from core.paths import DATA_DIR
from trainer.dataset.pipeline import load_records, source_files
from trainer.evaluation.evaluate import EvalSettings, answered_right
from trainer.evaluation.failures import check, has_assistant_speak, has_invented_speaker, is_repetition_loop
from trainer.evaluation.gate import GateSettings, decide
from trainer.evaluation.heldout import load_heldout

REFERENCE = "TEMPURA?! Give it here! All of it!"


@pytest.fixture(scope="module")
def scorer():
    from trainer.evaluation.style import StyleScorer

    return StyleScorer()


@pytest.fixture(scope="module")
def heldout(persona):
    return load_heldout(persona)


def test_assistant_speak_is_caught_and_the_persona_voice_is_not(persona):
    assert has_assistant_speak("As an AI language model, I don't have a favorite food. Let me know if you need anything!")
    assert has_assistant_speak("I'm here to help! How can I assist you today?")
    assert not has_assistant_speak("HAH! Lord Inosuke eats everything! Tempura is the best!")
    assert check("I'm sorry, but I can't help with that.", True, persona).assistant_speak


def test_an_invented_next_speaker_line_is_caught(persona):
    assert has_invented_speaker("Fight me!\nYou: No thanks.", persona)
    assert has_invented_speaker("Sure.\nUser: what next", persona)
    assert has_invented_speaker("HAH!\nZenitsu: Please stop yelling.", persona)
    assert not has_invented_speaker("Inosuke: Fight me! I'm the strongest!", persona)  # his own label is fine
    assert not has_invented_speaker("Rule one: never lose. Rule two: eat tempura!", persona)  # not at a line start


def test_loops_non_stopping_and_empty_replies_are_caught(persona):
    assert is_repetition_loop("I'm a giant! I'm a giant! I'm a giant! I'm a giant!")
    assert not is_repetition_loop("I'm a giant! Bigger than a bear! Stronger than a mountain!")
    assert check("Fight me and then", False, persona).never_stops
    assert check("Inosuke:", True, persona).empty and check("  ", True, persona).any
    assert not check("Fight me!", True, persona).any


def test_the_exact_reference_scores_highest_and_assistant_text_lowest(scorer, heldout):
    candidates = [REFERENCE, "Tempura! Mine! All mine, HAH!",
                  "Thank you! I'd be happy to try some tempura. Let me know if you need anything else.",
                  "As an AI language model, I don't eat food, but tempura is a Japanese dish."]
    similarity = scorer.similarity(candidates, [REFERENCE] * len(candidates))
    assistant = scorer.assistant_likeness(candidates, heldout.assistant_lines)
    style = [s - a for s, a in zip(similarity, assistant)]
    assert similarity[0] == pytest.approx(1.0, abs=1e-4)
    assert style == sorted(style, reverse=True), style
    assert scorer.similarity([""], [REFERENCE]) == [0.0]


def test_generic_answers_are_checked_as_whole_words():
    assert answered_right("It's 64! Easy!", ("64", "sixty-four"))
    assert not answered_right("640 boars!", ("64",))
    assert answered_right("Berlin, the city of sausages!", ("Berlin",))
    assert not answered_right("twenty-seven", ("seven",))
    # The answer must come up front, not turn up by chance in a ramble.
    assert not answered_right("In one year, 12 years * 30 = 408 months. So 1 day is 72 weeks. 1 year is 365 days.", ("365",))
    assert not answered_right("12 * 7 = 64", ("64", "sixty-four"))  # a numeric answer must stand alone
    assert answered_right("64! Eight eights! Easy!", ("64", "sixty-four"))


def test_the_gate_promotes_only_a_candidate_better_and_no_worse():
    current = {"eval_loss": 3.4, "style_score": 0.20, "failure_rate": 0.20, "qa_accuracy": 0.60, "multi_turn_score": 0.5}
    better = dict(current, style_score=0.25, failure_rate=0.10)
    assert decide(better, current, GateSettings()).passed
    forgot_facts = dict(better, qa_accuracy=0.45)
    decision = decide(forgot_facts, current, GateSettings())
    assert not decision.passed and "generic QA" in decision.reasons[0]
    same = decide(dict(current), current, GateSettings())
    assert not same.passed and "no better" in same.reasons[0]
    assert not decide(better, current, GateSettings(min_style_gain=0.1)).passed  # thresholds come from config


def test_a_nan_threshold_or_metric_never_switches_a_gate_check_off(tmp_path):
    from trainer.evaluation.compare import load_eval_settings

    for override in ("gate.max_qa_drop=nan", "gate.max_multi_turn_drop=.inf", "gate.min_style_gain=-inf"):
        with pytest.raises(UserError) as error:
            load_eval_settings(tmp_path / "eval.yaml", [override])
        key = override.split("=")[0]
        assert str(error.value).startswith(f"{tmp_path / 'eval.yaml'}: {key}: expected a finite number, got ")
    config = tmp_path / "eval.yaml"
    config.write_text("gate:\n  max_qa_drop: .nan\n")
    with pytest.raises(UserError, match=r"eval.yaml: gate.max_qa_drop: expected a finite number, got nan"):
        load_eval_settings(config)

    current = {"eval_loss": 3.0, "style_score": 0.20, "failure_rate": 0.0, "qa_accuracy": 0.60, "multi_turn_score": 0.5}
    diverged = dict(current, eval_loss=float("nan"), style_score=0.21)  # a diverged run: its loss is NaN
    decision = decide(diverged, current, GateSettings())
    assert not decision.passed and decision.reasons[0] == "eval_loss nan is not a finite number"


def test_eval_of_a_missing_or_damaged_adapter_is_a_one_line_error(tmp_path, capsys):
    from core.cli import run
    from trainer.__main__ import main

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "adapter_config.json").write_text("{}")
    (damaged / "manifest.json").write_text('{"version": "v0001",\n')  # truncated
    for adapter, says in ((tmp_path / "nowhere", f"error: {tmp_path / 'nowhere'}: not a PEFT adapter folder"),
                          (damaged, f"error: {damaged / 'manifest.json'}: unreadable manifest")):
        assert run(main, ["eval", "--adapter", str(adapter)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(says) and err.count("\n") == 1, err


def heldout_copy(tmp_path):
    """A held-out folder: a copy of evals/, to damage one file of."""
    import shutil

    from trainer.evaluation.heldout import EVALS_DIR

    return shutil.copytree(EVALS_DIR, tmp_path / "heldout")


def test_a_missing_or_undecodable_heldout_file_is_a_one_line_error(tmp_path, persona):
    folder = heldout_copy(tmp_path)
    (folder / "persona.jsonl").unlink()
    with pytest.raises(UserError, match=r"heldout/persona.jsonl: missing from the held-out folder"):
        load_heldout(persona, folder)
    folder = heldout_copy(tmp_path / "2")
    (folder / "character.json").write_bytes('{"name": "Inosuke Hashibira", "note": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(UserError, match=r"heldout/character.json: not UTF-8 text \(invalid continuation byte"):
        load_heldout(persona, folder)
    folder = heldout_copy(tmp_path / "3")
    (folder / "assistant_lines.txt").unlink()
    with pytest.raises(UserError, match=r"heldout/assistant_lines.txt: missing from the held-out folder"):
        load_heldout(persona, folder)


@pytest.mark.parametrize("answers", ['"Paris"', "[]", '[""]', '["Paris", 3]', "null"])
def test_generic_answers_must_be_a_list_of_words(tmp_path, persona, answers):
    """A bare string would be split into letters, and "I" in any reply would count as the answer."""
    folder = heldout_copy(tmp_path)
    qa = folder / "generic_qa.jsonl"
    qa.write_text(qa.read_text() + '{"question": "What is the capital of France?", "answers": ' + answers + "}\n")
    line = len(qa.read_text().splitlines())
    with pytest.raises(UserError) as error:
        load_heldout(persona, folder)
    assert str(error.value) == f"{qa}:{line}: answers: expected a non-empty list of non-empty strings, such as [\"Paris\"]"


def test_the_heldout_set_never_enters_training(persona, heldout):
    records, problems, _ = load_records(source_files(DATA_DIR), persona, None, None)
    assert not problems
    trained = {r.output.removeprefix("Inosuke: ") for r in records} | {r.instruction for r in records}
    trained |= {line.split(": ", 1)[-1] for r in records for line in r.input.splitlines()}
    leaked = heldout.texts() & trained
    assert not leaked, leaked


def test_adapter_against_base_report_and_determinism(trained_adapter, tmp_path):
    from dataclasses import replace

    from core.persona import load_card
    from trainer.evaluation.compare import card_of, compare, evaluate_side, heldout_for
    from trainer.evaluation.style import StyleScorer

    # 24 tokens, a reply's opening, as the retrain test uses: the untuned base rambles to the limit
    # in every pass, so the limit sets the cost. 8 items of each part: with the penalty over the
    # reply alone the base's style on 4 persona prompts came out above the adapter's (0.221 vs
    # 0.200, serving); on 8, serving: loss 3.89 vs 4.64, style 0.224 vs 0.115, failures 20% vs
    # 80%; greedy style 0.159 vs 0.070 (the comparison took 85 s against 73 s with 4).
    settings = EvalSettings(max_new_tokens=24)
    first = compare(str(trained_adapter.adapter), "base", settings=settings, limit=8, out=tmp_path / "one")
    # The adapter evaluated again, in the gate's (sampled) decoding alone: every number and every
    # reply comes out the same (the base side goes through the same code).
    card = load_card(card_of(trained_adapter.adapter))
    again = evaluate_side(str(trained_adapter.adapter), None, card, heldout_for(trained_adapter.adapter, card, None).limited(8),
                          StyleScorer(), replace(settings, also_report=False))

    report = (tmp_path / "one" / "report.md").read_text()
    for chart in ("metrics.png", "failures.png", "style.png"):
        assert (tmp_path / "one" / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({chart})" in report
    assert "## Side by side" in report and "## Multi-turn consistency" in report and "Gate:" in report
    assert "### By decoding" in report and set(first.a["by_decoding"]) == {"serving", "greedy"}
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())["a"]
    two = json.loads(json.dumps(again))  # as the report stores it
    drop = ("by_decoding", "settings")
    assert {k: v for k, v in one.items() if k not in drop} == {k: v for k, v in two.items() if k not in drop}
    assert one["by_decoding"]["serving"] == two["by_decoding"]["serving"]

    a, b = first.a, first.b
    assert (a["label"], b["label"]) == (trained_adapter.adapter.name, "base")
    assert len(a["persona"]) == len(a["qa"]) == 8 and all(len(s["turns"]) == 3 for s in a["scripts"])
    # What fine-tuning bought, even after 24 steps: lower held-out loss, more persona-like, fewer failures.
    assert a["eval_loss"] < b["eval_loss"] - 0.3
    assert a["style_score"] > b["style_score"]
    assert a["failure_rate"] <= b["failure_rate"]


def test_every_reply_is_scored_against_its_own_prompt_and_independent_prompts_share_one_stream(
        monkeypatch, persona, heldout, tokenizer):
    """The evaluation generates the persona prompts, the questions and each script's first turn in
    one stream (rows join as others end: a step costs far less than one per row),
    then each later turn; every reply must still land on the prompt that produced it. A stand-in
    for the model answers each prompt with a digest of it."""
    import hashlib

    import trainer.evaluation.evaluate as evaluation
    from core.decoding import GREEDY
    from core.generate import Generation
    from core.prompt import Turn, generation_prompt

    def answer(prompt: str) -> str:
        return "Heard " + hashlib.sha256(prompt.encode()).hexdigest()[:12] + "!"

    streams = []

    def stand_in(model, tokenizer_, prompts, max_new_tokens, decoding, max_rows=None):
        streams.append((len(prompts), max_rows))
        return [Generation(answer(p), 4, True) for p in prompts]

    class Unscored:
        def similarity(self, replies, references):
            return [0.0] * len(replies)

        assistant_likeness = similarity

    monkeypatch.setattr(evaluation, "generate", stand_in)
    held = heldout.limited(3)
    assert held.scripts and all(len(s.turns) == 3 for s in held.scripts)
    metrics = evaluation.generated_metrics(None, tokenizer, persona, "chat", held, Unscored(), EvalSettings(), GREEDY)

    def prompt(turns):
        return generation_prompt(tokenizer, persona, turns)

    assert [row["reply"] for row in metrics["persona"]] == [answer(prompt(i.context)) for i in held.persona]
    assert [row["reply"] for row in metrics["qa"]] == [answer(prompt([Turn(q.question)])) for q in held.qa]
    for script, scored in zip(held.scripts, metrics["scripts"]):
        history = []
        for turn, row in zip(script.turns, scored["turns"], strict=True):
            history.append(Turn(turn.say))
            assert row["reply"] == answer(prompt(history)), (script.name, turn.say)
            history.append(Turn(row["reply"], by_persona=True))
    # One stream for everything that needs no earlier reply, then one per later turn.
    assert streams == [(len(held.persona) + len(held.qa) + len(held.scripts), 64), (len(held.scripts), 64), (len(held.scripts), 64)]


def test_evaluation_measures_the_serving_decoding_with_fixed_seeds_beside_greedy(monkeypatch, tmp_path):
    """The gate measures what users see: config/bot.yaml's sampled decoding with seeds fixed by
    config/eval.yaml, and greedy beside it; eval.yaml can make the gate read greedy instead. With
    an engine backend the repetition penalty counts the whole context there, and so here."""
    from dataclasses import replace

    from trainer.evaluation.compare import load_eval_settings
    from trainer.evaluation.evaluate import decodings

    settings = load_eval_settings()
    chosen = decodings(settings)
    assert list(chosen) == ["serving", "greedy"] and settings.gate_decoding == "serving"
    assert chosen["serving"].sampling and chosen["serving"].seed == settings.seed
    assert chosen["serving"].seed_for("Hi!") == decodings(settings)["serving"].seed_for("Hi!")  # fixed, run after run
    assert not chosen["greedy"].sampling and chosen["greedy"].repetition_penalty == chosen["serving"].repetition_penalty
    assert list(decodings(replace(settings, gate_decoding="greedy", also_report=False))) == ["greedy"]
    assert {d.repetition_scope for d in chosen.values()} == {"reply"}  # the local backend's, as shipped
    engine_config = tmp_path / "bot.yaml"
    engine_config.write_text("backend: llama-server\n")
    monkeypatch.setattr("core.settings.DEFAULT_CONFIG", engine_config)
    assert {d.repetition_scope for d in decodings(settings).values()} == {"context"}
    with pytest.raises(UserError, match="gate_decoding: 'beam' is not one of"):
        load_eval_settings(overrides=["gate_decoding=beam"])
    for key, value, message in (("batch_size", "0", "must be at least 1, got 0"), ("batch_size", "-3", "must be at least 1, got -3"),
                                ("max_new_tokens", "0", "must be at least 1, got 0")):
        with pytest.raises(UserError, match=f"eval.yaml: {key}: {message}"):
            load_eval_settings(overrides=[f"{key}={value}"])


def test_the_retraining_gate_evaluates_in_the_decoding_of_the_bot_it_serves(monkeypatch, tmp_path):
    """`retrain --bot-config` names the bot the candidate will serve: the gate measures that bot's
    decoding as its backend applies it (an engine counts the whole context), not config/bot.yaml's."""
    from pathlib import Path

    from rich.console import Console

    import trainer.evaluation.compare as comparing
    from trainer.retrain import RetrainSettings, evaluate_candidate

    seen = []
    monkeypatch.setattr(comparing, "compare", lambda adapter, against, **kw: seen.append(kw["serving"]))
    monkeypatch.setattr(comparing, "print_comparison", lambda comparison, console: None)
    engine_bot = tmp_path / "bot.yaml"
    engine_bot.write_text("backend: openai\ndecoding:\n  temperature: 0.5\n")
    for bot_config in (engine_bot, None):
        extra = {"bot_config": bot_config} if bot_config else {}
        evaluate_candidate(Path("v0002"), None, EvalSettings(), RetrainSettings(), tmp_path, Console(quiet=True), **extra)
    assert (seen[0].temperature, seen[0].repetition_scope) == (0.5, "context")
    assert (seen[1].temperature, seen[1].repetition_scope) == (0.8, "reply")  # config/bot.yaml, the local backend
