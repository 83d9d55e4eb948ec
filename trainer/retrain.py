"""The feedback loop as library calls: `retrain(...)` (curated data/ plus approved chat logs -> a
candidate adapter (then the KTO and DPO preference stages when enabled) -> evaluated against the adapter in service on the fixed held-out set ->
promoted only if the gate passes; every run recorded in the database, table training_runs) and
`schedule(...)` (retrain once enough new approved samples exist). The commands are
trainer/cli/feedback.py.

Safety: the training lock makes sure two trainings never overlap; the candidate is published as
a new registry version in one rename, and only the pointer (core/serving_pointer.py) decides what
is served, so a failed, rejected or killed run never changes the adapter in service. A bad row
(in a chat log or a curated file) is set aside in the run's rejects.jsonl and reported; it never
stops the loop. The staged copy of the data is deleted when the run ends (the training run's
dataset snapshot keeps the samples, each chat-log one with its reply id, for /forget-me).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar, Literal

from core.db.training_runs import finish_run, last_completed_run, start_run
from core.paths import PROJECT_ROOT, project_path, state_dir
from core.settings import DEFAULT_CONFIG as DEFAULT_BOT_CONFIG
from trainer.chat_logs import LogExport, LogRules

DEFAULT_RETRAIN_CONFIG = PROJECT_ROOT / "config" / "retrain.yaml"
APPROVED_LOGS_FILE = "approved_logs.jsonl"
MIN_EVERY_S = 1  # `schedule --every`: the shortest wait between two checks


@dataclass(frozen=True)
class KTOSettings:
    enabled: bool = False  # run a KTO stage on the ratings after supervised training
    min_labels: int = 16  # ... only when at least this many labelled replies exist (both kinds present)
    max_steps: int = 20
    learning_rate: float = 5e-5
    beta: float = 0.1
    batch_size: int = 4

    RANGES: ClassVar[dict] = {"min_labels": (1, None), "max_steps": (1, None), "learning_rate": (0, None),
                              "beta": (0, None), "batch_size": (1, None)}


@dataclass(frozen=True)
class DPOSettings:
    enabled: bool = False  # run a DPO stage on swipe pairs after supervised training (and after KTO)
    min_pairs: int = 16  # ... only when at least this many (chosen, rejected) pairs exist
    max_steps: int = 20
    learning_rate: float = 5e-5
    beta: float = 0.1
    batch_size: int = 4

    RANGES: ClassVar[dict] = {"min_pairs": (1, None), "max_steps": (1, None), "learning_rate": (0, None),
                              "beta": (0, None), "batch_size": (1, None)}


@dataclass(frozen=True)
class RetrainSettings:
    profile: str = "smollm2-cpu"
    profile_overrides: list[str] = field(default_factory=list)  # KEY=VALUE, as with `trainer train --set`
    min_thumbs_up: int = 2  # a reply nobody moderated qualifies with at least this many 👍 ...
    max_thumbs_down: int = 0  # ... and at most this many 👎; moderator approval always qualifies, rejection never
    min_new_samples: int = 10  # `trainer schedule` retrains when at least this many new approved samples exist
    eval_limit: int | None = None  # evaluate on the first N items of each held-out part (None: all)
    # Guilds whose approvals and ratings may feed training; [] none (the default), "all" every guild and DMs.
    training_guilds: list[int] | Literal["all"] = field(default_factory=list)
    heldout: str | None = None  # held-out folder for the gate (None: evals/ for its own character, else the eval split)
    kto: KTOSettings = field(default_factory=KTOSettings)
    dpo: DPOSettings = field(default_factory=DPOSettings)

    RANGES: ClassVar[dict] = {"min_thumbs_up": (1, None), "max_thumbs_down": (0, None), "min_new_samples": (1, None),
                              "eval_limit": (1, None)}


def load_retrain_settings(path: Path = DEFAULT_RETRAIN_CONFIG, overrides: list[str] = ()) -> RetrainSettings:
    from core.config import build, values_with_overrides

    return build(RetrainSettings, values_with_overrides(path, overrides, "min_new_samples=5", required=False), str(path))


@dataclass
class RetrainOutcome:
    status: str  # dry-run, promoted, rejected, failed
    export: LogExport
    curated: int
    candidate: Path | None = None
    previous: str | None = None
    comparison: object | None = None
    reason: str = ""
    run_id: int | None = None
    seconds: float = 0.0


def log_rules(settings: RetrainSettings, bot_config: Path = DEFAULT_BOT_CONFIG) -> LogRules:
    """The rating rule, and the context window of the bot whose logs these are (its config's `chat:`),
    so that every sample gets the context that bot really used."""
    from core.settings import load_settings

    return LogRules(settings.min_thumbs_up, settings.max_thumbs_down, load_settings(bot_config).chat, settings.training_guilds)


def export_logs(database_url: str | None, card, tokenizer, rules: LogRules, prompt_format: str,
                since_reply_id: int | None = None) -> LogExport:
    from core.db.database import connect_sync
    from trainer.chat_logs import collect

    with connect_sync(database_url) as sessions:
        return collect(sessions, card, tokenizer, rules, prompt_format, since_reply_id)


def stage_data(curated: Path, export: LogExport, folder: Path) -> Path:
    """A data folder for this run: the curated files plus approved_logs.jsonl."""
    from trainer.chat_logs import write_samples
    from trainer.dataset.pipeline import source_files

    folder.mkdir(parents=True, exist_ok=True)
    for path in source_files(curated):
        shutil.copy2(path, folder / path.name)
    if export.samples:
        write_samples(export, folder / APPROVED_LOGS_FILE)
    return folder


def retrain(settings: RetrainSettings, eval_settings=None, *, dry_run: bool = False, database_url: str | None = None,
            registry: Path | None = None, runs: Path | None = None, bot_config: Path = DEFAULT_BOT_CONFIG,
            console=None) -> RetrainOutcome:
    """One retraining run under the training lock (a dry run reads only and takes no lock).
    Raises TrainingRunning when another training holds the lock."""
    from rich.console import Console

    from core.errors import UserError
    from core.training_lock import training_lock
    from trainer.distributed import world_size

    if world_size() > 1:  # each process would take the lock, evaluate and promote on its own
        raise UserError("trainer retrain runs in one process (it holds the training lock, evaluates and promotes): "
                        "run it without accelerate launch, or train on several processes with "
                        "`accelerate launch ... -m trainer train` and evaluate with `trainer eval`")
    console = console or Console()
    if dry_run:  # reads only: no lock needed, and it may run while a training does
        return prepare_and_maybe_train(settings, eval_settings, True, database_url, registry, runs, bot_config, console)
    with training_lock():
        return prepare_and_maybe_train(settings, eval_settings, False, database_url, registry, runs, bot_config, console)


def prepare_and_maybe_train(settings, eval_settings, dry_run, database_url, registry, runs, bot_config, console) -> RetrainOutcome:
    from core.db.database import upgrade
    from core.registry import registry_dir
    from core.model_resolver import load_tokenizer
    from core.persona import load_card
    from trainer.profile import load_profile

    started = time.perf_counter()
    registry = registry or registry_dir()
    profile = load_profile(settings.profile, settings.profile_overrides)
    card = load_card(project_path(profile.card))
    upgrade(database_url)  # the bot may not have run since the last upgrade
    tokenizer = load_tokenizer(profile.model)
    export = export_logs(database_url, card, tokenizer, log_rules(settings, bot_config), profile.prompt_format)

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    work = state_dir() / "retrain" / stamp
    staged = stage_data(project_path(profile.data), export, work / "data")
    try:
        curated = count_curated(staged, card)
        show_export(console, export, curated)
        if dry_run:
            preview_dataset(console, staged, card, export)
            shutil.rmtree(work, ignore_errors=True)
            return RetrainOutcome("dry-run", export, curated, seconds=time.perf_counter() - started)
        return train_and_gate(settings, eval_settings, export, curated, staged, work, profile, registry, runs,
                              database_url, console, started, bot_config)
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # user words on disk no longer than the run needs them


def train_and_gate(settings, eval_settings, export, curated, staged, work, profile, registry, runs, database_url,
                   console, started, bot_config: Path = DEFAULT_BOT_CONFIG) -> RetrainOutcome:
    from functools import partial

    from core.db.database import connect_sync
    from core.registry import versions
    from core.serving_pointer import checked_in_service, read_pointer
    from core.serving_pointer import promote as move_pointer
    from trainer.export.serving import prepare_for_serving

    # Every promotion first exports what the bot's backend needs (llama-server: the LoRA GGUF).
    promote = partial(move_pointer, prepare=partial(prepare_for_serving, bot_config=bot_config))

    preferences = export.preferences

    # The pointer decides what is served; adopt the newest version explicitly before a candidate appears.
    if read_pointer(registry) is None and versions(registry):
        promote(versions(registry)[-1], registry, reason="in service before the first retrain")
    current = checked_in_service(registry)  # before training: the gate compares against it
    previous = current.name if current else None
    with connect_sync(database_url) as sessions:
        run_id = start_run(sessions, profile.name, previous, curated, len(export.samples), len(preferences),
                           export.last_reply_id)
    outcome = RetrainOutcome("failed", export, curated, previous=previous, run_id=run_id)
    try:
        candidate = train_candidate(settings, staged, registry, runs, console, work / "rejects.jsonl")
        if candidate is None:
            outcome.reason = "training interrupted"
            return outcome
        outcome.candidate = candidate
        if settings.kto.enabled:
            candidate = maybe_kto(settings.kto, candidate, export, registry, work, console) or candidate
            outcome.candidate = candidate
        if settings.dpo.enabled:  # on top of what came before it; the same gate follows
            candidate = maybe_dpo(settings.dpo, candidate, export, registry, work, console) or candidate
            outcome.candidate = candidate
        comparison = evaluate_candidate(candidate, current, eval_settings, settings, work / "eval", console, bot_config)
        outcome.comparison = comparison
        passed = comparison.decision.passed
        outcome.reason = "; ".join(comparison.decision.reasons)
        if passed:
            promote(candidate, registry, reason=f"retrain: {outcome.reason}")
        outcome.status = "promoted" if passed else "rejected"
        return outcome
    except BaseException as exc:
        outcome.reason = outcome.reason or f"{type(exc).__name__}: {exc}"
        raise
    finally:
        outcome.seconds = time.perf_counter() - started
        metrics = None
        if outcome.comparison is not None:
            from trainer.evaluation.gate import gate_metrics

            metrics = {"candidate": gate_metrics(outcome.comparison.a), "current": gate_metrics(outcome.comparison.b),
                       "report": str(outcome.comparison.report)}
        with connect_sync(database_url) as sessions:
            finish_run(sessions, run_id, outcome.status, candidate=outcome.candidate.name if outcome.candidate else None,
                       metrics=metrics, reason=outcome.reason)


def count_curated(staged: Path, card) -> int:
    from trainer.dataset.pipeline import load_records, source_files

    files = [f for f in source_files(staged) if f.name != APPROVED_LOGS_FILE]
    records, _, _ = load_records(files, card, None, None)
    return len(records)


def train_candidate(settings: RetrainSettings, staged: Path, registry: Path, runs: Path | None, console,
                    rejects: Path) -> Path | None:
    from trainer.train import train

    console.rule(f"Training a candidate (profile {settings.profile})")
    outcome = train(settings.profile, overrides=[*settings.profile_overrides, f"data={staged}"], promote=False,
                    runs=runs, registry=registry, rejects=rejects)
    return None if outcome.interrupted else outcome.adapter


def evaluate_candidate(candidate: Path, current: Path | None, eval_settings, settings: RetrainSettings, out: Path, console,
                       bot_config: Path = DEFAULT_BOT_CONFIG):
    from core.settings import load_settings
    from trainer.evaluation.compare import compare, print_comparison

    against = str(current) if current is not None else "base"
    console.rule(f"Evaluating {candidate.name} against {current.name if current else 'the base model'}")
    heldout = project_path(settings.heldout) if settings.heldout else None
    serving = load_settings(bot_config).served_decoding  # what the bot that --bot-config runs serves
    comparison = compare(str(candidate), against, heldout=heldout, settings=eval_settings, limit=settings.eval_limit, out=out,
                         serving=serving)
    print_comparison(comparison, console)
    return comparison


def maybe_kto(kto: KTOSettings, candidate: Path, export: LogExport, registry: Path, work: Path, console) -> Path | None:
    labels = [p.label for p in export.preferences]
    if len(labels) < kto.min_labels or all(labels) or not any(labels):
        console.print(f"KTO stage skipped: {len(labels)} labelled replies ({sum(labels)} 👍, {len(labels) - sum(labels)} 👎); "
                      f"needs at least {kto.min_labels} with both kinds", highlight=False)
        return None
    from trainer.kto_stage import run_kto

    console.rule(f"KTO stage on {len(labels)} rated replies")
    return run_kto(candidate, export.preferences, kto, registry, work / "kto")


def maybe_dpo(dpo: DPOSettings, candidate: Path, export: LogExport, registry: Path, work: Path, console) -> Path | None:
    pairs = export.pairs
    if len(pairs) < dpo.min_pairs:
        console.print(f"DPO stage skipped: {len(pairs)} swipe pair(s) from {len({p.reply_id for p in pairs})} repl(ies); "
                      f"needs at least {dpo.min_pairs}", highlight=False)
        return None
    from trainer.dpo_stage import run_dpo

    console.rule(f"DPO stage on {len(pairs)} swipe pairs")
    return run_dpo(candidate, pairs, dpo, registry, work / "dpo")


def show_export(console, export: LogExport, curated: int) -> None:
    by_why = {w: sum(s.why == w for s in export.samples) for w in ("approved", "ratings")}
    console.print(f"curated samples: {curated}", highlight=False)
    console.print(f"approved chat-log samples: {len(export.samples)} (moderator-approved {by_why['approved']}, "
                  f"by ratings {by_why['ratings']}); rejected by moderators: {export.rejected}", highlight=False)
    console.print(f"preference labels: {len(export.preferences)} ({sum(p.label for p in export.preferences)} 👍, "
                  f"{sum(not p.label for p in export.preferences)} 👎); opted-out users excluded: "
                  f"{len(export.opted_out_users)}; replies dropped because they answered one: {export.excluded_opted_out}",
                  highlight=False)
    console.print(f"swipe pairs (chosen, rejected): {len(export.pairs)} from {len({p.reply_id for p in export.pairs})} "
                  "swiped repl(ies)", highlight=False)
    console.print(f"qualifying replies left out: {export.excluded_unlinked} whose message is gone (deleted or forgotten), "
                  f"{export.excluded_guild} from servers not in training_guilds", highlight=False)
    if export.excluded_guild and not export.samples:
        console.print("(config/retrain.yaml: training_guilds lists the servers whose approvals may train the model)", highlight=False)


def preview_dataset(console, staged: Path, card, export: LogExport) -> None:
    """What --dry-run shows: the dataset statistics table and the approved samples themselves."""
    import tempfile

    from trainer.dataset.pipeline import build_dataset
    from trainer.dataset.stats import print_table

    with tempfile.TemporaryDirectory() as out:
        result = build_dataset(staged, card, Path(out), rejects=Path(out) / "rejects.jsonl")
    print_table(result.composition, console, title="the dataset this retrain would use")
    console.print(f"train {len(result.train):,} / eval {len(result.eval):,}; duplicates removed: {len(result.duplicates)}; "
                  f"bad rows a retrain would set aside: {len(result.problems)}", highlight=False)
    for problem in result.problems[:10]:
        console.print(f"   {problem}", highlight=False, markup=False)
    for row in export.sample_rows()[:5]:
        console.print(f"-- reply #{row['reply_id']}", highlight=False)
        for message in row["messages"]:
            who = card.aliases[-1] if message["role"] == "assistant" else message.get("name", "You")
            console.print(f"   {who}: {message['content']}", highlight=False, markup=False)
    if len(export.samples) > 5:
        console.print(f"   ... and {len(export.samples) - 5} more", highlight=False)


def new_samples(settings: RetrainSettings, database_url: str | None = None,
                bot_config: Path = DEFAULT_BOT_CONFIG) -> tuple[int, int | None]:
    """(qualifying replies newer than the last completed run, that run's id)."""
    from core.db.database import connect_sync, upgrade
    from core.model_resolver import load_tokenizer
    from core.persona import load_card
    from trainer.profile import load_profile

    profile = load_profile(settings.profile, settings.profile_overrides)
    upgrade(database_url)
    with connect_sync(database_url) as sessions:
        last = last_completed_run(sessions)
    since = last.last_reply_id if last is not None else None
    export = export_logs(database_url, load_card(project_path(profile.card)), load_tokenizer(profile.model),
                         log_rules(settings, bot_config), profile.prompt_format, since_reply_id=since)
    return len(export.samples), (last.id if last is not None else None)


def schedule(settings: RetrainSettings, eval_settings=None, *, every: float | None = None, dry_run: bool = False,
             database_url: str | None = None, bot_config: Path = DEFAULT_BOT_CONFIG) -> bool:
    """Retrain when at least `settings.min_new_samples` new approved samples exist; check once,
    or every `every` seconds for ever. Returns False when a single check found a training
    running (cron may try again later)."""
    import math
    import time

    from core.errors import UserError
    from core.training_lock import TrainingRunning, training_in_progress

    # Each check loads the profile, the tokenizer and the database: --every 0 would be a busy loop,
    # and a negative or NaN one would fail in time.sleep only after the first check.
    if every is not None and not (math.isfinite(every) and every >= MIN_EVERY_S):
        raise UserError(f"--every {every:g}: expected a number of seconds, at least {MIN_EVERY_S}")
    while True:
        try:
            count, last = new_samples(settings, database_url, bot_config)
            since = f"since run #{last}" if last else "so far"
            if training_in_progress():
                print(f"{count} new approved sample(s) {since}; a training is running, checking again later")
            elif count < settings.min_new_samples:
                print(f"{count} new approved sample(s) {since}; retraining at {settings.min_new_samples}: nothing to do")
            elif dry_run:
                print(f"{count} new approved sample(s) {since}: a retrain would start now")
            else:
                print(f"{count} new approved sample(s) {since}: retraining")
                outcome = retrain(settings, eval_settings, database_url=database_url, bot_config=bot_config)
                print(f"retrain {outcome.status}: {outcome.reason}")
        except TrainingRunning as exc:
            print(exc)
            if every is None:
                return False
        except Exception as exc:  # a long-running schedule reports a failed check and keeps going
            if every is None:
                raise
            reason = (str(exc).strip().splitlines() or [""])[0]
            print(f"this check failed ({type(exc).__name__}: {reason}); checking again in {every:.0f}s", flush=True)
        if every is None:
            return True
        time.sleep(every)
