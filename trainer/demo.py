"""`make demo` / `python -m trainer demo`: the main job on the embedded default model, on CPU,
with no token and no download:
1. build the dataset from data/ (statistics table, composition chart);
2. QLoRA-train an adapter with the smollm2-cpu profile (eval loss before and after);
3. ask the untuned base model and the new adapter the same questions, side by side;
4. the persona evaluation on the fixed held-out set (evals/): the adapter against the untuned
   base, with the retraining gate's verdict and a report (`python -m trainer eval`);
5. a scripted multi-turn conversation through the bot's console mode (database, context window,
   batching worker) with the new adapter.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from rich.console import Console

from bot.model_resolver import EMBEDDED_SPEC
from bot.paths import DATA_DIR, DEFAULT_CARD, state_dir

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
    from bot.adapters import load_adapted_model, read_adapter
    from bot.generate import generate, reply_text
    from bot.model_resolver import load_model, load_tokenizer
    from bot.persona import load_card
    from bot.prompt import Turn, generation_prompt
    from trainer.data_command import run_build
    from trainer.train_command import run_train

    console = console or Console()
    started = time.perf_counter()
    console.rule("1. Dataset")
    run_build(argparse.Namespace(data=DATA_DIR, card=DEFAULT_CARD, out=state_dir() / "dataset", model=EMBEDDED_SPEC,
                                 max_tokens=None, eval_fraction=0.05, seed=0, rejects=None), console)

    console.rule(f"2. QLoRA training, profile {DEMO_PROFILE} ({EMBEDDED_SPEC} in 4-bit NF4, CPU)")
    outcome = run_train(argparse.Namespace(profile=DEMO_PROFILE, overrides=[], resume=None, show_masks=False, runs=None, registry=None))
    if outcome.interrupted:
        console.print("demo interrupted; `python -m trainer train --resume` finishes the training")
        return
    training = outcome.manifest["training"]

    console.rule("3. The same questions: untuned base model vs the new adapter")
    card = load_card(DEFAULT_CARD)
    tokenizer = load_tokenizer(EMBEDDED_SPEC)
    prompts = [generation_prompt(tokenizer, card, [Turn(q)]) for q in DEMO_QUESTIONS]
    base = generate(load_model(EMBEDDED_SPEC, "nf4"), tokenizer, prompts, MAX_NEW_TOKENS)
    adapted = generate(load_adapted_model(read_adapter(outcome.adapter)), tokenizer, prompts, MAX_NEW_TOKENS)
    name = card.aliases[-1]
    for question, before, after in zip(DEMO_QUESTIONS, base, adapted):
        console.print(f"You: {question}", highlight=False, markup=False)
        for label, answer in (("base   ", before), (outcome.adapter.name + "  ", after)):
            stop = "end of turn" if answer.ended else "hit the token limit"
            # markup=False: the model's text may contain [brackets] that rich would eat.
            console.print(f"  {label} {name}: {reply_text(answer.text, card)}  [{answer.new_tokens} tokens, {stop}]",
                          highlight=False, markup=False)
    console.rule(f"4. Persona evaluation on the held-out set: {outcome.adapter.name} vs the untuned base")
    from trainer.eval_command import compare, print_comparison

    evaluation = compare(str(outcome.adapter), "base")
    print_comparison(evaluation, console)

    console.rule(f"5. A conversation through the bot's console mode (adapter {outcome.adapter.name})")
    asyncio.run(console_conversation(outcome.adapter))

    console.rule("Summary")
    console.print(f"eval loss on held-out conversations: {training['eval_loss_before']:.3f} (base) -> "
                  f"{training['best_eval_loss']:.3f} (adapter {outcome.adapter.name}, best step {training['best_step']})")
    console.print(f"replies ending at end of turn: base {sum(a.ended for a in base)}/{len(base)}, "
                  f"adapter {sum(a.ended for a in adapted)}/{len(adapted)}")
    a, b = evaluation.a, evaluation.b
    console.print(f"held-out evaluation, adapter vs base: style score {a['style_score']:.3f} vs {b['style_score']:.3f}; "
                  f"failure rate {a['failure_rate']:.1%} vs {b['failure_rate']:.1%}; generic QA {a['qa_accuracy']:.0%} vs "
                  f"{b['qa_accuracy']:.0%}; multi-turn {a['multi_turn_score']:.0%} vs {b['multi_turn_score']:.0%} "
                  f"(report: {evaluation.report})", highlight=False)
    console.print(f"adapter: {outcome.adapter} (training_curve.png, manifest.json); "
                  f"dataset chart: {state_dir() / 'dataset' / 'composition.png'}")
    console.print(f"try it: .venv/bin/python -m trainer chat --adapter {outcome.adapter}")
    console.rule(f"demo finished in {time.perf_counter() - started:.0f}s")


async def console_conversation(adapter) -> None:
    """The bot's own runtime (database migrated to head, batching worker, context window) in a
    fresh console channel, so every demo starts the conversation anew."""
    from bot.console import CONSOLE_CHANNEL, converse
    from bot.runtime import start_runtime

    import dataclasses

    from bot.settings import BotSettings, EngineSettings

    settings = BotSettings(card=str(DEFAULT_CARD), engine=dataclasses.replace(EngineSettings(), max_new_tokens=MAX_NEW_TOKENS))
    runtime = await start_runtime(settings, adapter)
    try:
        await runtime.history.reset(CONSOLE_CHANNEL)
        await converse(runtime, CONVERSATION)
    finally:
        await runtime.close()
