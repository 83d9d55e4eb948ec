"""Generation: continuous batching over one model's KV cache, and the reply cleaned of invented speakers.

A BatchDecoder holds the rows being generated and their keys and values. Requests join between
two decoding steps (their prompts are prefilled, then they decode with the others) and leave as
soon as they end, so a short reply never waits for a long one and a new request never waits for
a batch to finish. Rows of different lengths share one cache: each row's own columns are marked
in an attention mask and its positions are passed explicitly, so a row sees exactly its own
tokens, as if it were generated alone.

A prompt's shared prefix (the persona card: every prompt of a served model starts with it) is
prefilled once and kept: a request that starts with it prefills only what follows. With a
history cache (the bot's worker), each finished reply's keys and values are kept too, so the
channel's next prompt, which begins with that exchange, prefills only the new message. Each row
chooses its tokens with transformers' logits processors and, when sampling, its own
torch.Generator, so its reply depends on its prompt, decoding and seed alone.

Equivalence: a row's logits equal those of `model.generate` on its prompt alone up to float32
rounding (matrix shapes differ with the batch, so sums are taken in another order; measured
below 1e-4 on the embedded model, see tests/core/test_decoding.py). Greedy tokens are the
same unless two candidates are within that rounding of each other.

`generate()` is the one-shot use (evaluation, the console, the demo): every prompt joins at once,
or, with `max_rows`, as soon as a row is free.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from core.decoding import GREEDY, Decoding
from core.persona import PersonaCard
from core.transcript_labels import speaker_line

# A shared prefix shorter than this is not worth a cache entry (the card is ~150 tokens).
MIN_PREFIX_TOKENS = 16


@dataclass(frozen=True)
class Generation:
    text: str
    new_tokens: int
    ended: bool  # the model produced its end-of-turn token (rather than hitting the token limit)
    adapter_version: str | None = None  # set by the engine: the adapter that wrote it
    seed: int | None = None  # the seed it was sampled with (None: greedy)


@dataclass
class RowRequest:
    """One prompt to generate: `tag` is the caller's handle, returned with its Generation."""

    tag: object
    ids: list[int]
    max_new_tokens: int
    decoding: Decoding = GREEDY
    seed: int | None = None  # used when decoding samples
    prefix_len: int = 0  # the first prefix_len tokens are a shared prefix worth caching


class StepFailed(Exception):
    """A forward pass failed; `tags` are the requests it carried (their rows are dropped)."""

    def __init__(self, tags: list, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.tags, self.cause = tags, cause


@dataclass
class DecoderStats:
    """Counts, not a log: a bot that runs for months keeps a few integers."""

    steps: int = 0  # decoding steps (one forward each)
    rows_stepped: int = 0  # sum over steps of the rows in them
    largest: int = 0  # most rows in one step
    requests: int = 0  # requests finished
    prefills: int = 0  # prefill forwards (a group of joining requests)
    prefix_builds: int = 0  # shared prefixes computed
    prefix_hits: int = 0  # requests that started from a cached prefix (the card or a conversation)
    prefix_tokens_saved: int = 0
    history_hits: int = 0  # of those, requests that started from an earlier reply's conversation

    @property
    def mean_rows(self) -> float:
        return self.rows_stepped / self.steps if self.steps else 0.0


@dataclass(eq=False)
class _Row:
    request: RowRequest
    ids: list[int]  # prompt, then the tokens chosen so far
    processors: object
    generator: object | None  # sampling: this row's own torch.Generator
    seed: int | None
    prompt_len: int = 0

    @property
    def new_tokens(self) -> int:
        return len(self.ids) - self.prompt_len


@dataclass
class _Plan:
    """Where one joining request starts: the card's key, or a cached conversation and its length."""

    request: RowRequest
    key: tuple[int, ...]  # the shared card prefix ((): none)
    history: _Prefix | None  # an earlier conversation this prompt continues (None: start from the card)
    length: int  # cached tokens the row starts from

    @property
    def suffix_len(self) -> int:  # tokens to prefill
        return len(self.request.ids) - self.length


@dataclass
class _Prefix:
    ids: tuple[int, ...]
    layers: list[tuple]  # (keys, values) per layer, batch of one


@dataclass
class PrefixCache:
    """The few most recent shared prefixes of one model (normally one: the persona card)."""

    capacity: int = 2
    entries: list[_Prefix] = field(default_factory=list)

    def get(self, ids: tuple[int, ...]) -> _Prefix | None:
        for entry in self.entries:
            if entry.ids == ids:
                self.entries.remove(entry)
                self.entries.insert(0, entry)
                return entry
        return None

    def put(self, entry: _Prefix) -> None:
        self.entries.insert(0, entry)
        del self.entries[self.capacity:]


@dataclass
class HistoryCache:
    """The keys and values of recent conversations: each finished reply's prompt and reply, so
    the same channel's next message (whose prompt begins with them) prefills only what is new.
    Bounded in tokens, not entries (a conversation may fill the whole context window); the least
    recently used go first, and a conversation that a longer one continues is dropped for it."""

    max_tokens: int = 8192
    entries: list[_Prefix] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(len(e.ids) for e in self.entries)

    def longest(self, ids: list[int], limit: int) -> tuple[_Prefix | None, int]:
        """The entry sharing the most leading tokens with `ids` (at most `limit`), and how many."""
        best, best_len = None, 0
        for entry in self.entries:
            n = _common_prefix_len(entry.ids, ids, limit)
            if n > best_len:
                best, best_len = entry, n
        if best is not None:
            self.entries.remove(best)
            self.entries.insert(0, best)
        return best, best_len

    def put(self, entry: _Prefix) -> None:
        if len(entry.ids) > self.max_tokens:
            return
        self.entries = [e for e in self.entries if e.ids != entry.ids[:len(e.ids)]]  # continued by the new one
        self.entries.insert(0, entry)
        while self.tokens > self.max_tokens:
            self.entries.pop()


def _common_prefix_len(a, b, limit: int) -> int:
    n = min(len(a), len(b), limit)
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _growing(cache):
    """`cache` with its layers appending into spare room (see _growing_layer); returns it."""
    from transformers.cache_utils import DynamicLayer

    for layer in cache.layers:
        if type(layer) is DynamicLayer:
            layer.__class__ = _growing_layer()
    return cache


SPARE_COLUMNS = 64  # room made at once: one copy of the cache every 64 steps instead of every step


@functools.cache
def _growing_layer():
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A DynamicLayer that writes each step's keys and values into spare room after the cached
        ones: DynamicLayer concatenates, copying the whole cache of every layer at every step;
        without that copy, eight rows of 330-token prompts decoded 1.06-1.20x faster on 2 CPU
        cores. The decoder replaces `keys`/`values` when rows join or leave; a new room is made
        then."""

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized or self.keys.numel() == 0:
                return super().update(key_states, value_states, *args, **kwargs)
            self.keys = _append(self, "room_keys", self.keys, key_states)
            self.values = _append(self, "room_values", self.values, value_states)
            return self.keys, self.values

    return GrowingLayer


def _append(layer, room_name: str, current, new):
    """`current` with `new` after it along the sequence, written into the layer's room when
    `current` is the start of that room and there is space; else into a new, larger room."""
    room = layer.__dict__.get(room_name)
    used, adding = current.shape[-2], new.shape[-2]
    if (room is None or room.data_ptr() != current.data_ptr() or room.shape[:2] != current.shape[:2]
            or room.stride() != current.stride() or used + adding > room.shape[-2]):
        room = current.new_empty((*current.shape[:2], used + adding + SPARE_COLUMNS, current.shape[-1]))
        room[:, :, :used] = current
        setattr(layer, room_name, room)
    room[:, :, used:used + adding] = new
    return room[:, :, :used + adding]


class BatchDecoder:
    """Continuous batching for one model (see the module docstring). Not thread-safe: one
    thread owns it (the worker's, or the caller of generate())."""

    def __init__(self, model, tokenizer, *, prefix_capacity: int = 2, history_tokens: int = 0):
        self.model, self.tokenizer = model, tokenizer
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self.rows: list[_Row] = []
        self.cache = None  # a transformers DynamicCache, batch dimension = self.rows
        self.mask = None  # [rows, columns]: 1 where a column holds one of the row's tokens
        self.prefixes = PrefixCache(prefix_capacity)
        self.histories = HistoryCache(history_tokens)  # 0 tokens: off (one-shot generate() has no next turn)
        self.stats = DecoderStats()
        self._prefix_ids: dict[str, list[int]] = {}

    # ---------------------------------------------------------------- helpers for callers
    def tokenize(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def prefix_len(self, ids: list[int], prefix: str | None) -> int:
        """How many leading tokens of `ids` are the tokens of `prefix` (0 if they are not)."""
        if not prefix:
            return 0
        head = self._prefix_ids.get(prefix)
        if head is None:
            head = self._prefix_ids[prefix] = self.tokenize(prefix)
            if len(self._prefix_ids) > 8:  # a few cards at most; never grows without bound
                self._prefix_ids.pop(next(iter(self._prefix_ids)))
        return len(head) if ids[:len(head)] == head else 0

    def __len__(self) -> int:
        return len(self.rows)

    def reset(self) -> None:
        """Drop every row (their requests are the caller's to answer)."""
        self.rows, self.cache, self.mask = [], None, None

    # ---------------------------------------------------------------- joining
    def join(self, requests: list[RowRequest]) -> tuple[list[tuple[object, Generation]], list[StepFailed]]:
        """Prefill `requests` and add them to the running rows. Returns the requests that already
        ended (at their first token) and, for each prefill that failed, a StepFailed naming its
        requests (they are not running); the rows already running are untouched either way.

        Each request starts from the longest cached prefix of its prompt: an earlier reply's
        conversation (the same channel's last exchange) or else the shared card, so only what is
        new is prefilled."""
        plans = [self._plan(request) for request in requests]
        finished, failed = [], []
        for group in _prefill_groups(plans):
            try:
                finished += self._join_group(group)
            except Exception as exc:
                failed.append(StepFailed([plan.request.tag for plan in group], exc))
        return finished, failed

    def _plan(self, request: RowRequest) -> _Plan:
        limit = len(request.ids) - 1  # at least one token to prefill
        length = min(request.prefix_len, limit)
        key = tuple(request.ids[:length]) if length >= MIN_PREFIX_TOKENS else ()
        entry, shared = self.histories.longest(request.ids, limit) if self.histories.entries else (None, 0)
        if entry is not None and shared >= MIN_PREFIX_TOKENS and shared > len(key):
            return _Plan(request, key, entry, shared)
        return _Plan(request, key, None, len(key))

    def _prefix(self, key: tuple[int, ...]) -> _Prefix | None:
        if not key:
            return None
        entry = self.prefixes.get(key)
        if entry is None:
            import torch
            from transformers import DynamicCache

            cache = DynamicCache()
            ids = torch.tensor([key], device=self.model.device)
            positions = torch.arange(len(key), device=ids.device)[None]  # on the model's device too: a GPU refuses a mix
            with torch.inference_mode():
                self.model(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=positions,
                           past_key_values=cache, use_cache=True, logits_to_keep=1)
            entry = _Prefix(key, [(layer.keys, layer.values) for layer in cache.layers])
            self.prefixes.put(entry)
            self.stats.prefix_builds += 1
        return entry

    def _join_group(self, plans: list[_Plan]) -> list[tuple[object, Generation]]:
        import torch

        starts = []  # (cached entry, how many of its tokens this row starts from)
        for plan in plans:
            entry = plan.history if plan.history is not None else self._prefix(plan.key)
            starts.append((entry, plan.length if entry is not None else 0))
        n = len(plans)
        cached = max(length for _, length in starts)
        suffixes = [plan.request.ids[length:] for plan, (_, length) in zip(plans, starts)]
        width = max(len(s) for s in suffixes)
        # Columns: [padding][the row's cached prefix][padding][the row's own suffix]; the padding
        # is masked out and positions continue from the prefix, so each row reads exactly as its
        # prompt alone.
        input_ids = torch.full((n, width), self.pad, dtype=torch.long)
        mask = torch.zeros((n, cached + width), dtype=torch.long)
        positions = torch.ones((n, width), dtype=torch.long)
        for i, (suffix, (_, length)) in enumerate(zip(suffixes, starts)):
            pad = width - len(suffix)
            input_ids[i, pad:] = torch.tensor(suffix)
            mask[i, cached - length:cached] = 1
            mask[i, cached + pad:] = 1
            positions[i, pad:] = torch.arange(length, length + len(suffix))
        cache = _cache_from(starts, cached)
        for plan, (_, length) in zip(plans, starts):
            if length:
                self.stats.prefix_hits += 1
                self.stats.prefix_tokens_saved += length
                self.stats.history_hits += plan.history is not None
        device = self.model.device
        with torch.inference_mode():
            out = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                             past_key_values=cache, use_cache=True, logits_to_keep=1)
        self.stats.prefills += 1
        rows = [self._new_row(plan.request) for plan in plans]
        finished, kept = self._choose_all(rows, out.logits[:, -1, :])
        if kept:
            index = torch.tensor(kept)
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys[index], layer.values[index]
            self._merge([rows[i] for i in kept], cache, mask[index].to(device))
        return finished

    def _new_row(self, request: RowRequest) -> _Row:
        generator, seed = None, None
        if request.decoding.sampling:
            import torch

            seed = request.seed if request.seed is not None else request.decoding.seed_for("")
            generator = torch.Generator(device=self.model.device)
            generator.manual_seed(seed)
        return _Row(request, list(request.ids), request.decoding.logits_processors(), generator, seed, len(request.ids))

    def _merge(self, rows: list[_Row], cache, mask) -> None:
        """Add prefilled rows to the running ones: the narrower side is padded on the left."""
        import torch
        import torch.nn.functional as F

        if not self.rows:  # the running cache from now on: its layers append into spare room
            self.rows, self.cache, self.mask = rows, _growing(cache), mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        grow_old, grow_new = width - self.mask.shape[1], width - mask.shape[1]
        for old, new in zip(self.cache.layers, cache.layers):
            old.keys = torch.cat([F.pad(old.keys, (0, 0, grow_old, 0)), F.pad(new.keys, (0, 0, grow_new, 0))])
            old.values = torch.cat([F.pad(old.values, (0, 0, grow_old, 0)), F.pad(new.values, (0, 0, grow_new, 0))])
        self.mask = torch.cat([F.pad(self.mask, (grow_old, 0)), F.pad(mask, (grow_new, 0))])
        self.rows = self.rows + rows

    # ---------------------------------------------------------------- decoding
    def step(self) -> list[tuple[object, Generation]]:
        """One decoding step for every running row; the requests that ended are returned (and
        their rows dropped). Raises StepFailed naming every running request (all rows dropped)."""
        if not self.rows:
            return []
        import torch

        device = self.model.device
        input_ids = torch.tensor([[row.ids[-1]] for row in self.rows], device=device)
        positions = torch.tensor([[len(row.ids) - 1] for row in self.rows], device=device)
        mask = torch.cat([self.mask, torch.ones((len(self.rows), 1), dtype=self.mask.dtype, device=device)], dim=1)
        try:
            with torch.inference_mode():
                out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                 past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        except Exception as exc:  # the cache may be half-updated: nothing of it can be trusted
            tags = [row.request.tag for row in self.rows]
            self.reset()
            raise StepFailed(tags, exc) from exc
        self.mask = mask
        self.stats.steps += 1
        self.stats.rows_stepped += len(self.rows)
        self.stats.largest = max(self.stats.largest, len(self.rows))
        finished, kept = self._choose_all(self.rows, out.logits[:, -1, :])
        if len(kept) < len(self.rows):
            self._remember(sorted(set(range(len(self.rows))) - set(kept)))
            self._keep(kept)
        return finished

    def _remember(self, ended: list[int]) -> None:
        """Keep the conversations of rows that just ended (prompt and reply, as far as the cache
        holds them: all but the last token) for the channel's next message."""
        if not self.histories.max_tokens:
            return
        for i in ended:
            row = self.rows[i]
            columns = self.mask[i].nonzero().squeeze(1)  # the row's own columns, in order: positions 0, 1, ...
            ids = tuple(row.ids[:len(columns)])
            if len(ids) <= MIN_PREFIX_TOKENS or len(ids) > self.histories.max_tokens:
                continue
            layers = [(layer.keys[i:i + 1, :, columns], layer.values[i:i + 1, :, columns]) for layer in self.cache.layers]
            self.histories.put(_Prefix(ids, layers))

    def drop(self, tags: set) -> None:
        """Stop generating these requests (their callers gave up)."""
        kept = [i for i, row in enumerate(self.rows) if row.request.tag not in tags]
        if len(kept) < len(self.rows):
            self._keep(kept)

    def _keep(self, kept: list[int]) -> None:
        import torch

        if not kept:
            self.reset()
            return
        index = torch.tensor(kept, device=self.mask.device)
        mask = self.mask[index]
        first = int(mask.any(dim=0).nonzero()[0])  # columns no remaining row uses are dropped
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[index, :, first:], layer.values[index, :, first:]
        self.mask = mask[:, first:]
        self.rows = [self.rows[i] for i in kept]

    def _choose_all(self, rows: list[_Row], logits) -> tuple[list[tuple[object, Generation]], list[int]]:
        """Each row's next token; the finished requests and the indices of the rows that go on.

        Rows with the same decoding settings are processed as one batch: transformers' processors
        take a batch, and one sort of [rows, vocabulary] for top-p costs far less than one per row
        (the bot's sampled decoding spent most of its non-model time there). Only the draw is per
        row, from each row's own generator, so a reply still depends on its own seed alone."""
        import torch

        finished, kept = [], []
        logits = logits.float()
        chosen = [0] * len(rows)
        for decoding, indices in _by_decoding(rows).items():
            scores = rows[indices[0]].processors(_padded_ids(rows, indices, logits.device, logits.shape[-1]), logits[indices])
            if not decoding.sampling:
                for i, token in zip(indices, torch.argmax(scores, dim=-1).tolist()):
                    chosen[i] = token
                continue
            probs = torch.nn.functional.softmax(scores, dim=-1)
            for k, i in enumerate(indices):
                chosen[i] = int(torch.multinomial(probs[k:k + 1], num_samples=1, generator=rows[i].generator))
        for i, (row, token) in enumerate(zip(rows, chosen)):
            row.ids.append(token)
            if token == self.eos or row.new_tokens >= row.request.max_new_tokens:
                finished.append((row.request.tag, self._generation(row)))
                self.stats.requests += 1
            else:
                kept.append(i)
        return finished, kept

    def _generation(self, row: _Row) -> Generation:
        new = row.ids[row.prompt_len:]
        ended = new[-1] == self.eos
        kept = new[:-1] if ended else new
        text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
        return Generation(text, len(new), ended, seed=row.seed)


def _prefill_groups(plans: list[_Plan]) -> list[list[_Plan]]:
    """Joining requests split into prefill forwards: one forward computes every row at the width
    of its longest suffix, so a short suffix does not ride along with one more than twice its
    length (a new channel's whole history beside messages that continue cached conversations)."""
    groups: list[list[_Plan]] = []
    for plan in sorted(plans, key=lambda p: p.suffix_len, reverse=True):
        widest = groups[-1][0].suffix_len if groups else 0
        if groups and (2 * plan.suffix_len >= widest or widest <= 64):
            groups[-1].append(plan)
        else:
            groups.append([plan])
    return groups


def _cache_from(starts: list[tuple[_Prefix | None, int]], cached: int):
    """A DynamicCache holding each row's cached prefix, right-aligned at `cached` columns."""
    from transformers import DynamicCache

    if not cached:
        return DynamicCache()
    n = len(starts)
    entry, length = starts[0]
    if all(e is entry and k == length for e, k in starts):  # one prefix for all (the card): views, no copy
        return DynamicCache(ddp_cache_data=[(k[:, :, :length].expand(n, -1, -1, -1), v[:, :, :length].expand(n, -1, -1, -1))
                                            for k, v in entry.layers])
    reference = next(e for e, k in starts if k)
    layers = []
    for layer, (ref_keys, ref_values) in enumerate(reference.layers):
        keys = ref_keys.new_zeros((n, ref_keys.shape[1], cached, ref_keys.shape[3]))
        values = ref_values.new_zeros((n, ref_values.shape[1], cached, ref_values.shape[3]))
        for i, (e, k) in enumerate(starts):
            if k:
                keys[i, :, cached - k:] = e.layers[layer][0][0, :, :k]
                values[i, :, cached - k:] = e.layers[layer][1][0, :, :k]
        layers.append((keys, values))
    return DynamicCache(ddp_cache_data=layers)


def _by_decoding(rows: list[_Row]) -> dict[Decoding, list[int]]:
    """Row indices grouped by their decoding settings (normally one group: the bot's)."""
    groups: dict[Decoding, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row.request.decoding, []).append(i)
    return groups


def _padded_ids(rows: list[_Row], indices: list[int], device, vocab_size: int):
    """The ids each row's repetition penalty counts (its reply's alone in the reply scope, its
    prompt's too in the context scope: Decoding.penalty_ignores) as one [rows, longest] tensor
    for the processors. Shorter rows are padded on the left with `vocab_size`, an id no token has:
    transformers' penalty drops ids past the vocabulary, so padding penalises nothing, and a row
    with no reply yet is penalised nowhere (the other processors ignore ids)."""
    import torch

    counted = [rows[i].ids[rows[i].request.decoding.penalty_ignores(rows[i].prompt_len):] for i in indices]
    longest = max(1, max(len(ids) for ids in counted))
    return torch.tensor([[vocab_size] * (longest - len(ids)) + ids for ids in counted], device=device)


def shared_prefix_len(sequences: list[list[int]]) -> int:
    """How many leading tokens all sequences share."""
    if len(sequences) < 2:
        return 0
    n = 0
    for column in zip(*sequences):
        if any(token != column[0] for token in column[1:]):
            break
        n += 1
    return n


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int | None = None, decoding: Decoding = GREEDY,
             max_rows: int | None = None) -> list[Generation]:
    """Every prompt's reply, generated together (continuous batching: a row leaves when it ends).
    At most `max_rows` rows run at once (None: all of them); the other prompts wait in order and
    join as rows end, so a slot never idles behind a long reply (a step costs far less than one
    per row: the weights are read, or dequantized, once per step).
    The prefix the prompts share (the persona card) is prefilled once. When `decoding` samples,
    each prompt's seed derives from decoding.seed and the prompt (see Decoding.seed_for)."""
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, not {max_rows}")
    max_new_tokens = max_new_tokens or decoding.max_new_tokens
    decoder = BatchDecoder(model, tokenizer)
    ids = [decoder.tokenize(p) for p in prompts]
    shared = shared_prefix_len(ids)
    waiting = [RowRequest(i, row, max_new_tokens, decoding, decoding.seed_for(p), shared)
               for i, (row, p) in enumerate(zip(ids, prompts))]
    waiting.reverse()  # popped from the end: first prompt first
    limit = max_rows or len(waiting)
    results: dict[int, Generation] = {}

    def admit() -> None:
        while waiting and len(decoder.rows) < limit:
            joining = [waiting.pop() for _ in range(min(limit - len(decoder.rows), len(waiting)))]
            finished, failed = decoder.join(joining)
            if failed:
                raise failed[0].cause
            results.update(finished)

    admit()
    try:
        while decoder.rows:
            results.update(decoder.step())
            admit()
    except StepFailed as failed_step:
        raise failed_step.cause
    return [results[i] for i in range(len(prompts))]


def reply_text(raw: str, card: PersonaCard) -> str:
    """The persona's reply alone: its own leading `Inosuke:` label dropped, and everything from
    an invented next-speaker line (`You: ...`, `Zenitsu: ...`) on cut off."""
    lines = raw.strip().split("\n")
    first = speaker_line(lines[0]) if lines else None
    if first and first[0] in card.aliases:
        lines[0] = first[1]
    kept = []
    for line in lines:
        found = speaker_line(line)
        if kept and found and found[0] not in card.aliases:
            break
        kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
