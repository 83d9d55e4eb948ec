from bot.discord_front.message_split import split_message
from bot.discord_front.rate_limit import RateLimiter


def test_a_2500_character_reply_splits_at_a_sentence_boundary():
    sentence = "Lord Inosuke never loses a fight! "
    text = sentence * 74  # ~2,500 characters, no line breaks
    chunks = split_message(text)
    assert len(text) > 2000 and len(chunks) == 2
    assert all(len(c) <= 2000 for c in chunks)
    assert chunks[0].endswith("fight!") and chunks[1].startswith("Lord")
    assert " ".join(chunks) == text.strip()


def test_paragraphs_and_lines_are_preferred_and_giant_words_still_split():
    paragraph = ("TEMPURA " * 150).strip()  # ~1,200 characters
    chunks = split_message(paragraph + "\n\n" + paragraph)
    assert chunks == [paragraph, paragraph]
    word = "A" * 4500
    assert [len(c) for c in split_message(word)] == [2000, 2000, 500]
    assert split_message("short") == ["short"]


def test_rate_limit_is_per_user_and_slides():
    now = [0.0]
    limiter = RateLimiter(messages=2, seconds=10, clock=lambda: now[0])
    assert limiter.allow(1) and limiter.allow(1) and not limiter.allow(1)
    assert limiter.allow(2)  # someone else is not affected
    now[0] = 10.0
    assert limiter.allow(1)  # the first two have left the window
