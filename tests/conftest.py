"""Shared fixtures and the test tiers.

Tiers: a test that loads model weights is marked `model`, one that trains an adapter
`training` (marked explicitly, or automatically when it uses a fixture that does). `make
test-fast` runs the rest (`-m "not model and not training"`) with model loading forbidden, so
a fast test that loads weights by accident fails instead of slowing the tier down.

The embedded model is converted once into the project's own cache (.cache/), so a second run
skips it; the conversion itself is exercised from scratch by tests/core/test_model_resolver.py.

Databases: `db_url` is a fresh SQLite file migrated by Alembic. A test marked `each_database`
runs twice, on SQLite and on PostgreSQL: a real server (tools/local_postgres.py) that the first
such test starts on loopback for the whole session and the session stops at its end; each test
gets a new database in it. Without a server those tests are skipped with the reason, never
silently passed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.paths import DEFAULT_CARD, PROJECT_ROOT
from core.persona import load_card

TEST_CACHE = PROJECT_ROOT / ".cache" / "tests"
FAST_TIER = os.environ.get("INOSUKE_TEST_TIER") == "fast"
# Fixtures that load weights (or train): a test using one belongs to that tier.
MODEL_FIXTURES = {"model", "served", "trained_adapter"}
TRAINING_FIXTURES = {"trained_adapter"}


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("each_database") and "db_url" in metafunc.fixturenames:
        metafunc.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & MODEL_FIXTURES:
            item.add_marker(pytest.mark.model)
        if used & TRAINING_FIXTURES:
            item.add_marker(pytest.mark.training)
    items[:] = trained_adapter_first(items)


def trained_adapter_first(items: list) -> list:
    """The first file that needs the trained-adapter fixture, then the files that do not, then the
    rest. With two workers (`make test` runs the model tier with --no-loadscope-reorder, so a file
    goes to the next free worker in this order) one trains the adapter while the other has work that
    does not wait for it; in plain file order both soon stood waiting on its lock (the export
    parity setup waited 270 s)."""
    def file_of(item) -> str:
        return item.nodeid.split("::")[0]

    needing = [file_of(item) for item in items if "trained_adapter" in getattr(item, "fixturenames", ())]
    first = needing[0] if needing else None
    rank = {f: 0 if f == first else 2 for f in needing}
    return sorted(items, key=lambda item: rank.get(file_of(item), 1))  # stable: file order kept within a rank


@pytest.fixture(autouse=True)
def forbid_model_loads_in_the_fast_tier(monkeypatch):
    if FAST_TIER:
        from core import model_resolver

        def refuse(*args, **kwargs):
            raise AssertionError("this test loads model weights: mark it `model` (or use the fake_served fixture)")

        monkeypatch.setattr(model_resolver, "load_model", refuse)
    yield


@pytest.fixture(scope="session", autouse=True)
def model_cache():
    """The project's test cache (INOSUKE_CACHE_DIR) holding the converted embedded model."""
    patch = pytest.MonkeyPatch()
    patch.setenv("INOSUKE_CACHE_DIR", str(TEST_CACHE))
    yield TEST_CACHE
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def state_of_this_worker(tmp_path_factory):
    """Run-time state (INOSUKE_STATE_DIR: the training lock, runs, adapters) in the session's own
    folder, never the project's state/: a test must not touch what `make demo` left, and two
    pytest workers training at once must not meet on one training lock."""
    patch = pytest.MonkeyPatch()
    patch.setenv("INOSUKE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def persona():
    return load_card(DEFAULT_CARD)


@pytest.fixture(scope="session")
def tokenizer(model_cache):
    from core.model_resolver import EMBEDDED_SPEC, load_tokenizer

    return load_tokenizer(EMBEDDED_SPEC)


@pytest.fixture(scope="session")
def model(model_cache):
    """The embedded model in NF4, as the bot serves it with no adapter (shared: never modify it)."""
    from core.model_resolver import EMBEDDED_SPEC, load_model

    return load_model(EMBEDDED_SPEC, "nf4")


@pytest.fixture(scope="session")
def served(model, tokenizer):
    """The bare embedded model as a ServedModel, with a version label so stored replies show it."""
    from core.served_model import ServedModel

    return ServedModel(model, tokenizer, "v0007", "chat", "smollm2-135m", "nf4")


@pytest.fixture
def fake_served(tokenizer):
    """A ServedModel with the real tokenizer and prompt format and a FakeLanguageModel."""
    from tests.fakes import fake_served_model

    return fake_served_model(tokenizer)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on loopback for the rest of the session (started on first use)."""
    from tools.local_postgres import LocalPostgres, PostgresUnavailable

    try:
        server = LocalPostgres().start()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server for this test: {exc}")
    yield server
    server.stop()


@pytest.fixture
def fake_served_with(tokenizer):
    """fake_served_with(reply=..., delay_s=..., quote=True): a fake model that says something
    in particular, quotes the user, or takes its time."""
    from tests.fakes import fake_served_model, quoting

    def make(reply: str = "HAH! Lord Inosuke heard you!", delay_s: float = 0.0, quote: bool = False):
        return fake_served_model(tokenizer, reply=quoting if quote else reply, delay_s=delay_s)

    return make


@pytest.fixture
def postgres_url(postgres_server):
    """A new empty database on the session's PostgreSQL server (dropped after the test)."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
def db_url(request, tmp_path):
    """A fresh database migrated to head by Alembic: a SQLite file, or (parametrized by the
    `each_database` marker) a new database on the session's PostgreSQL server."""
    from core.db.database import upgrade

    if getattr(request, "param", "sqlite") == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)  # Alembic runs its own event loop: before the test's
    return url


@pytest.fixture
def db_rows_at():
    """db_rows_at(url) -> query(sql): the rows of a statement on that database, as tuples (either
    database); a statement that returns no rows is committed and gives []."""
    from sqlalchemy import text

    from core.db.database import make_sync_engine

    engines = []

    def on(url: str):
        engine = make_sync_engine(url)
        engines.append(engine)

        def query(sql: str) -> list[tuple]:
            with engine.begin() as connection:
                result = connection.execute(text(sql))
                return [tuple(row) for row in result] if result.returns_rows else []

        return query

    yield on
    for engine in engines:
        engine.dispose()


@pytest.fixture
def db_rows(db_url, db_rows_at):
    """db_rows(sql) -> the rows of a statement on the test's database (see db_rows_at)."""
    return db_rows_at(db_url)


@pytest.fixture(scope="session")
def trained_adapter(tmp_path_factory, model_cache):
    """A real adapter from a short run of the smollm2-cpu profile (24 steps at 3e-4): enough to
    learn the voice and to stop at end of turn. Shared by the trainer, evaluation and
    feedback-loop tests, and by the pytest workers of one run: the first to need it trains it
    under a file lock, the others wait and read it (pytest-xdist's recipe for a session fixture
    built once)."""
    import fcntl
    import json

    from core.registry import versions
    from trainer.train import TrainOutcome, train

    # A worker's base temp is popen-gwN inside the run's own folder, which the workers share.
    tmp = (tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER")
           else tmp_path_factory.getbasetemp()) / "trained-adapter"
    tmp.mkdir(exist_ok=True)
    with open(tmp / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if trained := versions(tmp / "adapters"):  # published (renamed into place) by another worker
            manifest = json.loads((trained[0] / "manifest.json").read_text())
            return TrainOutcome(trained[0], manifest, tmp / "runs" / manifest["run"], False)
        # Rows of 512 (the profile's are 1024): these step counts were tuned on them, and each step costs half.
        return train("smollm2-cpu", overrides=["max_steps=24", "eval_every=24", "eval_max_samples=4", "batch_size=1",
                                               "learning_rate=3e-4", "max_seq_len=512"], runs=tmp / "runs", registry=tmp / "adapters")


@pytest.fixture
def small_card() -> dict:
    """A small SillyTavern V2 card (tests/assets/small_card.json) with both placeholder styles."""
    import json

    return json.loads((Path(__file__).parent / "assets" / "small_card.json").read_text())


@pytest.fixture
def write_png_card():
    """write_png_card(path, card, key="chara"): a PNG carrying `card` in a tEXt chunk, as SillyTavern saves it."""
    import base64
    import json

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    def write(path, card: dict, key: str = "chara") -> None:
        info = PngInfo()
        info.add_text(key, base64.b64encode(json.dumps(card).encode()).decode())
        Image.new("RGB", (4, 4), "orange").save(path, pnginfo=info)

    return write


@pytest.fixture
def table_names():
    """table_names(url) -> the tables in the database, whichever it is."""
    from sqlalchemy import inspect

    from core.db.database import make_sync_engine

    def names(url: str) -> set[str]:
        engine = make_sync_engine(url)
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()

    return names
