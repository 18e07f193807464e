"""The provider interface: one small async class per provider kind.

Streaming is just iteration. `chat()` and `completion()` are async generators that yield
the provider's chunks in the OpenAI wire shape (`chat.completion.chunk` and
`text_completion` objects, as dicts), parsed once from the upstream bytes. That shape *is*
the typed event stream: a chunk carries text deltas, tool-call deltas, logprobs, usage and
finish reasons, and /v1 can pass it on without building a second object per chunk (the
performance targets in DESIGN.md allow well under 0.07 ms of CPU per chunk). Anything
that is not an upstream chunk is a small dataclass below (QueuePosition), so consumers
tell them apart with `isinstance(event, dict)`.

`apps.proxy.stream.StreamAccumulator` folds chunks into the final answer; capability apps
never parse chunks themselves.

Every method a provider cannot do raises ProxyError(code="not_supported") with a message
that says which kind of provider to add instead. Never a placeholder result.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apps.proxy.errors import not_supported

if TYPE_CHECKING:
    from apps.proxy.models import Provider as ProviderRow

Chunk = dict[str, Any]


@dataclass(slots=True)
class QueuePosition:
    """The request waits behind `position` others for a model slot (local engine)."""

    position: int


@dataclass(slots=True)
class AudioResult:
    """Synthesised speech."""

    audio: bytes
    content_type: str
    format: str
    duration_s: float | None = None


@dataclass(slots=True)
class Upload:
    """A file passed to a provider (audio, image, training data)."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


StreamEvent = Chunk | QueuePosition


@dataclass
class Provider:
    """Base class. Subclasses override what they can do.

    Instances are cheap and hold no connections: the pooled HTTP client lives in
    apps.proxy.http, the engine's models in apps.engine.runtime.
    """

    row: ProviderRow
    kind: str = field(init=False, default="")
    label: str = field(init=False, default="")

    @property
    def name(self) -> str:
        return self.row.name

    def _unsupported(self, what: str, instead: str = "an OpenAI or OpenAI-compatible provider") -> Exception:
        return not_supported(
            f"{self.name} ({self.label or self.kind}) cannot do {what}. Add {instead} in Settings -> Providers."
        )

    # -- models -----------------------------------------------------------------------
    async def list_models(self) -> list[dict[str, Any]]:
        """OpenAI model objects: {"id", "object": "model", "owned_by", ...}."""
        raise self._unsupported("model listing")

    # -- text ---------------------------------------------------------------------------
    def chat(self, request: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        """Stream a chat completion. `request` is the OpenAI request body (stream implied)."""
        raise self._unsupported("chat completions")

    def completion(self, request: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        """Stream a legacy text completion (prompt in, text out)."""
        raise self._unsupported("text completions")

    async def embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        """The OpenAI embeddings response ({"data": [{"embedding": [...]}], "usage": ...})."""
        raise self._unsupported("embeddings")

    # -- audio --------------------------------------------------------------------------
    async def speech(self, request: dict[str, Any]) -> AudioResult:
        raise self._unsupported("text to speech")

    async def voices(self, model: str) -> list[str]:
        """Voices a text-to-speech model offers (for the page's picker)."""
        return []

    async def transcription(self, upload: Upload, params: dict[str, Any], *, translate: bool = False) -> dict[str, Any] | str:
        """Speech to text. A dict for json/verbose_json, text for text/srt/vtt."""
        raise self._unsupported("speech to text")

    # -- images -------------------------------------------------------------------------
    async def image_generate(self, request: dict[str, Any]) -> dict[str, Any]:
        raise self._unsupported("image generation")

    async def image_edit(self, image: Upload, mask: Upload | None, params: dict[str, Any]) -> dict[str, Any]:
        raise self._unsupported("image edits")

    async def image_variation(self, image: Upload, params: dict[str, Any]) -> dict[str, Any]:
        raise self._unsupported("image variations")

    # -- files and fine-tuning ------------------------------------------------------------
    async def file_upload(self, upload: Upload, purpose: str) -> dict[str, Any]:
        raise self._unsupported("file uploads")

    async def file_delete(self, file_id: str) -> dict[str, Any]:
        raise self._unsupported("file deletion")

    async def finetune_create(self, request: dict[str, Any]) -> dict[str, Any]:
        raise self._unsupported("fine-tuning")

    async def finetune_retrieve(self, job_id: str) -> dict[str, Any]:
        raise self._unsupported("fine-tuning")

    async def finetune_cancel(self, job_id: str) -> dict[str, Any]:
        raise self._unsupported("fine-tuning")

    async def finetune_events(self, job_id: str, *, after: str | None = None) -> list[dict[str, Any]]:
        raise self._unsupported("fine-tuning")

    async def finetune_checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        raise self._unsupported("fine-tuning")
