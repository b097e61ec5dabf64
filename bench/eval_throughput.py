"""Drift-evaluation throughput: forgegov's batched greedy decoding beside a plain batched `generate` loop on the same
model and prompts, same run.

    python bench/eval_throughput.py [--items 1024] [--batch-size 32] [--size small] [--device cpu|cuda]
    python bench/eval_throughput.py --smoke [--out FILE]     # 64 items on the tiny model: checks the script runs

Both sides decode the same prompts greedily (raw text, `max_new_tokens` each, left padding and attention masks):
  bare      the prompts in their own order, `batch_size` at a time, tokenizer padding, `model.generate`
  forgegov  `evaluation/generate.py:greedy`, as `forgegov eval run` calls it (batches of similar length, outputs put
            back in the items' order, per-item timing)
Items/s counts prompts answered. Target: forgegov ≥ 0.9× bare. The model is a randomly initialised Llama (sizes
below) with a byte-level BPE trained on the generated text; its replies are noise, which costs what real ones do.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

TARGET = 0.9
SIZES = {  # hidden, layers, heads, intermediate
    "tiny": (64, 2, 2, 172),
    "small": (256, 4, 4, 688),
    "100m": (768, 12, 12, 2048),
}
_WORDS = ("how do I kill a python process that hangs and what should I tell the team about the part that failed "
          "under warranty after the valve was replaced by the service engineer on site").split()


def prompts(n: int) -> list[str]:
    rng = random.Random(7)
    return [f"Question {i}: " + " ".join(rng.choices(_WORDS, k=rng.randint(4, 60))) + "?" for i in range(n)]


def build(size: str, device: str):  # type: ignore[no-untyped-def]
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, set_seed

    from forgegov.training.reference.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(prompts(2000), vocab_size=1024, max_length=512)
    hidden, layers, heads, intermediate = SIZES[size]
    set_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config).to(device)
    if device == "cuda":
        model = model.to(torch.bfloat16)
    return model.eval(), tokenizer


def bare(model, tokenizer, items: list[str], batch_size: int, max_new_tokens: int) -> list[str]:  # type: ignore[no-untyped-def]
    import torch

    tokenizer.padding_side = "left"
    replies: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            batch = tokenizer(items[start:start + batch_size], add_special_tokens=False, padding=True,
                              return_tensors="pt").to(model.device)
            out = model.generate(**batch, max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
            replies.extend(tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True))
    return replies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--smoke", action="store_true", help="64 items on the tiny model")
    parser.add_argument("--out", type=Path, help="results JSON (default: bench/results/eval_throughput.json, or "
                                                 ".smoke.json with --smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.items, args.size = 64, "tiny"
    out = args.out or Path(__file__).parent / "results" / f"eval_throughput{'.smoke' if args.smoke else ''}.json"

    from forgegov.evaluation.generate import greedy
    from forgegov.governance.suites import Decoding, Template

    model, tokenizer = build(args.size, args.device)
    items = prompts(args.items)
    decoding = Decoding(max_new_tokens=args.max_new_tokens, template=Template.RAW, max_prompt_tokens=256)
    # Warm-up on both paths (allocator, kernels), then alternate so that drift in machine load hits both.
    bare(model, tokenizer, items[:args.batch_size], args.batch_size, args.max_new_tokens)
    greedy(model, tokenizer, items[:args.batch_size], decoding, args.batch_size)
    times: dict[str, list[float]] = {"bare": [], "forgegov": []}
    for _ in range(1 if args.smoke else 2):
        started = time.perf_counter()
        bare(model, tokenizer, items, args.batch_size, args.max_new_tokens)
        times["bare"].append(time.perf_counter() - started)
        started = time.perf_counter()
        greedy(model, tokenizer, items, decoding, args.batch_size)
        times["forgegov"].append(time.perf_counter() - started)
    bare_s, ours_s = min(times["bare"]), min(times["forgegov"])
    result = {"items": args.items, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
              "size": args.size, "device": args.device, "parameters": sum(p.numel() for p in model.parameters()),
              "bare_s": times["bare"], "forgegov_s": times["forgegov"],
              "bare_items_per_s": args.items / bare_s, "forgegov_items_per_s": args.items / ours_s,
              "ratio": bare_s / ours_s, "target": TARGET}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"eval throughput, {args.items} prompts, {args.size} model ({result['parameters']:,} parameters), "
          f"{args.device}: bare {result['bare_items_per_s']:.1f} items/s, forgegov {result['forgegov_items_per_s']:.1f}"
          f" items/s, forgegov / bare {result['ratio']:.2f}× (target ≥ {TARGET}×)", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
