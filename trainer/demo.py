"""`make demo` / `python -m trainer demo`: the main job on the embedded default model, on CPU,
with no token and no download:
1. build the dataset from data/ (statistics table, composition chart, data-quality report);
2. QLoRA-train an adapter with the smollm2-cpu profile (eval loss before and after);
3. ask the untuned base model and the new adapter the same questions, side by side;
4. the persona evaluation on the fixed held-out set (evals/): the adapter against the untuned
   base in the gate's decoding, with the retraining gate's verdict and a report (`python -m
   trainer eval --adapter latest` adds the other decoding);
5. a scripted multi-turn conversation through the bot's console mode (database, context window,
   batching worker) with the new adapter.
"""

from __future__ import annotations

import time

from rich.console import Console

from core.model_resolver import EMBEDDED_SPEC
from core.paths import DATA_DIR, DEFAULT_CARD, state_dir

DEMO_PROFILE = "smollm2-cpu"
DEMO_QUESTIONS = [
    "Who are you?",
    "What's your favorite food?",
    "Do you like trains?",
    "What is the capital of France?",
]
MAX_NEW_TOKENS = 80
CONVERSATION = [
    "Hey Inosuke! I brought you some tempura.",
    "It's all yours. What will you do after eating?",
    "Can I come train with you?",
    "Thanks, you're a good friend.",
]


def run_demo(console: Console | None = None) -> None:
    from core.generate import generate, reply_text
    from core.persona import load_card
    from core.prompt import Turn, generation_prompt
    from core.served_model import load_served
    from trainer.dataset.build import build, load_quality_settings
    from trainer.train import train

    console = console or Console()
    started = time.perf_counter()
    console.rule("1. Dataset")
    build(DATA_DIR, DEFAULT_CARD, state_dir() / "dataset", model=EMBEDDED_SPEC, quality=load_quality_settings(), console=console)

    console.rule(f"2. QLoRA training, profile {DEMO_PROFILE} ({EMBEDDED_SPEC} in 4-bit NF4, CPU)")
    outcome = train(DEMO_PROFILE)
    if outcome.interrupted:
        console.print("demo interrupted; `python -m trainer train --resume` finishes the training")
        return
    training = outcome.manifest["training"]

    console.rule("3. The same questions: untuned base model vs the new adapter")
    card = load_card(DEFAULT_CARD)
    answers = []
    for served in (load_served(None, base=EMBEDDED_SPEC), load_served(outcome.adapter)):  # the base, then the adapter
        prompts = [generation_prompt(served.tokenizer, card, [Turn(q)], served.prompt_format) for q in DEMO_QUESTIONS]
        answers.append(generate(served.model, served.tokenizer, prompts, MAX_NEW_TOKENS))
        del served
    base, adapted = answers
    name = card.aliases[-1]
    for question, before, after in zip(DEMO_QUESTIONS, base, adapted):
        console.print(f"You: {question}", highlight=False, markup=False)
        for label, answer in (("base   ", before), (outcome.adapter.name + "  ", after)):
            stop = "end of turn" if answer.ended else "hit the token limit"
            # markup=False: the model's text may contain [brackets] that rich would eat.
            console.print(f"  {label} {name}: {reply_text(answer.text, card)}  [{answer.new_tokens} tokens, {stop}]",
                          highlight=False, markup=False)
    console.rule(f"4. Persona evaluation on the held-out set: {outcome.adapter.name} vs the untuned base")
    from dataclasses import replace

    from trainer.evaluation.compare import compare, load_eval_settings, print_comparison

    # The gate's decoding only (what the bot serves and the gate reads): the other one doubles the
    # generation time and would take the demo past 10 minutes; `trainer eval` reports both.
    evaluation = compare(str(outcome.adapter), "base", settings=replace(load_eval_settings(), also_report=False))
    print_comparison(evaluation, console)

    console.rule(f"5. A conversation through the bot's console mode (adapter {outcome.adapter.name})")
    console_conversation(outcome.adapter)

    console.rule("Summary")
    console.print(f"eval loss on held-out conversations: {training['eval_loss_before']:.3f} (base) -> "
                  f"{training['best_eval_loss']:.3f} (adapter {outcome.adapter.name}, best step {training['best_step']})")
    console.print(f"replies ending at end of turn: base {sum(a.ended for a in base)}/{len(base)}, "
                  f"adapter {sum(a.ended for a in adapted)}/{len(adapted)}")
    a, b = evaluation.a, evaluation.b
    console.print(f"held-out evaluation, adapter vs base, {a['gate_decoding']} decoding (both decodings: "
                  f"`python -m trainer eval --adapter latest`): style score {a['style_score']:.3f} vs {b['style_score']:.3f}; "
                  f"failure rate {a['failure_rate']:.1%} vs {b['failure_rate']:.1%}; generic QA {a['qa_accuracy']:.0%} vs "
                  f"{b['qa_accuracy']:.0%}; multi-turn {a['multi_turn_score']:.0%} vs {b['multi_turn_score']:.0%} "
                  f"(report: {evaluation.report})", highlight=False)
    console.print(f"adapter: {outcome.adapter} (training_curve.png, manifest.json); "
                  f"dataset chart: {state_dir() / 'dataset' / 'composition.png'}")
    console.print(f"try it: .venv/bin/python -m trainer chat --adapter {outcome.adapter}")
    console.rule(f"demo finished in {time.perf_counter() - started:.0f}s")


def console_conversation(adapter) -> None:
    """The bot's own console mode (`python -m bot --console`: database migrated to head, batching
    worker, context window), run as a user runs it, in its own process: the trainer never imports
    the bot's service. The conversation starts with /reset so every demo starts anew."""
    import subprocess
    import sys

    lines = ["/reset", *CONVERSATION]
    command = [sys.executable, "-m", "bot", "--console", "--adapter", str(adapter), "--max-new-tokens", str(MAX_NEW_TOKENS)]
    subprocess.run(command + [arg for line in lines for arg in ("--say", line)], check=True)
