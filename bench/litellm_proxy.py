"""LiteLLM's proxy side by side: installed into its own virtualenv, pointed at the fast upstream.

The virtualenv lives in bench/.venv-litellm (gitignored): created on the first run, reused
after (a stamp file names the pinned version). Nothing but pip talks to the network: the
proxy is told to use its bundled model cost map and to send no telemetry, and the only
model it knows is `openai/bench-model` at the fast upstream on loopback.

Pin: 1.106.0. PyPI also serves 1.106.10 and 1.109.x, but those require certifi>=2026.10.19,
which the package index this machine uses does not have; 1.107.0 was the compromised
release and is gone from PyPI.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

logger = logging.getLogger("bench")
VERSION = "1.106.0"
VENV = Path(__file__).resolve().parent / ".venv-litellm"
STAMP = VENV / "installed.txt"
MASTER_KEY = "sk-bench-litellm"


class Unavailable(Exception):
    """LiteLLM could not be installed or started; the message says why, for the table."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_installed(*, timeout: float = 600) -> tuple[Path, float]:
    """The proxy's executable, and the seconds the install took (0 when reused)."""
    binary = VENV / "bin" / "litellm"
    if STAMP.exists() and STAMP.read_text().strip() == VERSION and binary.exists():
        return binary, 0.0
    logger.info("installing litellm[proxy]==%s into %s (first run; capped at %d s) ...", VERSION, VENV, timeout)
    started = time.monotonic()
    try:
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120, capture_output=True)
        remaining = max(30.0, timeout - (time.monotonic() - started))
        done = subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", f"litellm[proxy]=={VERSION}"],
            timeout=remaining, capture_output=True, text=True,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"pip install litellm[proxy]=={VERSION} took over {timeout:.0f} s") from None
    except subprocess.CalledProcessError as exc:
        raise Unavailable(f"could not create the virtualenv: {exc.stderr[-300:]}") from None
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise Unavailable(f"pip install litellm[proxy]=={VERSION} failed: {' '.join(errors)[-400:] or done.stderr[-400:]}")
    if not binary.exists():
        raise Unavailable("litellm installed but has no `litellm` command")
    STAMP.write_text(VERSION + "\n")
    return binary, time.monotonic() - started


class LiteLLM:
    """`litellm --config` on a loopback port, one worker, no database, a master key."""

    def __init__(self, binary: Path, upstream_port: int) -> None:
        self.binary = binary
        self.upstream_port = upstream_port
        self.dir = Path(tempfile.mkdtemp(prefix="playground-bench-litellm-"))
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LiteLLM:
        config = self.dir / "config.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: bench-model\n"
            "    litellm_params:\n"
            "      model: openai/bench-model\n"
            f"      api_base: http://127.0.0.1:{self.upstream_port}/v1\n"
            "      api_key: sk-bench\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
            "  drop_params: true\n"
            "general_settings:\n"
            f"  master_key: {MASTER_KEY}\n"
        )
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV")}
        env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR",
                    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "HOME": str(self.dir),
                    "PATH": f"{self.binary.parent}:{env.get('PATH', '')}"})
        self.log = open(self.dir / "litellm.log", "w+")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [str(self.binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(self.port), "--num_workers", "1"],
            cwd=self.dir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/liveliness", timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    tail = self.log.read()[-600:]
                    self.__exit__()
                    raise Unavailable(f"the LiteLLM proxy did not start: {tail}") from None
                time.sleep(0.25)
        self.pid = self._server_pid()
        return self

    def _server_pid(self) -> int:
        """The process that serves: `litellm` may run uvicorn in itself or in one child."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            kids = children.read_text().split()
        except OSError:
            kids = []
        return int(kids[0]) if len(kids) == 1 else self.proc.pid

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
