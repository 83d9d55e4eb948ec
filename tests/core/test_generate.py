import json

import pytest

from core.generate import reply_text
from core import registry


def test_reply_text_drops_own_label_and_cuts_invented_speakers(persona):
    assert reply_text("Inosuke: HAH! Fight me!", persona) == "HAH! Fight me!"
    assert reply_text("Tempura!\nMore tempura!\nYou: ok\nInosuke: again", persona) == "Tempura!\nMore tempura!"
    assert reply_text("Monitsu is loud!\nZenitsu: I am NOT!", persona) == "Monitsu is loud!"
    assert reply_text("Rule one: WIN!", persona) == "Rule one: WIN!"  # not a speaker: lowercase word


def test_registry_numbers_versions_and_ignores_half_written_ones(tmp_path):
    first = registry.staging_dir(tmp_path)
    (first / "adapter_model.safetensors").write_bytes(b"x")
    v1 = registry.publish(first, {"base_model": "m"}, tmp_path)
    abandoned = registry.staging_dir(tmp_path)  # a training killed while writing its adapter
    (abandoned / "adapter_model.safetensors").write_bytes(b"half")
    second = registry.staging_dir(tmp_path)
    v2 = registry.publish(second, {"base_model": "m"}, tmp_path)
    assert [p.name for p in registry.versions(tmp_path)] == ["v0001", "v0002"] == [v1.name, v2.name]
    assert json.loads((v2 / "manifest.json").read_text())["version"] == "v0002"
    assert abandoned.exists() and abandoned not in registry.versions(tmp_path)


def test_a_batch_is_padded_while_other_threads_tokenize(tokenizer):
    """The bot tokenizes context windows on other threads while the worker encodes a batch; a
    fast tokenizer's padding setting is shared state, so a batch encoded with padding=True
    sometimes came out unpadded and the generation failed (up to a few in a hundred batches, before the fix; generate() now encodes each prompt alone)."""
    import threading
    import time

    from core.generate import generate
    from tests.fakes import FakeLanguageModel

    model, stop, failures = FakeLanguageModel(tokenizer), threading.Event(), []

    def count_tokens():  # what fit_prompt does, on the pipeline's threads
        while not stop.is_set():
            tokenizer("a short turn", add_special_tokens=False)
            time.sleep(0.0005)  # as the pipeline does between turns; a tight loop starves this thread of the GIL

    threads = [threading.Thread(target=count_tokens) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(400):  # the race hit a few batches in a hundred
            try:
                [short, long] = generate(model, tokenizer, ["hi", "hello " * 40], 32)
                assert short.text == long.text == model.reply
            except Exception as exc:
                failures.append(exc)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []


@pytest.mark.parametrize("scope", ["reply", "context"])
def test_rows_chosen_together_get_the_tokens_their_own_processors_give_alone(scope):
    """The decoder runs each decoding group's processors once over a padded batch; every row must
    still get what its settings give it alone: the repetition penalty over its own tokens only
    (its reply's in the reply scope, its prompt's too in the context scope; rows of different
    lengths, so the padding is exercised), its own seed's draw. The reference is transformers'
    own penalty with `prompt_ignore_length`, on the row's whole sequence."""
    from types import SimpleNamespace

    import torch
    from transformers import RepetitionPenaltyLogitsProcessor

    from core.decoding import Decoding
    from core.generate import BatchDecoder, RowRequest

    class Tokens:  # the decoder reads these three; nothing here needs a real vocabulary
        eos_token_id, pad_token_id = 0, 0

        def decode(self, ids, skip_special_tokens=True):
            return " ".join(map(str, ids))

    vocab, generator = 64, torch.Generator().manual_seed(0)
    greedy = Decoding(repetition_penalty=1.8, repetition_scope=scope)
    sampled = Decoding(temperature=0.9, top_p=0.9, min_p=0.05, repetition_scope=scope)
    # Each row: its prompt, then the reply tokens chosen so far (none for the fourth).
    rows_ids = [([5, 6], [7]), (list(range(1, 30)), list(range(30, 40))), ([9] * 3, [11, 12]), ([3], []),
                ([30, 31], [32, 33] + [30, 31, 32, 33] * 3), ([40, 41, 42], [43])]
    decodings = [sampled, greedy, greedy, sampled, greedy, greedy]
    for trial in range(40):
        # Each row's likeliest token (2.5) is one it holds (the last, or for the last row the
        # first of its prompt), so where the penalty (1.8) counts it, it drops below an outsider
        # (2.0): a token another row holds, or the end-of-turn. Padding that penalised a token
        # would flip a choice.
        logits = torch.randn(len(rows_ids), vocab, generator=generator) * 0.3
        for i, (prompt, reply) in enumerate(rows_ids):
            ids = prompt + reply
            outsiders = sorted(({0, vocab - 1} | {t for p, r in rows_ids for t in p + r}) - set(ids))
            favourite = ids[0] if i == len(rows_ids) - 1 else ids[-1]
            logits[i, favourite], logits[i, outsiders[trial % len(outsiders)]] = 2.5, 2.0
        decoder = BatchDecoder(SimpleNamespace(device=torch.device("cpu")), Tokens())
        rows = [decoder._new_row(RowRequest(i, prompt, 99, d, seed=100 * trial + i))
                for i, ((prompt, _), d) in enumerate(zip(rows_ids, decodings))]
        for row, (_, reply) in zip(rows, rows_ids):
            row.ids += reply  # as if decoded so far
        decoder._choose_all(rows, logits.clone())
        for i, ((prompt, reply), d) in enumerate(zip(rows_ids, decodings)):
            reference = d.logits_processors()
            ignored = len(prompt) if scope == "reply" else 0
            reference[0] = RepetitionPenaltyLogitsProcessor(d.repetition_penalty, prompt_ignore_length=ignored)
            scores = reference(torch.tensor([prompt + reply]), logits[i:i + 1].clone())
            if d.sampling:
                draw = torch.Generator().manual_seed(100 * trial + i)
                expected = int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=draw))
            else:
                expected = int(scores.argmax())
            assert rows[i].ids[-1] == expected, (trial, i)
            if not d.sampling and i == len(rows_ids) - 1:
                # the prompt's own token: free to say again in the reply scope, not in the context scope
                assert (expected == prompt[0]) == (scope == "reply"), (trial, expected)


def test_rows_joining_and_leaving_at_different_steps_decode_as_they_would_alone():
    """The running cache is rebuilt when rows join (padded to a common width) and leave (their
    columns dropped): every row must still get exactly the tokens it gets decoded alone. A tiny
    random Llama (no weights to load), greedy, with the card cache and the conversation cache."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.decoding import Decoding
    from core.generate import BatchDecoder, RowRequest

    class Tokens:
        eos_token_id, pad_token_id = 0, 0

        def decode(self, ids, skip_special_tokens=True):
            return " ".join(map(str, ids))

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1, eos_token_id=0, pad_token_id=0)
    model = LlamaForCausalLM(config).eval()
    greedy = Decoding(repetition_penalty=1.3)
    card = list(range(10, 30))  # a shared prefix long enough to be cached (MIN_PREFIX_TOKENS)
    gen = torch.Generator().manual_seed(1)
    prompts = [card + torch.randint(2, 96, (n,), generator=gen).tolist() for n in (3, 17, 8, 30, 5, 12)]
    budgets = [9, 25, 4, 14, 30, 7]  # rows leave at different steps

    def alone(i):
        decoder = BatchDecoder(model, Tokens())
        done, failed = decoder.join([RowRequest(i, prompts[i], budgets[i], greedy, None, 0)])
        while len(decoder):
            done += decoder.step()
        return dict(done)[i].text

    expected = [alone(i) for i in range(len(prompts))]
    decoder = BatchDecoder(model, Tokens(), history_tokens=4096)
    requests = [RowRequest(i, p, b, greedy, None, len(card)) for i, (p, b) in enumerate(zip(prompts, budgets))]
    done, failed = decoder.join(requests[:2])
    for joining in ([requests[2]], requests[3:5], [requests[5]]):
        for _ in range(3):
            done += decoder.step()
        more, failed_more = decoder.join(joining)
        done, failed = done + more, failed + failed_more
    while len(decoder):
        done += decoder.step()
    assert not failed and decoder.stats.prefix_hits == 6
    got = dict(done)
    assert [got[i].text for i in range(len(prompts))] == expected
    # The next message of a channel continues from its cached exchange, and decodes the same too.
    follow = prompts[1] + [int(t) for t in got[1].text.split()] + [40, 41, 42]
    decoder.join([RowRequest("next", follow, 10, greedy, None, len(card))])
    again = []
    while len(decoder):
        again += decoder.step()
    assert decoder.stats.history_hits == 1
    prompts.append(follow)
    budgets.append(10)
    assert dict(again)["next"].text == alone(len(prompts) - 1)


def test_generate_with_a_row_limit_runs_at_most_that_many_and_gives_each_prompt_its_lone_reply(monkeypatch):
    """generate(max_rows=k), as the evaluation uses it: the prompts beyond k wait and join as rows
    end (one ends at its first token, others after 4 to 20 steps), never more than k rows run
    at once, and every reply is the one its prompt gets generated alone. A tiny random Llama
    whose end-of-turn token (5) this seed makes rows emit at different steps."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    import core.generate as generation
    from core.decoding import Decoding

    class Tokens:
        eos_token_id = pad_token_id = 5

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [int(t) for t in text.split()]}

        def decode(self, ids, skip_special_tokens=True):
            return " ".join(map(str, ids))

    largest = []

    class Watched(generation.BatchDecoder):
        def step(self):
            largest.append(len(self.rows))
            return super().step()

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1, eos_token_id=0, pad_token_id=0)
    model = LlamaForCausalLM(config).eval()
    card = list(range(10, 30))
    gen = torch.Generator().manual_seed(1)
    prompts = [" ".join(map(str, card + torch.randint(2, 96, (n,), generator=gen).tolist())) for n in (3, 17, 8, 30, 5, 12, 9)]
    greedy = Decoding(repetition_penalty=1.3, repetition_scope="context")  # the lengths below are this seed's with it

    alone = [generation.generate(model, Tokens(), [p], 24, greedy)[0] for p in prompts]
    assert sorted(g.new_tokens for g in alone) == [1, 4, 6, 8, 12, 19, 20] and all(g.ended for g in alone)
    monkeypatch.setattr(generation, "BatchDecoder", Watched)
    limited = generation.generate(model, Tokens(), prompts, 24, greedy, max_rows=2)
    assert limited == alone
    # Each row's first token comes from its prefill, the rest from steps: two rows at a time take
    # fewer steps than one at a time would (the sum of new_tokens - 1).
    one_at_a_time = sum(g.new_tokens - 1 for g in alone)
    assert max(largest) == 2 and sum(largest) == one_at_a_time and len(largest) < one_at_a_time
    with pytest.raises(ValueError, match="max_rows must be at least 1"):
        generation.generate(model, Tokens(), prompts, 24, greedy, max_rows=0)


def test_every_tensor_the_decoder_hands_the_model_is_on_the_model_s_device():
    """On a GPU, a CPU tensor among the model's inputs is an error ("Expected all tensors to be on
    the same device"): the persona card's shared prefill must build its inputs on the model's
    device, as the rows' own prefill does. No GPU here, so the model is a stand-in on torch's
    meta device that records where each input is (what it returns does not matter: it stops
    at the second prefill)."""
    from types import SimpleNamespace

    import torch

    from core.generate import BatchDecoder, RowRequest

    calls = []

    class ModelElsewhere:
        device = torch.device("meta")

        def __call__(self, *, past_key_values, **inputs):
            calls.append({name: value.device.type for name, value in inputs.items() if isinstance(value, torch.Tensor)})
            if len(calls) > 1:
                raise RuntimeError("the stand-in model stops here")
            length = inputs["input_ids"].shape[1]
            for layer in range(2):
                states = torch.empty(1, 2, length, 8, device="meta")
                past_key_values.update(states, states, layer)
            return SimpleNamespace(logits=torch.empty(1, 1, 50, device="meta"))

    decoder = BatchDecoder(ModelElsewhere(), SimpleNamespace(eos_token_id=2, pad_token_id=2))
    card_then_message = list(range(10, 40))
    finished, failed = decoder.join([RowRequest("channel", card_then_message, 8, prefix_len=20)])
    assert [str(f.cause) for f in failed] == ["the stand-in model stops here"]  # reached the rows' prefill
    assert len(calls) == 2 and decoder.stats.prefix_builds == 1  # the card's prefill, then the row's
    for call in calls:
        assert call == {name: "meta" for name in ("input_ids", "attention_mask", "position_ids")}
