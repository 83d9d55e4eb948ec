"""Run as: .venv/bin/python bench/export_parity.py [--adapter latest] [--max-new-tokens 96]

How closely each export of an adapter answers like the adapter itself: greedy tokens on the parity
prompts (trainer/export/parity.py: conversations rendered by our prompt builder) from
- the adapter on its full-precision base through PEFT (the reference),
- the merged full-precision export (transformers),
- the f16 and Q4_K_M GGUFs and the LoRA GGUF on the base's own GGUF (llama.cpp's llama-server),
- the adapter on its NF4 base, as the bot serves it,
each compared with the reference: replies identical, share of tokens before the first difference,
replies that stopped at the end-of-turn token. Needs llama.cpp (`make llama.cpp`) and a trained
adapter (`python -m trainer train --profile smollm2-cpu`).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from core.cli import quiet_libraries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", default="latest")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()
    quiet_libraries()

    from transformers import AutoModelForCausalLM

    from core.model_resolver import EMBEDDED_SPEC, embedded_gguf, load_tokenizer
    from core.persona import load_card
    from core.registry import find_adapter, read_adapter
    from core.served_model import load_served
    from trainer.export import parity
    from trainer.export.export import FORMATS, trained_card, export
    from trainer.export.llama_cpp import find_llama_cpp

    llama = find_llama_cpp(need=("llama-quantize", "llama-server"))
    info = read_adapter(find_adapter(args.adapter))
    card, _ = trained_card(info)
    tokenizer = load_tokenizer(info.base_model)
    eot = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    prompts = parity.parity_prompts(tokenizer, card)
    n = args.max_new_tokens
    out = Path(tempfile.mkdtemp(prefix="export-parity-"))
    result = export(info.path, list(FORMATS), out=out)
    rows = {}
    reference = parity.hf_greedy(load_served(info.path, quantization="none").model, tokenizer, prompts, eot, n)
    rows["PEFT, full precision (reference)"] = reference
    merged = AutoModelForCausalLM.from_pretrained(result.folder / "merged").eval()
    rows["merged export, transformers"] = parity.hf_greedy(merged, tokenizer, prompts, eot, n)
    del merged
    for gguf in result.files["gguf"]:
        with parity.LlamaServer(llama.tool("llama-server"), gguf) as server:
            rows[f"{gguf.name.split('.')[-2]} GGUF, llama-server"] = [
                server.greedy(tokenizer(p, add_special_tokens=False).input_ids, n) for p in prompts]
    if info.base_model == EMBEDDED_SPEC:
        with parity.LlamaServer(llama.tool("llama-server"), embedded_gguf(), "--lora", str(result.files["lora-gguf"][0])) as server:
            rows["LoRA GGUF on the base Q4_1 GGUF, llama-server"] = [
                server.greedy(tokenizer(p, add_special_tokens=False).input_ids, n) for p in prompts]
    rows["PEFT on the NF4 base (as the bot serves it)"] = parity.hf_greedy(load_served(info.path).model, tokenizer, prompts, eot, n)
    print(f"adapter {info.version} on {info.base_model}, {len(prompts)} prompts, greedy, up to {n} new tokens")
    print(f"{'':48s} {'identical':>9s} {'prefix':>7s} {'ended':>6s} {'tokens':>7s}")
    for name, greedy in rows.items():
        a = parity.agreement(reference, greedy)
        print(f"{name:48s} {a.identical:>5d}/{a.prompts:<3d} {100 * a.prefix_fraction:>6.0f}% "
              f"{sum(g.ended for g in greedy):>3d}/{len(greedy):<2d} {sum(len(g.tokens) for g in greedy):>7d}")
    print(f"(export in {out}; identical: same tokens and same stop; prefix: mean share of each reply before the "
          "first differing token)")


if __name__ == "__main__":
    main()
