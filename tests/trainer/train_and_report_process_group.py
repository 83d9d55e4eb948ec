"""`python -m trainer train` as one process of an `accelerate launch`, then a line saying whether
that process left its process group open. It must not: gloo's threads then outlive the interpreter
and now and then abort the process at exit, after the adapter was trained (the launcher reports the
training failed). Leaving it open fails the test every time; the abort itself only sometimes."""

import os
import sys

import torch.distributed as dist

from core.cli import run
from trainer.__main__ import main

if __name__ == "__main__":
    code = run(main, sys.argv[1:])  # as `python -m trainer` runs it
    print(f"rank {os.environ.get('RANK')}: process group open at exit: {dist.is_initialized()}", flush=True)
    sys.exit(code)
