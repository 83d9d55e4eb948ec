"""Swipe alternatives on a real database migrated by Alembic (revision 0006): storing and showing
alternatives, picks by 👍 / 👎 / the conversation going on, privacy (edits withdraw picks,
/forget-me deletes alternatives that could quote the user), and the revision's downgrade."""

import asyncio

import pytest

from core.db.database import connect, downgrade, upgrade
from core.db.history import History
from core.db.privacy import Privacy
from core.db.ratings import THUMB_UP, Ratings
from core.db.swipes import Shown, Swipes

pytestmark = pytest.mark.each_database


def run(url, body):
    async def main():
        async with connect(url) as sessions:
            return await body(History(sessions), Swipes(sessions), sessions)

    return asyncio.run(main())


async def exchange(history, channel=10, user=7, text="Who are you?", discord_id=501):
    asked = await history.add(channel, user, "Kanao", text, discord_id=discord_id)
    reply = await history.add(channel, 0, "Inosuke", "LORD INOSUKE!", by_bot=True, adapter_version="v0001", answers_id=asked)
    await history.mark_sent(reply, discord_id + 1)
    return asked, reply


def picks(db_rows, reply):
    return db_rows(f"select position, shown, chosen, picked_by from reply_alternatives where reply_id = {reply} order by position")


def test_a_swipe_shows_a_new_alternative_and_keeps_the_others(db_url, db_rows):
    async def body(history, swipes, sessions):
        asked, reply = await exchange(history)
        await Ratings(sessions).rate(reply, 8, THUMB_UP, via="button")
        assert await swipes.alternatives(reply) == []
        assert await swipes.is_newest(reply, 10)
        first = await swipes.add(reply, "HAH! I'm the King of the Mountains!", seed=11, adapter_version="v0002")
        second = await swipes.add(reply, "Who wants to know?!", seed=12, adapter_version="v0002")
        back = [await swipes.show_next(reply) for _ in range(3)]
        context = await history.context(10, reply)
        return reply, first, second, back, context

    reply, first, second, back, context = run(db_url, body)
    assert first == Shown("HAH! I'm the King of the Mountains!", 1, 2) and second == Shown("Who wants to know?!", 2, 3)
    assert [(s.position, s.count) for s in back] == [(0, 3), (1, 3), (2, 3)]  # round, nothing generated
    assert db_rows(f"select content, adapter_version from messages where id = {reply}") == [("Who wants to know?!", "v0002")]
    assert context[-1].content == "Who wants to know?!"  # the live context reads the alternative shown
    assert db_rows(f"select position, content, seed, adapter_version from reply_alternatives order by position") == [
        (0, "LORD INOSUKE!", None, "v0001"), (1, "HAH! I'm the King of the Mountains!", 11, "v0002"),
        (2, "Who wants to know?!", 12, "v0002")]
    assert db_rows("select count(*) from ratings") == [(0,)]  # the 👍 was for another text


def test_thumbs_and_the_conversation_going_on_pick_alternatives(db_url, db_rows):
    async def body(history, swipes, sessions):
        _, liked = await exchange(history)
        assert await swipes.pick(liked, 7) is False  # never swiped: nothing to choose between
        await swipes.add(liked, "Second try!", seed=1, adapter_version="v0001")
        await swipes.add(liked, "Third try!", seed=2, adapter_version="v0001")
        await swipes.show_next(liked)  # back to the original
        await swipes.show_next(liked)  # "Second try!"
        assert await swipes.pick(liked, 7) is True

        _, kept = await exchange(history, discord_id=601)
        await swipes.add(kept, "Kept one!", seed=3, adapter_version="v0001")
        assert not await swipes.is_newest(liked, 10)
        later = await history.add(10, 8, "Zenitsu", "And then?", discord_id=701)
        assert await swipes.kept(10, later, 8) is True
        assert await swipes.kept(10, later, 8) is False  # once

        _, disliked = await exchange(history, discord_id=801)
        await swipes.add(disliked, "Bad one.", seed=4, adapter_version="v0001")
        assert await swipes.reject(disliked, 9) is True
        after = await history.add(10, 9, "Kanao", "Hm.", discord_id=901)
        assert await swipes.kept(10, after, 9) is False  # going on after a 👎 does not pick the rejected one
        return liked, kept, disliked

    liked, kept, disliked = run(db_url, body)
    assert picks(db_rows, liked) == [(0, False, False, 7), (1, True, True, 7), (2, False, False, 7)]
    assert picks(db_rows, kept) == [(0, False, False, 8), (1, True, True, 8)]
    assert picks(db_rows, disliked) == [(0, False, None, None), (1, True, False, 9)]


def test_edits_withdraw_picks_and_forget_me_deletes_alternatives(db_url, db_rows):
    async def body(history, swipes, sessions):
        _, theirs = await exchange(history, user=7, text="My secret is wisteria.")
        await swipes.add(theirs, "Your secret is wisteria!", seed=1, adapter_version="v0001")
        _, others = await exchange(history, user=8, text="Nice.", discord_id=601)
        await swipes.add(others, "Wisteria, wisteria!", seed=2, adapter_version="v0001")  # quotes user 7 from context
        await swipes.pick(others, 8)
        _, unrelated = await exchange(history, channel=11, user=8, text="Hi.", discord_id=701)
        await swipes.add(unrelated, "HAH!", seed=3, adapter_version="v0001")
        await swipes.pick(unrelated, 7)  # user 7 picked in another channel
        privacy = Privacy(sessions)
        withdrawn = await privacy.message_edited(601, "Nice!!")
        gone = await privacy.forget_user(7)
        return theirs, others, unrelated, withdrawn, gone

    theirs, others, unrelated, withdrawn, gone = run(db_url, body)
    assert withdrawn.endorsements == 2  # the pick on `others` (chosen and rejected alternatives)
    assert (gone.alternatives, gone.picks) == (4, 2)
    assert db_rows("select count(*) from reply_alternatives where content like '%isteria%'") == [(0,)]
    assert db_rows(f"select count(*) from reply_alternatives where reply_id in ({theirs}, {others})") == [(0,)]
    assert picks(db_rows, unrelated) == [(0, False, None, None), (1, True, None, None)]


def test_revision_0006_downgrades_and_upgrades(db_url, db_rows, table_names):
    async def body(history, swipes, sessions):
        _, reply = await exchange(history)
        await swipes.add(reply, "Another!", seed=1, adapter_version="v0001")

    run(db_url, body)
    downgrade(db_url, "0005")
    assert "reply_alternatives" not in table_names(db_url)
    assert db_rows("select content from messages where by_bot") == [("Another!",)]  # the one shown stays
    upgrade(db_url)
    assert db_rows("select count(*) from reply_alternatives") == [(0,)]
