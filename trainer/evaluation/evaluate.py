"""Evaluate one model (base, or base + adapter) on the held-out set, with the same prompt builder
as the bot, in two decodings: the serving decoding users get (config/bot.yaml `decoding:`,
sampled, with seeds fixed by `seed` and each prompt, so two runs of the same adapter give the
same numbers) and greedy (the likeliest reply, the old measure). `gate_decoding` in
config/eval.yaml says which of the two the top-level metrics, and so the retraining gate, use;
both are reported side by side."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar, Literal

from core.decoding import Decoding

from core.generate import Generation, generate, reply_text
from core.persona import PersonaCard
from core.prompt import PromptFormat, Turn, generation_prompt, transcript
from trainer.evaluation.failures import FAILURE_KINDS, check
from trainer.evaluation.gate import GateSettings
from trainer.evaluation.heldout import HeldOut
from trainer.evaluation.loss import heldout_loss
from trainer.evaluation.style import StyleScorer


@dataclass(frozen=True)
class EvalSettings:
    max_new_tokens: int = 96  # longest reply generated per prompt
    batch_size: int = 64  # replies generated at once at most (rows join as others end); see config/eval.yaml
    seed: int = 0
    turn_style_min: float = 0.3  # a multi-turn turn passes with this style margin, no failure, expected words
    gate_decoding: Literal["serving", "greedy"] = "serving"  # the decoding whose metrics the gate compares
    also_report: bool = True  # evaluate the other decoding too and report it beside (doubles generation time)
    gate: GateSettings = field(default_factory=GateSettings)

    # batch_size 0 or below generated nothing (or crashed) deep in the evaluation: a clear error instead.
    RANGES: ClassVar[dict] = {"max_new_tokens": (1, 4096), "batch_size": (1, None)}


ANSWER_SENTENCES = 2


def answered_right(reply: str, answers: tuple[str, ...]) -> bool:
    """An accepted answer, as a whole word ("64" counts in "It's 64!", not in "640"), within the
    reply's first two sentences: a reply that rambles on until some right word turns up by
    chance ("1 day is 72 weeks ... 1 year is 365 days") has not answered. A numeric answer must
    be the only number there: "12 * 7 = 64" does not answer "What is 8 times 8?"."""
    opening = " ".join(re.split(r"(?<=[.!?])\s+|\n+", reply.strip())[:ANSWER_SENTENCES])
    if not any(re.search(rf"(?<![\w-]){re.escape(a)}(?![\w-])", opening, re.IGNORECASE) for a in answers):
        return False
    numeric = {a for a in answers if a.isdigit()}
    return not numeric or set(re.findall(r"\d+", opening)) <= numeric


def _generate_all(model, tokenizer, prompts: list[str], settings: EvalSettings, decoding: Decoding) -> list[Generation]:
    return generate(model, tokenizer, prompts, settings.max_new_tokens, decoding, max_rows=settings.batch_size)


def decodings(settings: EvalSettings, serving: Decoding | None = None) -> dict[str, Decoding]:
    """The decodings evaluated, the gate's first: "serving" is the bot's (config/bot.yaml) with its
    seeds fixed by settings.seed (each prompt's seed derives from it and the prompt); "greedy"
    is the same with temperature 0."""
    if serving is None:
        from core.settings import load_settings

        serving = load_settings().served_decoding  # as the configured backend applies it
    serving = replace(serving, seed=settings.seed, max_new_tokens=settings.max_new_tokens)
    both = {"serving": serving, "greedy": replace(serving, temperature=0.0, seed=None)}
    order = [settings.gate_decoding] + ([n for n in both if n != settings.gate_decoding] if settings.also_report else [])
    return {name: both[name] for name in order}


def score_replies(raw: list[Generation], references: list[str], card: PersonaCard, scorer: StyleScorer,
                  assistant_lines: list[str]) -> list[dict]:
    replies = [reply_text(g.text, card) for g in raw]
    similarity = scorer.similarity(replies, references)
    assistant = scorer.assistant_likeness(replies, assistant_lines)
    rows = []
    for g, reply, sim, asst in zip(raw, replies, similarity, assistant):
        failures = check(g.text, g.ended, card)
        rows.append({"reply": reply, "raw": g.text, "tokens": g.new_tokens, "ended": g.ended,
                     "reference_similarity": sim, "assistant_likeness": asst, "style": sim - asst,
                     "failures": {k: getattr(failures, k) for k in FAILURE_KINDS}, "failed": failures.any})
    return rows


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def evaluate_model(label: str, model, tokenizer, card: PersonaCard, prompt_format: PromptFormat, heldout: HeldOut,
                   scorer: StyleScorer, settings: EvalSettings = EvalSettings(), serving: Decoding | None = None) -> dict:
    """Every metric for one model, with the per-item rows the report shows: the top level in the
    gate's decoding, and `by_decoding` the headline metrics of each decoding evaluated."""
    from transformers import set_seed

    set_seed(settings.seed)  # sampling draws from per-request generators seeded from settings.seed; this covers the rest

    loss, perplexity, loss_tokens = heldout_loss(model, tokenizer, [i.sample for i in heldout.persona], prompt_format)
    chosen = decodings(settings, serving)
    results = {name: generated_metrics(model, tokenizer, card, prompt_format, heldout, scorer, settings, decoding)
               for name, decoding in chosen.items()}
    main = results[settings.gate_decoding]
    by_decoding = {name: {k: results[name][k] for k in HEADLINE} | {"decoding": asdict(d)} for name, d in chosen.items()}
    return {"label": label, "eval_loss": loss, "perplexity": perplexity, "loss_tokens": loss_tokens, **main,
            "gate_decoding": settings.gate_decoding, "by_decoding": by_decoding, "settings": asdict(settings)}


HEADLINE = ("style_score", "failure_rate", "qa_accuracy", "multi_turn_score")


def generated_metrics(model, tokenizer, card: PersonaCard, prompt_format: PromptFormat, heldout: HeldOut, scorer: StyleScorer,
                      settings: EvalSettings, decoding: Decoding) -> dict:
    """The metrics that depend on generated replies, in one decoding."""

    def prompt(turns: list[Turn]) -> str:
        return generation_prompt(tokenizer, card, turns, prompt_format)

    def generate_all(prompts):
        return _generate_all(model, tokenizer, prompts, settings, decoding)

    # Every prompt that depends on no generated reply goes in one stream: the persona prompts,
    # the questions and each script's first turn (later turns need the reply before them).
    first_turns = [[Turn(s.turns[0].say)] for s in heldout.scripts if s.turns]
    independent = [i.context for i in heldout.persona] + [[Turn(q.question)] for q in heldout.qa] + first_turns
    generated_first = generate_all([prompt(turns) for turns in independent])
    raw = generated_first[:len(heldout.persona)]
    qa_raw = generated_first[len(heldout.persona):len(heldout.persona) + len(heldout.qa)]
    first_replies = generated_first[len(heldout.persona) + len(heldout.qa):]  # step 0's active scripts, in order
    persona = score_replies(raw, [i.reference for i in heldout.persona], card, scorer, heldout.assistant_lines)
    for item, row in zip(heldout.persona, persona):
        row["prompt"] = transcript(card, item.context)
        row["reference"] = item.reference

    qa = [{"question": q.question, "reply": reply_text(g.text, card), "correct": answered_right(reply_text(g.text, card), q.answers)}
          for q, g in zip(heldout.qa, qa_raw)]

    scripts = [{"name": s.name, "turns": []} for s in heldout.scripts]
    histories: list[list[Turn]] = [[] for _ in heldout.scripts]
    for step in range(max((len(s.turns) for s in heldout.scripts), default=0)):
        active = [i for i, s in enumerate(heldout.scripts) if step < len(s.turns)]
        for i in active:
            histories[i].append(Turn(heldout.scripts[i].turns[step].say))
        generated = first_replies if step == 0 else generate_all([prompt(histories[i]) for i in active])
        rows = score_replies(generated, [heldout.scripts[i].turns[step].reference for i in active], card, scorer,
                             heldout.assistant_lines)
        for i, row in zip(active, rows):
            turn = heldout.scripts[i].turns[step]
            row["say"], row["expect"] = turn.say, list(turn.expect)
            row["expect_met"] = all(re.search(re.escape(w), row["reply"], re.IGNORECASE) for w in turn.expect)
            row["passed"] = row["expect_met"] and not row["failed"] and row["style"] >= settings.turn_style_min
            scripts[i]["turns"].append(row)
            histories[i].append(Turn(row["reply"] or "...", by_persona=True))  # his own words, as the bot feeds them back
    turns = [t for s in scripts for t in s["turns"]]
    if not heldout.scripts:
        # No scripted conversations for this character: its multi-turn samples (context given, real
        # reply as reference) pass the same way a scripted turn does.
        for item, row in zip(heldout.persona, persona):
            if len(item.context) > 1:
                row["passed"] = not row["failed"] and row["style"] >= settings.turn_style_min
        turns_scored = [row for item, row in zip(heldout.persona, persona) if len(item.context) > 1]
    else:
        turns_scored = turns

    return {
        "style_score": mean([r["style"] for r in persona]),
        "reference_similarity": mean([r["reference_similarity"] for r in persona]),
        "assistant_likeness": mean([r["assistant_likeness"] for r in persona]),
        "failure_rate": mean([float(r["failed"]) for r in persona + turns]),
        "failures": {k: mean([float(r["failures"][k]) for r in persona + turns]) for k in FAILURE_KINDS},
        "qa_accuracy": mean([float(r["correct"]) for r in qa]),
        "multi_turn_score": mean([float(t["passed"]) for t in turns_scored]),
        "heldout": heldout.source,
        "multi_turn_style_by_turn": [mean([s["turns"][k]["style"] for s in scripts if k < len(s["turns"])])
                                     for k in range(max((len(s["turns"]) for s in scripts), default=0))],
        "persona": persona, "qa": qa, "scripts": scripts,
    }
