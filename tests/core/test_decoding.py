"""Decoding users enjoy (issue 12, item 3): the settings from config/bot.yaml, checked; replies
sampled per request with their own seed (same seed, same reply; another seed, another reply),
greedy when temperature is 0 and identical to transformers' own generate; the card's keys and
values computed once give the same tokens as computing them for every prompt (issue 15, item 2)."""

from dataclasses import replace

import pytest

from core.decoding import Decoding
from core.errors import UserError
from core.settings import load_settings


def test_bot_yaml_decoding_is_read_checked_and_unknown_keys_refused(tmp_path):
    shipped = load_settings()
    assert shipped.decoding.sampling and shipped.decoding.max_new_tokens == 160
    bad = tmp_path / "bot.yaml"
    bad.write_text("decoding:\n  temperature: 9\n")
    with pytest.raises(UserError, match=r"bot.yaml: decoding.temperature: must be between 0 \(greedy\) and 5, got 9"):
        load_settings(bad)
    bad.write_text("decoding:\n  top_k: 40\n")
    with pytest.raises(UserError, match="unknown key 'decoding.top_k'"):
        load_settings(bad)
    bad.write_text("decoding:\n  max_new_tokens: 0\n")
    with pytest.raises(UserError, match="decoding.max_new_tokens: must be between 1 and 4096"):
        load_settings(bad)
    bad.write_text("decoding:\n  repetition_scope: prompt\n")
    with pytest.raises(UserError, match="decoding.repetition_scope: .*'prompt'"):
        load_settings(bad)


def test_the_penalty_counts_the_reply_alone_where_the_backend_can_and_the_whole_context_where_it_cannot(tmp_path):
    """The shipped scope is the reply (the card's and the user's words stay free to use); vLLM and
    llama-server can only count the whole context, so with them the decoding users get, and the
    gate measures, is the context scope."""
    shipped = load_settings()
    assert shipped.decoding.repetition_scope == "reply" and shipped.served_decoding == shipped.decoding
    assert shipped.decoding.penalty_ignores(120) == 120 and replace(shipped.decoding, repetition_scope="context").penalty_ignores(120) == 0
    for backend in ("openai", "llama-server"):
        config = tmp_path / f"{backend}.yaml"
        config.write_text(f"backend: {backend}\n")
        remote = load_settings(config)
        assert remote.served_decoding == replace(remote.decoding, repetition_scope="context")


def test_request_seeds_are_fresh_or_derived_from_the_configured_seed():
    fixed = Decoding(temperature=0.8, seed=3)
    assert fixed.seed_for("hi") == fixed.seed_for("hi") != fixed.seed_for("hello")
    assert replace(fixed, seed=4).seed_for("hi") != fixed.seed_for("hi")
    assert Decoding(temperature=0.8).seed_for("hi") != Decoding(temperature=0.8).seed_for("hi")  # variety
    assert Decoding(temperature=0.0).seed_for("hi") is None  # greedy draws nothing


@pytest.mark.model
def test_same_seed_same_reply_other_seeds_other_replies(served, persona):
    from core.generate import BatchDecoder, RowRequest, generate
    from core.prompt import Turn, generation_prompt

    sampling = Decoding(temperature=1.0, top_p=0.95, min_p=0.02, max_new_tokens=20)
    prompt = generation_prompt(served.tokenizer, persona, [Turn("Hi!")])

    def reply(seed):
        decoder = BatchDecoder(served.model, served.tokenizer)
        requests = [RowRequest(i, decoder.tokenize(p), 20, sampling, seed + i) for i, p in enumerate([prompt])]
        finished, failed = decoder.join(requests)
        assert not failed
        while len(decoder):
            finished += decoder.step()
        return dict(finished)[0]

    # The first forward of a process can round differently from every later one (seen here: the
    # first sampled reply after loading differed at its 7th token, every later run agreed), so
    # warm the model up once, as the bot's first request does.
    reply(10)
    first = reply(11)
    assert first.seed == 11 and first.text == reply(11).text
    # Batch-mates are not compared: a batch changes the matrix shapes, NF4 on CPU rounds them
    # differently, and sampling turns a 1e-3 difference in a logit into another token.
    assert len({first.text} | {reply(s).text for s in (12, 13, 14)}) >= 3  # variety, as users expect
    configured = replace(sampling, seed=5)
    assert generate(served.model, served.tokenizer, [prompt], decoding=configured)[0].text == \
        generate(served.model, served.tokenizer, [prompt], decoding=configured)[0].text


@pytest.mark.model
def test_greedy_with_the_cached_card_is_token_identical_to_generate_alone(served, persona):
    """The worker's path (card prefilled once, prompts joining at different steps) against
    transformers' model.generate on each prompt alone, greedy with the repetition penalty."""
    import torch

    from core.generate import BatchDecoder, RowRequest
    from core.prompt import Turn, card_prefix, generation_prompt

    tokenizer, greedy = served.tokenizer, Decoding(max_new_tokens=24)
    lines = ["Who are you?", "What is the capital of France?", "Do you like trains?", "Why the boar mask?"]
    prompts = [generation_prompt(tokenizer, persona, [Turn(q)]) for q in lines]
    expected = []
    for p in prompts:
        ids = tokenizer(p, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = served.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24,
                                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                        **greedy.generate_kwargs(ids.shape[1]))
        expected.append(out[0, ids.shape[1]:].tolist())

    prefix = card_prefix(tokenizer, persona)
    texts = [tokenizer.decode([t for t in tokens if t != tokenizer.eos_token_id], skip_special_tokens=True).strip()
             for tokens in expected]
    for prompt, text in zip(prompts, texts):  # alone from the cached card: token-identical
        alone = BatchDecoder(served.model, tokenizer)
        ids = alone.tokenize(prompt)
        done, failed = alone.join([RowRequest(0, ids, 24, greedy, None, alone.prefix_len(ids, prefix))])
        while len(alone):
            done += alone.step()
        assert not failed and dict(done)[0].text == text

    decoder = BatchDecoder(served.model, tokenizer)
    rows = [RowRequest(i, decoder.tokenize(p), 24, greedy, None, decoder.prefix_len(decoder.tokenize(p), prefix))
            for i, p in enumerate(prompts)]
    assert all(r.prefix_len > 100 for r in rows)
    finished, failed = decoder.join(rows[:2])
    for _ in range(5):  # the others join while the first two are decoding
        finished += decoder.step()
    more, failed_more = decoder.join(rows[2:])
    finished += more
    while len(decoder):
        finished += decoder.step()
    assert not failed and not failed_more
    assert decoder.stats.prefix_builds == 1 and decoder.stats.prefix_hits == 4
    got = dict(finished)
    # Tolerance: the cached card and the padded batch change matrix shapes, and NF4 on CPU rounds
    # them differently, so a near-tie between two tokens (seen: end of turn against " I" after
    # "Paris.") may flip late in a reply. A wrong position, mask or cache garbles a reply from its
    # first tokens, so in a batch each reply must agree for its first 6 tokens (or end there) and
    # half of them in full (measured: 2 of 4; alone, above, all 4 are identical).
    same = 0
    for i, tokens in enumerate(expected):
        mine = tokenizer(got[i].text, add_special_tokens=False)["input_ids"]
        text = tokenizer.decode([t for t in tokens if t != tokenizer.eos_token_id], skip_special_tokens=True).strip()
        theirs = tokenizer(text, add_special_tokens=False)["input_ids"]
        common = next((k for k, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
        assert common >= min(6, len(mine), len(theirs)) and len(mine) >= min(4, len(theirs)), (lines[i], got[i].text, text)
        same += got[i].text == text
    assert same >= 2, [(got[i].text, text) for i, text in enumerate(texts)]


@pytest.mark.model
def test_a_channels_next_message_starts_from_its_cached_exchange(served, persona):
    """A finished reply's keys and values are kept; the channel's next prompt (the exchange so
    far, then a new message) prefills only the new message, and gets the reply a decoder without
    that cache gives it."""
    from core.generate import BatchDecoder, RowRequest
    from core.prompt import Turn, card_prefix, generation_prompt

    tokenizer, greedy = served.tokenizer, Decoding(max_new_tokens=24)
    prefix = card_prefix(tokenizer, persona)

    def run(decoder, prompts):
        rows = [RowRequest(i, decoder.tokenize(p), 24, greedy, None, decoder.prefix_len(decoder.tokenize(p), prefix))
                for i, p in enumerate(prompts)]
        done, failed = decoder.join(rows)
        assert not failed
        while len(decoder):
            done += decoder.step()
        return dict(done)

    firsts = ["Who are you?", "Do you like trains?", "What is the capital of France?"]
    seconds = ["Why?", "Tell me more about that.", "And of Spain?"]
    cached = BatchDecoder(served.model, tokenizer, history_tokens=4096)
    first = run(cached, [generation_prompt(tokenizer, persona, [Turn(q)]) for q in firsts])
    assert len(cached.histories.entries) == 3
    nexts = [generation_prompt(tokenizer, persona, [Turn(q), Turn(first[i].text, by_persona=True), Turn(s)])
             for i, (q, s) in enumerate(zip(firsts, seconds))]
    saved = cached.stats.prefix_tokens_saved
    got = run(cached, nexts)
    assert cached.stats.history_hits == 3
    # Each started after at least its first prompt (card, message, and most of the reply: a
    # reply written back as text may tokenize differently from the tokens chosen).
    first_prompts = sum(len(tokenizer(generation_prompt(tokenizer, persona, [Turn(q)]), add_special_tokens=False)["input_ids"])
                        for q in firsts)
    assert cached.stats.prefix_tokens_saved - saved >= first_prompts
    # The continued conversations replaced the ones they continue: one entry per channel.
    assert len(cached.histories.entries) == 3
    expected = run(BatchDecoder(served.model, tokenizer), nexts)
    # Tolerance as in the card test above: the cached keys were computed one token at a time in
    # a batch, the fresh ones in one prefill, so a near-tie may flip late; a wrong position,
    # mask or cache garbles a reply from its first tokens.
    same = 0
    for i in range(3):
        mine = tokenizer(got[i].text, add_special_tokens=False)["input_ids"]
        theirs = tokenizer(expected[i].text, add_special_tokens=False)["input_ids"]
        common = next((k for k, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
        assert common >= min(6, len(mine), len(theirs)), (seconds[i], got[i].text, expected[i].text)
        same += got[i].text == expected[i].text
    assert same >= 2, [(got[i].text, expected[i].text) for i in range(3)]
