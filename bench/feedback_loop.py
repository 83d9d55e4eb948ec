"""The whole feedback loop, scripted, on the embedded model (CPU):

1. a running bot (the real runtime: migrated database, batching worker, adapter follower) serves
   the adapter in service and talks with scripted users in three channels;
2. the community rates replies (👍/👎, /rate scores, moderator approvals and a rejection) through
   the same store the Discord buttons and commands write to; one user runs /forget-me and keeps
   talking;
3. `trainer retrain --dry-run`, then `trainer retrain`: curated data + approved logs -> candidate
   -> evaluation against the adapter in service -> gate -> promotion;
4. the running bot switches to the promoted adapter without a restart and stores the new version
   with its next reply; `trainer rollback` returns to the previous one.

Prints sample counts, gate metrics and adapter versions. Runs in a scratch state folder
(state/loop-scenario, or --state), so your own bot database and registry are not touched.

  .venv/bin/python bench/feedback_loop.py [--steps 80] [--eval-limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path


SCRIPT = {  # channel -> (user id, display name, line)
    1: [(11, "Tanjiro", "Inosuke! Let's train at the waterfall today."), (12, "Zenitsu", "Can we please not fight a bear?"),
        (11, "Tanjiro", "What do you want for dinner?"), (12, "Zenitsu", "Why are you always shouting?")],
    2: [(13, "Kanao", "I brought you some tempura."), (13, "Kanao", "Do you want to race to the top of the hill?"),
        (13, "Kanao", "Who is the strongest Hashira?")],
    3: [(14, "Aoi", "Sit still, I need to change your bandages."), (15, "Genya", "Out of my way, boar head."),
        (14, "Aoi", "Did you eat your vegetables?")],
}
FORGETS = 15  # Genya runs /forget-me after talking, then talks again
MODERATOR = 99


async def converse(runtime, rounds: list[tuple[int, int, str, str]]) -> list[int]:
    replies = []
    for channel, user, name, line in rounds:
        reply = await runtime.pipeline.respond(channel, user, name, line)
        replies.append(reply.message_id)
        print(f"  [#{channel}] {name}: {line}\n  [#{channel}] Inosuke ({runtime.adapter_version or 'base'}): {reply.text}")
    return replies


async def community_and_bot(settings, serving, steps: int, eval_limit: int | None) -> None:
    from bot.service.adapter_follower import AdapterFollower
    from core.db.ratings import THUMB_DOWN, THUMB_UP, Ratings
    from bot.service.runtime import start_runtime
    from core.serving_pointer import in_service

    runtime = await start_runtime(settings, in_service())
    follower = AdapterFollower(runtime, serving)
    watching = asyncio.create_task(follower.run())
    ratings = Ratings(runtime.history.sessions)
    try:
        print(f"\n== 1. The bot talks (adapter in service: {runtime.adapter_version or 'none'})")
        rounds = [(c, u, n, t) for c, lines in SCRIPT.items() for (u, n, t) in lines]
        replies = await converse(runtime, rounds)
        print("\n== 2. The community rates")
        rated = 0
        for index, reply in enumerate(replies):
            if reply is None:
                continue
            if index % 3 == 0:  # two 👍: qualifies by the rating rule
                for user in (11, 12):
                    await ratings.rate(reply, user, THUMB_UP, via="button")
            elif index % 3 == 1:  # a moderator approves
                await ratings.rate(reply, 13, 4, comment="sounds like him", via="command")
                await ratings.decide(reply, MODERATOR, approved=True)
            else:  # disliked and rejected
                await ratings.rate(reply, 11, THUMB_DOWN, via="button")
                await ratings.decide(reply, MODERATOR, approved=False)
            rated += 1
        deleted = await ratings.forget_user(FORGETS)
        print(f"  {rated} replies rated or moderated; Genya ran /forget-me ({deleted[0]} message(s) deleted) and keeps talking")
        more = await converse(runtime, [(3, FORGETS, "Genya", "I'm still here, you know."), (3, 14, "Aoi", "Be nice to Genya.")])
        await ratings.decide(more[1], MODERATOR, approved=True)  # its context holds Genya's line: dropped from the sample

        print("\n== 3. Retraining, as a separate process (dry run, then for real)")
        before = runtime.adapter_version
        await trainer_process(["retrain", "--dry-run"], steps, eval_limit)
        await trainer_process(["retrain"], steps, eval_limit)
        run = await last_run(runtime)
        print_run(run)
        print("\n== 4. The running bot follows")
        if run.status == "promoted":
            async with asyncio.timeout(120):
                while runtime.adapter_version != run.candidate_version:
                    await asyncio.sleep(0.2)
        after = await converse(runtime, [(1, 11, "Tanjiro", "Did you get stronger?")])
        stored = await stored_version(runtime, after[0])
        print(f"\nadapter in service: {before or 'none'} -> {runtime.adapter_version or 'none'} "
              f"(swapped without a restart: {follower.swaps}); the next reply was stored with version {stored}")
        if run.status == "promoted" and before is not None:
            from core.serving_pointer import rollback

            print("\n== 5. Rollback")
            print("  trainer rollback: %s -> %s" % rollback())
            async with asyncio.timeout(120):
                while runtime.adapter_version != before:
                    await asyncio.sleep(0.2)
            print(f"  the bot serves {runtime.adapter_version} again")
    finally:
        watching.cancel()
        await runtime.close()


async def stored_version(runtime, message_id: int | None) -> str | None:
    from core.db.schema import Message

    async with runtime.history.sessions() as session:
        message = await session.get(Message, message_id) if message_id else None
        return message.adapter_version if message else None


async def trainer_process(command: list[str], steps: int, eval_limit: int | None) -> None:
    """`python -m trainer ...` in its own process, as cron or an operator would run it."""
    overrides = ["--set", f"profile_overrides=[max_steps={steps}]"]
    if eval_limit:
        overrides += ["--set", f"eval_limit={eval_limit}"]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "trainer", *command, *overrides,
                                                   cwd=Path(__file__).resolve().parents[1])
    code = await process.wait()
    print(f"  [python -m trainer {' '.join(command)}: exit {code} after {time.perf_counter() - started:.0f}s]")


async def last_run(runtime):
    from sqlalchemy import select

    from core.db.schema import TrainingRun

    async with runtime.history.sessions() as session:
        return await session.scalar(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(1))


def print_run(run) -> None:
    print(f"\nrun #{run.id}: {run.status}: {run.reason}")
    print(f"  samples: curated {run.curated_samples}, approved chat logs {run.approved_samples}, "
          f"preference labels {run.preference_labels}")
    print(f"  adapters: candidate {run.candidate_version}, in service before {run.previous_version or 'none (base model)'}")
    if run.metrics:
        candidate, current = run.metrics["candidate"], run.metrics["current"]
        print(f"  {'gate metric':<18}{'candidate':>10}{'current':>10}")
        for name in candidate:
            print(f"  {name:<18}{candidate[name]:>10.3f}{current[name]:>10.3f}")
        print(f"  report: {run.metrics['report']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, default=Path(__file__).resolve().parents[1] / "state" / "loop-scenario")
    parser.add_argument("--steps", type=int, default=80, help="training steps of the candidate (the profile's 80 by default)")
    parser.add_argument("--eval-limit", type=int, default=None, help="held-out items per part (default: all)")
    parser.add_argument("--start-from", type=Path, default=None, help="an adapter folder to put in service first (default: none)")
    args = parser.parse_args()
    shutil.rmtree(args.state, ignore_errors=True)
    os.environ["INOSUKE_STATE_DIR"] = str(args.state)
    os.environ.pop("INOSUKE_DATABASE_URL", None)

    from bot.service.adapter_follower import ServingSettings
    from core.cli import quiet_libraries
    from core.settings import BotSettings

    quiet_libraries()
    if args.start_from:
        import json

        from core.serving_pointer import promote

        target = args.state / "adapters" / "v0001"
        shutil.copytree(args.start_from, target)
        manifest = json.loads((target / "manifest.json").read_text())
        (target / "manifest.json").write_text(json.dumps({**manifest, "version": "v0001"}))
        promote(target, reason="scenario start")
    settings = BotSettings(decoding=dataclasses.replace(BotSettings().decoding, max_new_tokens=48))
    started = time.perf_counter()
    asyncio.run(community_and_bot(settings, ServingSettings(poll_s=0.5), args.steps, args.eval_limit))
    print(f"\nscenario finished in {time.perf_counter() - started:.0f}s (state: {args.state})")


if __name__ == "__main__":
    main()
