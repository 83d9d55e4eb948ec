"""Persona evaluation: held-out loss, style score, failure rates, generic QA retention and
multi-turn consistency of one model, a comparison report, and the metrics the retraining gate
reads."""
