#!/usr/bin/env bash
# The GPU check of issue 15, as one prepared command for a lent GPU machine (the device tool):
#   make gpu-kit                                   # here, once: .device-kit/ (wheels + tokenizer)
#   device run, carry [".device-kit"], command:    bash tools/gpu_check.sh
# It installs the kit over the machine's own packages (into /tmp/site, first on the path), says
# which versions it runs with, and runs bench/gpu_profile.py on the qwen2.5-3b-6gb profile. The
# log and the figures (gpu_profile.json) land in $OUT, which the device tool brings back.
# Extra arguments go to bench/gpu_profile.py. PYTHON and KIT name another interpreter or kit
# (the dry run on CPU: PYTHON=/tmp/sim/bin/python KIT=/tmp/kit bash tools/gpu_check.sh --scale tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
KIT="${KIT:-.device-kit}"
OUT="${OUT:-$(mktemp -d)}"
SITE="${SITE:-/tmp/site}"
mkdir -p "$OUT"
if ! ls "$KIT"/wheels/*.whl >/dev/null 2>&1; then
    echo "no wheels in $KIT/wheels: run \`make gpu-kit\` here first and carry $KIT" >&2
    exit 2
fi
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$KIT"/wheels/*.whl
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export INOSUKE_CACHE_DIR="${INOSUKE_CACHE_DIR:-$(mktemp -d)}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
"$PYTHON" - <<'EOF' | tee "$OUT/versions.txt"
import importlib.metadata as m, platform, torch
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return "absent"
print("python", platform.python_version(), "| torch", torch.__version__, "cuda", torch.version.cuda,
      "| GPU", torch.cuda.is_available())
print(" | ".join(f"{p} {version(p)}" for p in ("transformers", "trl", "peft", "bitsandbytes", "accelerate", "datasets",
                                                "huggingface_hub", "tokenizers", "pyarrow", "fsspec", "numpy", "triton")))
EOF
# Every module the bench runs, imported before the 6 GB model is built: a missing or unsuitable
# package (the image's own pyarrow, say) stops the check within seconds, not minutes.
"$PYTHON" -c "import bitsandbytes, datasets, peft, sqlalchemy, aiosqlite, alembic, transformers, trl
import bot.service.pipeline, bot.service.worker, core.db.database, core.generate, core.served_model
import trainer.qlora, trainer.train, trainer.plan; print('imports: ok')" 2>&1 | tee "$OUT/imports.txt"
"$PYTHON" bench/gpu_profile.py --tokenizer "$KIT/tokenizer" --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_profile.log"
