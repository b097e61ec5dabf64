"""Training throughput and model FLOPs utilisation (MFU) of the trainer forgegov runs use, on one GPU.

    python bench/gpu_throughput.py --size 350m [--steps 30] [--batch 16] [--seq-len 2048] [--compile]
    python bench/gpu_throughput.py --smoke     # tiny model on the CPU, 3 steps: checks the script still runs

A random-init Llama of the chosen size trains on packed random token blocks through the same trainer class and
settings as `forgegov run start` (forgegov's `CausalLMTrainer` on TRL's `SFTTrainer`, AdamW, bf16 autocast on CUDA,
no activation checkpointing), so the figure is the one a governed run gets, minus data loading. Steps after the
first `--warmup` are timed with a CUDA synchronisation at each end.

MFU = achieved model FLOPs / peak dense bf16 FLOPs of the device, with model FLOPs per token
6·N (weights: forward and backward) + 12·L·d·S (attention scores and values, causal mask not discounted), the
accounting of the PaLM paper's appendix. Peak figures are the vendors' dense bf16 numbers; pass `--peak-tflops`
for another device. Target in the issue: MFU >= 40 % for a 100M-1B model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name: (hidden, intermediate, layers, heads)
SIZES = {
    "tiny": (64, 172, 2, 2),
    "125m": (768, 2048, 12, 12),
    "350m": (1024, 2816, 24, 16),
    "1b": (2048, 5632, 16, 32),
}
VOCAB = 32_000
# Dense bf16 tensor-core peaks (TFLOP/s), by a substring of torch.cuda.get_device_name().
PEAKS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 125.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="350m")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (SFTConfig torch_compile)")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--smoke", action="store_true", help="--size tiny --device cpu --steps 3 --warmup 1 --batch 2 "
                        "--seq-len 64, to check the script still runs without a GPU (overrides those)")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.device, args.steps, args.warmup, args.batch, args.seq_len = "tiny", "cpu", 3, 1, 2, 64
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")

    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback, set_seed
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig

    from forgegov.training.reference.tokenizer import train_tokenizer
    from forgegov.training.trainer import CausalLMTrainer, no_activation_checkpointing

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --smoke (or --device cpu) to check the script on the CPU")
    hidden, intermediate, layers, heads = SIZES[args.size]
    set_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=args.seq_len, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    parameters = sum(p.numel() for p in model.parameters())
    non_embedding = parameters - VOCAB * hidden  # the input embedding is a lookup, not a matmul
    blocks = args.steps * args.batch
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (blocks, args.seq_len), generator=generator).tolist()
    data = Dataset.from_dict({"input_ids": ids, "labels": ids})

    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.global_step in (args.warmup, args.steps):
                if cuda:
                    torch.cuda.synchronize()
                marks[state.global_step] = time.perf_counter()

    trainer_args = SFTConfig(
        output_dir="/tmp/forgegov-gpu-bench", max_steps=args.steps, per_device_train_batch_size=args.batch,
        learning_rate=3e-4, warmup_steps=1, optim="adamw_torch_fused" if cuda else "adamw_torch", bf16=cuda,
        use_cpu=not cuda, report_to="none", save_strategy="no", eval_strategy="no", disable_tqdm=True,
        logging_steps=args.steps, dataloader_num_workers=2 if cuda else 0, max_length=args.seq_len, packing=False,
        torch_compile=args.compile, **no_activation_checkpointing(SFTConfig))
    # The trainer wants a tokenizer for its padding token; the data is already token ids.
    tokenizer = train_tokenizer(["forgegov benchmark text"] * 8, vocab_size=300, max_length=args.seq_len)
    trainer = CausalLMTrainer(model=model, args=trainer_args, train_dataset=data, processing_class=tokenizer,
                              callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)
    trainer.train()

    seconds = marks[args.steps] - marks[args.warmup]
    tokens = (args.steps - args.warmup) * args.batch * args.seq_len
    per_token = 6 * non_embedding + 12 * layers * hidden * args.seq_len
    achieved = per_token * tokens / seconds
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAKS.items() if k in name), None)
    result = {
        "device": name, "size": args.size, "parameters": parameters, "non_embedding_parameters": non_embedding,
        "batch": args.batch, "seq_len": args.seq_len, "timed_steps": args.steps - args.warmup,
        "compile": args.compile, "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
        "model_tflops_per_s": round(achieved / 1e12, 2), "peak_tflops": peak,
        "mfu": round(achieved / (peak * 1e12), 4) if peak else None,
        "max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
