"""What the sandbox costs a reward: calls per second in-process and sandboxed, and GRPO step time with the reward
sandboxed and in-process, same run settings, same process.

    python bench/reward_sandbox.py [--calls 400] [--batch 32] [--steps 20] [--shape reference]
    python bench/reward_sandbox.py --smoke [--out FILE]     # a few calls and steps on a tiny model (seconds)

Rows of the first part, one reward ("share of digits in the completion", pure Python) on the same batches:
  in-process            the function called directly (what TRL does with a plain reward: no isolation at all)
  sandbox, 1 worker     forgegov's Sandbox.call: JSON over a pipe to a reused bubblewrap worker, replies checked
  sandbox, 2 workers    Sandbox.score: the batch split over two workers
  HTTP endpoint         RewardEndpoint.score: Nova's reward-Lambda contract over HTTP to a server on 127.0.0.1 (the
                        standard library's threading server, in this process) scoring with the same function
A third part steps the shipped thermostat environment (examples/environments/thermostat) through episodes of
three tool calls and a reward:
  in-process            the class called directly (what TRL does with a plain environment_factory)
  sandbox               forgegov's Sandbox.request, one request per step, the worker keeping the episode
  sandbox, replaying    the same steps, each sent to a worker that has not seen the episode and replays its calls (the
                        cost after a worker was replaced: the worst case)
The second part trains GRPO twice from the same random-initialised model of the chosen shape (`reference`: the
reference family's 4.2 M-parameter Llama; `tiny`: the test model), the reward once in-process and once through the
sandbox, and compares the median step time. Target: sandbox overhead <= 10 % of a GRPO step on the reference shape.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from forgegov.governance.reward_endpoints import EndpointSpec, RewardEndpoint
from forgegov.governance.sandbox.isolation import SandboxLimits
from forgegov.governance.sandbox.pool import Sandbox

TARGET_OVERHEAD = 0.10
THERMOSTAT = Path(__file__).resolve().parents[1] / "examples" / "environments" / "thermostat"
CODE = '''
def score(prompts, completions, **_):
    return [sum(c.isdigit() for c in text) / max(1, len(text)) for text in completions]
'''
SHAPES = {
    # hidden, intermediate, layers, heads, vocab: the reference family's model (training/reference/model.py) and the
    # tests' tiny one.
    "reference": (256, 688, 4, 4, 4096),
    "tiny": (32, 64, 2, 2, 400),
}


def in_process(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
    return [sum(c.isdigit() for c in text) / max(1, len(text)) for text in completions]


def _batches(calls: int, batch: int) -> list[dict[str, list[str]]]:
    return [{"prompts": [f"Claim {i}:"] * batch, "completions": [f"part ZX-{i * 7 + j} was replaced on day {j}"
                                                                 for j in range(batch)]} for i in range(calls)]


EPISODE = [3, 5, 0]  # the minutes of each episode's three heat calls


def _thermostat() -> Any:
    sys.path.insert(0, str(THERMOSTAT))
    try:
        from thermostat import Thermostat  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(THERMOSTAT))
    return Thermostat


def step_rates(episodes: int) -> list[dict[str, Any]]:
    """Environment steps per second (a reset, three calls, a reward: five steps an episode) in-process and
    sandboxed; every sandboxed result is checked against the in-process one."""
    from forgegov.governance.environments import step_request
    from forgegov.governance.sandbox.isolation import CodeKind

    thermostat = _thermostat()
    started = time.perf_counter()
    expected = []
    for index in range(episodes):
        env = thermostat()
        trace = [env.reset(start=16 + index % 3)] + [env.heat(minutes) for minutes in EPISODE] + [env.get_reward()]
        expected.append(trace)
    seconds = time.perf_counter() - started
    rows = [{"name": "in-process", "steps_per_s": round(episodes * 5 / seconds, 1), "seconds": round(seconds, 6)}]
    for name, fresh in (("sandbox", False), ("sandbox, replaying", True)):
        with tempfile.TemporaryDirectory(prefix="forgegov-bench-env-") as scratch:
            code = Path(scratch) / "code"
            shutil.copytree(THERMOSTAT, code)
            sandboxes = [Sandbox(code, "thermostat:Thermostat", kind=CodeKind.ENVIRONMENT) for _ in range(2)]
            try:
                sandboxes[0].request({"describe": True})
                sandboxes[1].request({"describe": True})
                started = time.perf_counter()
                for index in range(episodes):
                    episode, reset, history = f"e{index}", {"start": 16 + index % 3}, []
                    observation = sandboxes[0].request(step_request(episode, reset, [])).reply["observation"]
                    trace: list[Any] = [observation]
                    for number, minutes in enumerate(EPISODE):
                        # Replaying: alternate workers, so that each step lands where the episode is one call behind.
                        sandbox = sandboxes[(number + 1) % 2] if fresh else sandboxes[0]
                        call = {"tool": "heat", "arguments": {"minutes": minutes}}
                        reply = sandbox.request(step_request(episode, reset, history, observation=observation,
                                                             call=call)).reply
                        history.append({**call, "result": reply["result"]})
                        trace.append(reply["result"])
                    trace.append(sandboxes[0].request(step_request(episode, reset, history, observation=observation,
                                                                   reward=True)).reply["reward"])
                    if trace != expected[index]:
                        raise SystemExit(f"{name} stepped episode {index} differently from the class itself")
                seconds = time.perf_counter() - started
            finally:
                for sandbox in sandboxes:
                    sandbox.close()
        rows.append({"name": name, "steps_per_s": round(episodes * 5 / seconds, 1), "seconds": round(seconds, 4)})
    base = rows[0]["seconds"]
    for row in rows:
        row["ratio"] = round(row["seconds"] / base, 1)
    return rows


def call_rates(code: Path, calls: int, batch: int) -> list[dict[str, Any]]:
    batches = _batches(calls, batch)
    rows = []
    started = time.perf_counter()
    expected = [in_process(**b) for b in batches]
    seconds = time.perf_counter() - started
    rows.append({"name": "in-process", "calls_per_s": round(calls / seconds, 1), "seconds": round(seconds, 4)})
    for workers, name in ((1, "sandbox, 1 worker"), (2, "sandbox, 2 workers")):
        with Sandbox(code, "reward:score", limits=SandboxLimits(), workers=workers) as sandbox:
            sandbox.score(batches[0])  # start the workers: a run pays that once
            started = time.perf_counter()
            got = [sandbox.score(b) if workers > 1 else sandbox.call(b) for b in batches]
            seconds = time.perf_counter() - started
        if [r.scores for r in got] != expected:
            raise SystemExit(f"{name} scored differently from the function itself")
        rows.append({"name": name, "calls_per_s": round(calls / seconds, 1), "seconds": round(seconds, 4)})
    with _contract_server() as url, RewardEndpoint(EndpointSpec(url, "bench", "1")) as endpoint:
        endpoint.score(batches[0])
        started = time.perf_counter()
        got = [endpoint.score(b) for b in batches]
        seconds = time.perf_counter() - started
    if [r.scores for r in got] != expected:
        raise SystemExit("the endpoint scored differently from the function itself")
    rows.append({"name": "HTTP endpoint", "calls_per_s": round(calls / seconds, 1), "seconds": round(seconds, 4)})
    base = rows[0]["seconds"]
    for row in rows:
        row["ratio"] = round(row["seconds"] / base, 2)
    return rows


@contextlib.contextmanager
def _contract_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - the standard library's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            scores = in_process([], [item["messages"][-1]["content"] for item in body])
            data = json.dumps([{"id": item["id"], "aggregate_reward_score": score, "metrics_list": []}
                               for item, score in zip(body, scores, strict=True)]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/score"
    finally:
        server.shutdown()
        server.server_close()


def _model_and_tokenizer(shape: str) -> tuple[Any, Any]:
    from transformers import LlamaConfig, LlamaForCausalLM, set_seed

    from forgegov.training.reference.tokenizer import train_tokenizer

    hidden, intermediate, layers, heads, vocab = SHAPES[shape]
    texts = [f"Claim {i:05d}: the part ZX-{i % 900 + 100} was replaced under warranty after {i % 60} days."
             for i in range(3000)]
    tokenizer = train_tokenizer(texts, vocab_size=vocab, max_length=128)
    set_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=128, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config), tokenizer


class _Timed:
    def __init__(self) -> None:
        self.steps: list[float] = []
        self.last = 0.0

    def callback(self) -> Any:
        from transformers import TrainerCallback

        timed = self

        class StepTimes(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
                timed.last = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
                timed.steps.append(time.perf_counter() - timed.last)

        return StepTimes()


def grpo_steps(code: Path, shape: str, steps: int, batch: int, out_dir: Path) -> dict[str, Any]:
    import datasets
    import transformers
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    prompts = datasets.Dataset.from_dict({"prompt": [f"Claim {i:05d}: the" for i in range(256)]})
    medians = {}
    with Sandbox(code, "reward:score", workers=1) as sandbox:
        def sandboxed(prompts: list[str], completions: list[str], **_: Any) -> list[float | None]:
            result = sandbox.score({"prompts": list(prompts), "completions": list(completions)})
            if not result.ok or result.scores is None:
                raise SystemExit(f"the sandboxed reward failed: {result.detail}")
            return result.scores

        for name, function in (("in-process", in_process), ("sandboxed", sandboxed)):
            model, tokenizer = _model_and_tokenizer(shape)
            set_seed(0)
            config = GRPOConfig(output_dir=str(out_dir / name), max_steps=steps, per_device_train_batch_size=batch,
                                num_generations=4, max_completion_length=16, learning_rate=1e-3, beta=0.0,
                                use_cpu=True, logging_steps=steps, report_to="none", save_strategy="no", seed=0,
                                disable_tqdm=True)
            timed = _Timed()
            function.__name__ = "digits"  # type: ignore[attr-defined]
            trainer = GRPOTrainer(model=model, reward_funcs=[function], args=config, train_dataset=prompts,
                                  processing_class=tokenizer, callbacks=[timed.callback()])
            trainer.remove_callback(PrinterCallback)
            trainer.train()
            medians[name] = statistics.median(timed.steps[1:] or timed.steps)  # the first step warms up
    overhead = medians["sandboxed"] / medians["in-process"] - 1
    return {"shape": shape, "steps": steps, "batch": batch, "num_generations": 4, "max_completion_length": 16,
            "median_step_s": {k: round(v, 4) for k, v in medians.items()}, "overhead": round(overhead, 4),
            "target_overhead": TARGET_OVERHEAD, "met": overhead <= TARGET_OVERHEAD}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="reference")
    parser.add_argument("--smoke", action="store_true", help="a few calls and steps on the tiny shape")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.batch, args.steps, args.shape, args.episodes = 20, 8, 3, "tiny", 10
    with tempfile.TemporaryDirectory(prefix="forgegov-bench-reward-") as scratch:
        code = Path(scratch) / "code"
        code.mkdir()
        (code / "reward.py").write_text(CODE)
        result = {"calls": args.calls, "batch": args.batch, "rows": call_rates(code, args.calls, args.batch),
                  "environment": {"episodes": args.episodes, "rows": step_rates(args.episodes)},
                  "grpo": grpo_steps(code, args.shape, args.steps, 8, Path(scratch) / "grpo")}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
