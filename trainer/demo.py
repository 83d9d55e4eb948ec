"""`make demo` / `python -m trainer demo`: the main job on the embedded default model, on CPU,
with no token and no download: build the dataset from data/ (statistics table and chart), then
load the model in 4-bit NF4 and let Inosuke answer a few questions in persona."""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from bot.model_resolver import EMBEDDED_SPEC
from bot.paths import DATA_DIR, DEFAULT_CARD, state_dir

DEMO_QUESTIONS = [
    "Who are you?",
    "What's your favorite food?",
    "What is the capital of France?",
]


def run_demo(console: Console | None = None) -> None:
    from bot.generate import generate_replies
    from bot.model_resolver import load_model, load_tokenizer
    from bot.persona import load_card
    from bot.prompt import Turn, chat_messages
    from trainer.data_command import run_build

    console = console or Console()
    started = time.perf_counter()
    console.rule("1. Dataset")
    build_args = argparse.Namespace(
        data=DATA_DIR, card=DEFAULT_CARD, out=state_dir() / "dataset", model=EMBEDDED_SPEC,
        max_tokens=None, eval_fraction=0.05, seed=0, rejects=None,
    )
    run_build(build_args, console)

    console.rule(f"2. {EMBEDDED_SPEC} in 4-bit NF4, answering in persona (untuned base model)")
    card = load_card(DEFAULT_CARD)
    loading = time.perf_counter()
    tokenizer = load_tokenizer(EMBEDDED_SPEC)
    model = load_model(EMBEDDED_SPEC, "nf4")
    console.print(f"loaded in {time.perf_counter() - loading:.1f}s "
                  f"({model.get_memory_footprint() / 2**20:.0f} MiB of weights)")
    answering = time.perf_counter()
    conversations = [chat_messages(card, [Turn(question)]) for question in DEMO_QUESTIONS]
    replies = generate_replies(model, tokenizer, conversations, max_new_tokens=80)
    for question, reply in zip(DEMO_QUESTIONS, replies):
        console.print(f"[bold]You:[/] {question}", highlight=False)
        # markup=False: the model's text may contain [brackets] that rich would eat.
        console.print(f"{card.aliases[-1]}: {reply}\n", highlight=False, markup=False)
    console.print(f"{len(DEMO_QUESTIONS)} answers in one batch in {time.perf_counter() - answering:.1f}s")
    console.rule(f"demo finished in {time.perf_counter() - started:.1f}s")
