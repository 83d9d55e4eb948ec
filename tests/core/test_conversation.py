"""The console transcript (`python -m trainer chat`, `python -m bot --console`): each turn starts
at the margin with its speaker, whatever the reply contains."""

import asyncio

from core.conversation import repl, transcript_turn


def test_a_reply_that_spans_lines_stays_under_its_speaker():
    assert transcript_turn("Inosuke", "Fight me!") == "Inosuke: Fight me!"
    assert transcript_turn("Inosuke", "Fight me!\nYou: no\n\nnow") == (
        "Inosuke: Fight me!\n         You: no\n         \n         now")
    assert transcript_turn("Inosuke", "") == "Inosuke: "


def test_the_console_loop_prints_one_marginal_line_per_turn(capsys):
    async def say(line: str) -> str:
        return f"{line.upper()}!\nYou: I give up"

    async def reset() -> None:
        pass

    asyncio.run(repl(["hi\n", "/reset\n", "fight\n", "/quit\n", "never\n"], say, reset, "Inosuke", echo_user="You"))
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if not line.startswith(" ")] == [
        "You: hi", "Inosuke: HI!", "(conversation forgotten)", "You: fight", "Inosuke: FIGHT!"]
