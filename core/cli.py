"""What every entry point shares: quiet library logs, and user errors as one clear line."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable


def quiet_libraries() -> None:
    """Library chatter that says nothing to a user: transformers' weight-loading bars and
    bitsandbytes' note that it cannot fetch optional CPU kernels from the hub."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    from core.errors import UserError

    # Our own progress at INFO; libraries only when something is wrong.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for ours in ("bot", "trainer"):
        logging.getLogger(ours).setLevel(logging.INFO)
    quiet_libraries()
    quiet_warnings()
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def quiet_warnings() -> None:
    """Library warnings that a user can do nothing about (deprecations inside transformers/TRL,
    pin_memory without a GPU, bitsandbytes' note that paging needs a GPU)."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    warnings.filterwarnings("ignore", message=".*Paged optimizers are not supported on CPU.*")
