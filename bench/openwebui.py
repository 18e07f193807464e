"""Open WebUI: could it be installed here, side by side, in under 10 minutes?

A full install is not attempted: `pip download open-webui --no-deps` into a temporary
directory (time-capped) fetches the wheel alone; its metadata says what a full install
would pull in. Then (unless skipped) pip resolves the full install without installing
(`--dry-run --ignore-installed --report`, time-capped), which says how many packages it
would be and whether torch and NVIDIA's CUDA wheels are among them. The table reports the
times, sizes and counts, and why Open WebUI has no column.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

logger = logging.getLogger("bench")
HEAVY = ("torch", "transformers", "sentence-transformers", "chromadb", "onnxruntime", "opencv-python",
         "opencv-python-headless", "langchain", "langchain-community", "faster-whisper", "pymilvus", "qdrant-client",
         "playwright", "accelerate", "unstructured", "rapidocr-onnxruntime", "tiktoken", "pandas", "numpy")


def resolve(*, timeout: float) -> dict:
    """What `pip install open-webui` would install here, resolved but not installed."""
    tmp = Path(tempfile.mkdtemp(prefix="playground-bench-openwebui-resolve-"))
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--dry-run", "--ignore-installed",
             "--report", str(tmp / "report.json"), "open-webui"],
            timeout=timeout, capture_output=True, text=True,
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
            return {"resolve_s": seconds, "resolve_error": (" ".join(errors) or done.stderr)[-300:]}
        import json

        names = [i["metadata"]["name"].lower() for i in json.loads((tmp / "report.json").read_text())["install"]]
        return {"resolve_s": seconds, "packages": len(names), "torch": "torch" in names,
                "cuda_wheels": sum(1 for n in names if n.startswith("nvidia-"))}
    except subprocess.TimeoutExpired:
        return {"resolve_s": time.monotonic() - started, "resolve_error": f"pip could not resolve it in {timeout:.0f} s"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check(*, timeout: float = 180, resolve_timeout: float = 300) -> dict:
    out: dict = {"installed": False}
    tmp = Path(tempfile.mkdtemp(prefix="playground-bench-openwebui-"))
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--no-deps", "open-webui",
             "-d", str(tmp)],
            timeout=timeout, capture_output=True, text=True,
        )
        out["download_s"] = time.monotonic() - started
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
            out["reason"] = f"pip download open-webui failed: {' '.join(errors)[-300:] or done.stderr[-300:]}"
            return out
        wheels = list(tmp.glob("*.whl"))
        if not wheels:
            out["reason"] = "pip download open-webui gave no wheel"
            return out
        wheel = wheels[0]
        out["wheel"] = wheel.name
        out["wheel_mb"] = wheel.stat().st_size / 2**20
        with zipfile.ZipFile(wheel) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            text = z.read(meta).decode()
        requires = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
        core = [r for r in requires if "extra ==" not in r]
        names = {re.split(r"[ <>=!~;\[(]", r, maxsplit=1)[0].lower().replace("_", "-") for r in core}
        out["version"] = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Version:")), "")
        out["python"] = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                              if line.startswith("Requires-Python:")), "")
        out["dependencies"] = len(core)
        out["heavy"] = sorted(n for n in names if n in HEAVY)
        reason = (f"not installed (a full install was not attempted): the {out['wheel_mb']:.0f} MB wheel alone took "
                  f"{out['download_s']:.0f} s to fetch; it has {len(core)} direct dependencies, heavy ones among them "
                  f"({', '.join(out['heavy']) or 'none'})")
        if resolve_timeout:
            out.update(resolve(timeout=resolve_timeout))
            if "packages" in out:
                reason += (f"; pip took {out['resolve_s']:.0f} s just to resolve a full install: {out['packages']} packages"
                           + (f", torch and {out['cuda_wheels']} NVIDIA CUDA wheels among them (gigabytes)" if out["torch"] else ""))
            else:
                reason += f"; resolving a full install failed after {out['resolve_s']:.0f} s: {out['resolve_error']}"
        reason += (". Open WebUI is a chat UI with its own backend, not an OpenAI-compatible proxy: "
                   "there is no like-for-like proxy figure to put beside Playground's")
        out["reason"] = reason
        return out
    except subprocess.TimeoutExpired:
        out["download_s"] = time.monotonic() - started
        out["reason"] = f"not installed: pip download open-webui --no-deps did not finish in {timeout:.0f} s"
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(result: dict) -> list[str]:
    head = f"Open WebUI {result.get('version', '')}".rstrip()
    return ["", f"{head}: {result.get('reason', 'not checked')}."]
