"""Retraining runs recorded in the bot's database (table training_runs, Alembic 0003): what
data went in, the gate's metrics, the decision and its reason. Synchronous: only the offline
trainer writes them (core.db.database.connect_sync)."""

from __future__ import annotations

import math

from sqlalchemy import select, update

from core.db.schema import TrainingRun
from core.db.history import now


def start_run(sessions, profile: str, previous: str | None, curated: int, approved: int, preferences: int,
                    last_reply_id: int | None) -> int:
    with sessions() as session, session.begin():
        # We hold the training lock, so a row still "running" belongs to a run that was killed.
        session.execute(update(TrainingRun).where(TrainingRun.status == "running").values(
            status="failed", finished_at=now(), reason="interrupted: the process ended before finishing"))
        run = TrainingRun(started_at=now(), status="running", profile=profile, previous_version=previous,
                          curated_samples=curated, approved_samples=approved, preference_labels=preferences,
                          last_reply_id=last_reply_id)
        session.add(run)
        session.flush()
        return run.id


def finish_run(sessions, run_id: int, status: str, *, candidate: str | None = None, metrics: dict | None = None,
                     reason: str = "") -> None:
    with sessions() as session, session.begin():
        run = session.get(TrainingRun, run_id)
        run.status, run.finished_at, run.candidate_version, run.metrics, run.reason = (
            status, now(), candidate, json_safe(metrics), reason)


def json_safe(value):
    """Metrics as standard JSON: a NaN or infinite score (a diverged loss, a mean of nothing)
    becomes null. SQLite stores NaN as written, but PostgreSQL's JSON refuses it, and the run
    would be left "running" with its result lost."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def last_completed_run(sessions) -> TrainingRun | None:
    """The newest run that got as far as a decision (promoted or rejected)."""
    with sessions() as session:
        return session.scalar(select(TrainingRun).where(TrainingRun.status.in_(("promoted", "rejected")))
                                    .order_by(TrainingRun.id.desc()).limit(1))


def all_runs(sessions) -> list[TrainingRun]:
    with sessions() as session:
        return list((session.scalars(select(TrainingRun).order_by(TrainingRun.id))).all())
