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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    from bot.adapter_follower import AdapterFollower
    from bot.ratings import THUMB_DOWN, THUMB_UP, Ratings
    from bot.runtime import start_runtime
    from bot.serving import in_service

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

        print("\n== 3. Retraining (dry run, then for real)")
        before = runtime.adapter_version
        await asyncio.to_thread(retrain, steps, eval_limit, True)
        outcome = await asyncio.to_thread(retrain, steps, eval_limit, False)
        print("\n== 4. The running bot follows")
        if outcome.status == "promoted":
            async with asyncio.timeout(120):
                while runtime.adapter_version != outcome.candidate.name:
                    await asyncio.sleep(0.2)
        after = await converse(runtime, [(1, 11, "Tanjiro", "Did you get stronger?")])
        stored = await stored_version(runtime, after[0])
        print(f"\nadapter in service: {before or 'none'} -> {runtime.adapter_version or 'none'} "
              f"(swapped without a restart: {follower.swaps}); the next reply was stored with version {stored}")
        if outcome.status == "promoted" and before is not None:
            from bot.serving import rollback

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
    from bot.db.schema import Message

    async with runtime.history.sessions() as session:
        message = await session.get(Message, message_id) if message_id else None
        return message.adapter_version if message else None


def retrain(steps: int, eval_limit: int | None, dry_run: bool):
    from trainer.eval_command import load_eval_settings
    from trainer.retrain import load_retrain_settings, run_retrain

    settings = dataclasses.replace(load_retrain_settings(), profile_overrides=[f"max_steps={steps}"], eval_limit=eval_limit)
    started = time.perf_counter()
    outcome = run_retrain(settings, load_eval_settings(), dry_run=dry_run)
    if not dry_run:
        print(f"\nretrain: {outcome.status} ({outcome.reason}) in {time.perf_counter() - started:.0f}s; "
              f"samples: curated {outcome.curated}, approved chat logs {len(outcome.export.samples)}, "
              f"preference labels {len(outcome.export.preferences)}, rejected {outcome.export.rejected}, "
              f"dropped (answered an opted-out user) {outcome.export.excluded_opted_out}; "
              f"candidate {outcome.candidate.name if outcome.candidate else None} vs {outcome.previous or 'base'}")
    return outcome


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

    from bot.adapter_follower import ServingSettings
    from bot.cli import quiet_libraries
    from bot.settings import BotSettings, EngineSettings

    quiet_libraries()
    if args.start_from:
        import json

        from bot.serving import promote

        target = args.state / "adapters" / "v0001"
        shutil.copytree(args.start_from, target)
        manifest = json.loads((target / "manifest.json").read_text())
        (target / "manifest.json").write_text(json.dumps({**manifest, "version": "v0001"}))
        promote(target, reason="scenario start")
    settings = BotSettings(engine=dataclasses.replace(EngineSettings(), max_new_tokens=48))
    started = time.perf_counter()
    asyncio.run(community_and_bot(settings, ServingSettings(poll_s=0.5), args.steps, args.eval_limit))
    print(f"\nscenario finished in {time.perf_counter() - started:.0f}s (state: {args.state})")


if __name__ == "__main__":
    main()
