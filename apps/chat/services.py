"""The chat playground's logic: the submitted form -> validated OpenAI requests, and saving.

The page submits plain form fields (over the websocket or by htmx POST). `chat_plan()`
turns them into a ChatPlan: the conversation after the action (a draft appended, or the
tail removed for a regenerate) and one Column per model to run (compare mode has 2-6),
each with the exact OpenAI request body. Every problem a person can fix raises
ChatInputError with a message that says what to fix and the field at fault; nothing is
sent upstream until the whole plan is valid.
"""
from __future__ import annotations

import base64
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from channels.db import database_sync_to_async
from django.core.files.base import ContentFile
from django.db import transaction

from apps.accounts.models import Team
from apps.chat.models import Attachment, Conversation
from apps.proxy import tokens
from apps.proxy.errors import ProxyError
from apps.proxy.models import Capability, Provider, Run
from apps.proxy.selectors import ModelEntry, model_resolve, parse_model_key
from apps.proxy.services import context_check, context_length_for, run_start

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 1_000_000  # a hard cap; the context-window check usually refuses earlier
MAX_MESSAGES = 500
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGES_PER_MESSAGE = 10
MAX_COLUMNS = 6
ROLES = ("user", "assistant", "tool")
IMAGE_TYPES = {  # magic bytes -> content type: what OpenAI's vision models accept
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


class ChatInputError(ValueError):
    """Input a person can fix. `field` names the form field at fault (for focusing it)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# -- parsing the form -------------------------------------------------------------------------

def _list(data: dict[str, Any], key: str) -> list[str]:
    """Form values as a list: htmx sends one value as a string and several as a list."""
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return ["" if v is None else str(v) for v in value]
    return [str(value)]


def _one(data: dict[str, Any], key: str, default: str = "") -> str:
    values = _list(data, key)
    return values[-1].strip() if values else default


def _checked(data: dict[str, Any], key: str) -> bool:
    return _one(data, key).lower() in ("on", "true", "1", "yes")


def _number(data: dict[str, Any], key: str, label: str, *, lo: float, hi: float, integer: bool = False) -> float | int | None:
    raw = _one(data, key)
    if raw == "":
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ChatInputError(f"{label} must be {kind} (got “{raw[:20]}”).", field=key) from None
    if not lo <= value <= hi:
        raise ChatInputError(f"{label} must be between {lo:g} and {hi:g} (got {raw}).", field=key)
    return value


@dataclass
class Message:
    """One message of the page's conversation (system is kept apart)."""

    uid: str
    role: str
    content: str = ""
    images: list[int] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_call_id: str = ""
    runs: list[int] = field(default_factory=list)
    compare: bool = False  # a compare turn waiting for "use this answer": not sent to models

    def as_state(self) -> dict[str, Any]:
        return {
            "uid": self.uid, "role": self.role, "content": self.content, "images": self.images,
            "tool_calls": self.tool_calls, "tool_call_id": self.tool_call_id, "runs": self.runs,
            "compare": self.compare,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Message:
        return cls(
            uid=data.get("uid") or new_uid(), role=data.get("role", "user"), content=data.get("content") or "",
            images=list(data.get("images") or []), tool_calls=list(data.get("tool_calls") or []),
            tool_call_id=data.get("tool_call_id") or "", runs=list(data.get("runs") or []),
            compare=bool(data.get("compare")),
        )


def new_uid() -> str:
    return uuid.uuid4().hex[:12]


def messages_parse(data: dict[str, Any]) -> list[Message]:
    """The page's message list, in page order (each message block submits one of each field)."""
    uids, roles, contents = _list(data, "uid"), _list(data, "role"), _list(data, "content")
    images, tool_calls, tool_call_ids = _list(data, "images"), _list(data, "tool_calls"), _list(data, "tool_call_id")
    runs, compare = _list(data, "runs"), _list(data, "compare_turn")
    if not (len(uids) == len(roles) == len(contents)):
        raise ChatInputError("The page sent an incomplete conversation; reload it and try again.")
    if len(uids) > MAX_MESSAGES:
        raise ChatInputError(f"A conversation can have at most {MAX_MESSAGES} messages.")
    out = []
    for i, uid in enumerate(uids):
        role = roles[i]
        if role not in ROLES:
            raise ChatInputError(f"Message {i + 1} has an unknown role “{role[:20]}”.")
        message = Message(uid=uid or new_uid(), role=role, content=contents[i])
        if i < len(images) and images[i]:
            try:
                message.images = [int(x) for x in images[i].split(",") if x.strip()]
            except ValueError:
                raise ChatInputError("An attached image reference is damaged; remove the image and attach it again.") from None
        if i < len(tool_calls) and tool_calls[i].strip():
            try:
                message.tool_calls = json.loads(tool_calls[i])
            except json.JSONDecodeError:
                raise ChatInputError(f"Message {i + 1}: its tool calls are damaged; regenerate it.") from None
        if i < len(tool_call_ids):
            message.tool_call_id = tool_call_ids[i]
        if i < len(runs) and runs[i]:
            message.runs = [int(x) for x in runs[i].split(",") if x.strip().isdigit()]
        if i < len(compare) and compare[i] == "1":
            message.compare = True
        out.append(message)
    return out


# -- tools and response formats ------------------------------------------------------------------

def tools_parse(text: str) -> list[dict[str, Any]]:
    """The tools editor's JSON: a list of functions, each {name, description, parameters}
    or the full {"type": "function", "function": {...}} shape. Returns the full shape."""
    text = (text or "").strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChatInputError(f"Tools are not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.", field="tools") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ChatInputError("Tools must be a JSON list of functions.", field="tools")
    tools, names = [], set()
    for n, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise ChatInputError(f"Tool {n} must be a JSON object with a name and parameters.", field="tools")
        function = item.get("function") if item.get("type") == "function" else item
        if not isinstance(function, dict):
            raise ChatInputError(f"Tool {n}: “function” must be an object.", field="tools")
        name = function.get("name")
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-" for c in name) or len(name) > 64:
            raise ChatInputError(f"Tool {n} needs a name of letters, digits, _ or - (at most 64).", field="tools")
        if name in names:
            raise ChatInputError(f"Two tools are called {name}; names must be unique.", field="tools")
        names.add(name)
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        schema_check(parameters, what=f"Tool {name}: parameters", field="tools")
        if parameters.get("type") != "object":
            raise ChatInputError(f"Tool {name}: parameters must be a schema of \"type\": \"object\".", field="tools")
        clean = {"name": name, "parameters": parameters}
        if function.get("description"):
            clean["description"] = str(function["description"])
        if "strict" in function:
            clean["strict"] = bool(function["strict"])
        tools.append({"type": "function", "function": clean})
    return tools


def schema_check(schema: Any, *, what: str, field: str) -> None:
    if not isinstance(schema, dict):
        raise ChatInputError(f"{what} must be a JSON Schema object.", field=field)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise ChatInputError(f"{what} is not a valid JSON Schema: {exc.message}" + (f" (at {where})" if where else ""), field=field) from None


def schema_parse(text: str) -> dict[str, Any]:
    text = (text or "").strip()
    if not text:
        raise ChatInputError("json_schema needs a schema: write one in the schema editor.", field="schema")
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChatInputError(f"The schema is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.", field="schema") from None
    schema_check(schema, what="The schema", field="schema")
    return schema


def answer_check(text: str, *, response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """A structured answer parsed, pretty-printed and checked against its schema.

    None for plain text. Otherwise {"ok", "pretty", "errors"}.
    """
    if not response_format or response_format.get("type") not in ("json_object", "json_schema"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return {"ok": False, "pretty": "", "errors": [f"The answer is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."]}
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    errors: list[str] = []
    schema = (response_format.get("json_schema") or {}).get("schema")
    if response_format["type"] == "json_schema" and schema:
        validator = jsonschema.Draft202012Validator(schema)
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))[:10]:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            errors.append(f"{where}: {error.message}")
    return {"ok": not errors, "pretty": pretty, "errors": errors}


# -- images ---------------------------------------------------------------------------------------

def image_type(content: bytes) -> str | None:
    for magic, content_type in IMAGE_TYPES.items():
        if content.startswith(magic):
            return content_type
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


@transaction.atomic
def attachment_create(*, team: Team, user, filename: str, content: bytes) -> Attachment:
    """Store an image for a message. Refuses what is not a PNG, JPEG, GIF or WebP, or is over 20 MB."""
    if len(content) > MAX_IMAGE_BYTES:
        raise ChatInputError(f"{filename or 'The image'} is {len(content) / 1024 / 1024:.1f} MB; images can be at most 20 MB.", field="image")
    if not content:
        raise ChatInputError(f"{filename or 'The file'} is empty.", field="image")
    content_type = image_type(content)
    if content_type is None:
        raise ChatInputError(f"{filename or 'The file'} is not an image: attach a PNG, JPEG, GIF or WebP.", field="image")
    attachment = Attachment(team=team, user=user if getattr(user, "is_authenticated", False) else None,
                            filename=(filename or "image")[:200], content_type=content_type, size=len(content))
    attachment.file.save(f"{uuid.uuid4().hex}.{content_type.split('/')[1]}", ContentFile(content), save=False)
    attachment.save()
    return attachment


def attachment_data_urls(*, team: Team, ids: list[int]) -> dict[int, str]:
    found = {}
    for attachment in Attachment.objects.filter(team=team, pk__in=ids):
        with attachment.file.open("rb") as f:
            found[attachment.pk] = f"data:{attachment.content_type};base64," + base64.b64encode(f.read()).decode()
    missing = set(ids) - set(found)
    if missing:
        raise ChatInputError("An attached image is no longer available; attach it again.", field="image")
    return found


# -- the plan ----------------------------------------------------------------------------------

@dataclass
class Column:
    """One model call of a run: the provider, what we know of the model, the request."""

    provider: Provider
    entry: ModelEntry | None
    model_key: str
    request: dict[str, Any]
    label: str


@dataclass
class ChatPlan:
    conversation_id: int | None
    system: str
    messages: list[Message]  # the conversation as it will be after this action
    removed: list[str]  # uids of messages dropped from the page (regenerate)
    added: Message | None  # the draft, appended as a user message
    columns: list[Column]
    params: dict[str, Any]  # the form's settings, kept with the conversation
    response_format: dict[str, Any] | None = None


PARAM_FIELDS = (
    "model_key", "temperature", "top_p", "max_tokens", "stop", "presence_penalty", "frequency_penalty",
    "seed", "n", "logprobs", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls", "tool_results_json",
    "response_format", "schema", "schema_name", "schema_strict", "compare",
)


def params_from_form(data: dict[str, Any]) -> dict[str, Any]:
    params = {key: _one(data, key) for key in PARAM_FIELDS if key in data}
    params["columns"] = [
        {"model_key": m, "temperature": t}
        for m, t in zip(_list(data, "col_model_key"), _list(data, "col_temperature") + [""] * 10)
    ]
    return params


def sampling_params(data: dict[str, Any]) -> dict[str, Any]:
    """Sampling parameters from the form, range-checked. Blank fields are left out."""
    out: dict[str, Any] = {}
    checks = [
        ("temperature", "Temperature", 0, 2, False), ("top_p", "Top P", 0, 1, False),
        ("presence_penalty", "Presence penalty", -2, 2, False), ("frequency_penalty", "Frequency penalty", -2, 2, False),
        ("max_tokens", "Max tokens", 1, 10_000_000, True), ("seed", "Seed", -(2**63), 2**63 - 1, True),
        ("n", "Number of choices (n)", 1, 8, True),
    ]
    for key, label, lo, hi, integer in checks:
        value = _number(data, key, label, lo=lo, hi=hi, integer=integer)
        if value is not None:
            out[key] = value
    if out.get("n") == 1:
        del out["n"]
    stops = [s for s in (line.replace("\\n", "\n") for line in _one(data, "stop").split("\n")) if s]
    if len(stops) > 4:
        raise ChatInputError("At most 4 stop sequences (one per line).", field="stop")
    if stops:
        out["stop"] = stops
    if _checked(data, "logprobs"):
        out["logprobs"] = True
        top = _number(data, "top_logprobs", "Top logprobs", lo=0, hi=20, integer=True)
        if top:
            out["top_logprobs"] = top
    return out


def response_format_parse(data: dict[str, Any]) -> dict[str, Any] | None:
    kind = _one(data, "response_format", "text") or "text"
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = schema_parse(_one(data, "schema"))
        name = _one(data, "schema_name") or "answer"
        if not all(c.isalnum() or c in "_-" for c in name) or len(name) > 64:
            raise ChatInputError("The schema name can use letters, digits, _ and - (at most 64).", field="schema_name")
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": _checked(data, "schema_strict")}}
    raise ChatInputError(f"Unknown response format “{kind[:20]}”.", field="response_format")


def _tool_checks(messages: list[Message], *, results_json: bool) -> None:
    names = {}
    for message in messages:
        for call in message.tool_calls:
            names[call.get("id")] = (call.get("function") or {}).get("name", "the tool")
    for message in messages:
        if message.role != "tool":
            continue
        name = names.get(message.tool_call_id, "the tool")
        if not message.content.strip():
            raise ChatInputError(f"Type the result of {name} ({message.tool_call_id}) before continuing.", field=f"m-{message.uid}")
        if results_json:
            try:
                json.loads(message.content)
            except json.JSONDecodeError as exc:
                raise ChatInputError(
                    f"The result of {name} ({message.tool_call_id}) is not valid JSON: {exc.msg} at line {exc.lineno}, "
                    f"column {exc.colno}. Fix it, or untick “Tool results are JSON”.",
                    field=f"m-{message.uid}",
                ) from None


def openai_messages(*, system: str, messages: list[Message], images: dict[int, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if system.strip():
        out.append({"role": "system", "content": system})
    for m in messages:
        if m.compare:
            continue
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": m.content or None}
            if m.tool_calls:
                item["tool_calls"] = m.tool_calls
            elif item["content"] is None:
                item["content"] = ""
            out.append(item)
        elif m.images:
            parts: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            parts += [{"type": "image_url", "image_url": {"url": images[i]}} for i in m.images]
            out.append({"role": "user", "content": parts})
        else:
            out.append({"role": "user", "content": m.content})
    return out


def _check_messages(messages: list[Message]) -> None:
    sendable = [m for m in messages if not m.compare]
    if not any(m.content.strip() or m.images or m.tool_calls for m in sendable):
        raise ChatInputError("Add a message first: type it in the box below, then Run.", field="draft")
    for n, m in enumerate(sendable, 1):
        if len(m.content) > MAX_MESSAGE_CHARS:
            raise ChatInputError(
                f"Message {n} is {len(m.content):,} characters; the limit is {MAX_MESSAGE_CHARS:,}. Shorten it.", field=f"m-{m.uid}"
            )
        if m.role == "user" and not m.content.strip() and not m.images:
            raise ChatInputError(f"Message {n} (user) is empty: type something or delete it.", field=f"m-{m.uid}")
        if len(m.images) > MAX_IMAGES_PER_MESSAGE:
            raise ChatInputError(f"Message {n} has {len(m.images)} images; at most {MAX_IMAGES_PER_MESSAGE}.", field=f"m-{m.uid}")


def _apply_action(data: dict[str, Any], messages: list[Message]) -> tuple[list[Message], list[str], Message | None]:
    action = _one(data, "action", "run") or "run"
    if action == "regenerate":
        uid = _one(data, "from")
        index = next((i for i, m in enumerate(messages) if m.uid == uid), None)
        if index is None:
            raise ChatInputError("That message is no longer on the page; reload and try again.")
        cut = index if messages[index].role == "assistant" else index + 1
        return messages[:cut], [m.uid for m in messages[cut:]], None
    drafts = _list(data, "draft")
    draft = drafts[-1] if drafts and drafts[-1].strip() else ""  # sent as typed, not stripped
    draft_images = [int(x) for x in _one(data, "draft_images").split(",") if x.strip().isdigit()]
    if draft or draft_images:
        added = Message(uid=new_uid(), role="user", content=draft, images=draft_images)
        return [*messages, added], [], added
    return messages, [], None


async def chat_plan(*, team: Team, data: dict[str, Any]) -> ChatPlan:
    """Validate the submitted form and build the request for every model to run."""
    messages = messages_parse(data)
    messages, removed, added = _apply_action(data, messages)
    # A compare turn still waiting for a pick cannot be continued from: pick an answer first.
    if any(m.compare for m in messages):
        raise ChatInputError("Pick one of the compared answers (“Use this answer”) before continuing.")
    system = "\n".join(_list(data, "system")) if len(_list(data, "system")) > 1 else _one(data, "system")
    _check_messages(messages)
    _tool_checks(messages, results_json=_checked(data, "tool_results_json"))
    sampling = sampling_params(data)
    tools = tools_parse(_one(data, "tools"))
    response_format = response_format_parse(data)

    image_ids = sorted({i for m in messages for i in m.images})
    images = await database_sync_to_async(attachment_data_urls)(team=team, ids=image_ids) if image_ids else {}
    body_messages = openai_messages(system=system, messages=messages, images=images)

    keys = [_one(data, "model_key")]
    overrides: list[dict[str, Any]] = [{}]
    if _checked(data, "compare"):
        for key, temp in zip(_list(data, "col_model_key"), _list(data, "col_temperature") + [""] * MAX_COLUMNS):
            if not key.strip():
                continue
            keys.append(key.strip())
            over = {}
            if temp.strip():
                over = sampling_params({"temperature": temp})
            overrides.append(over)
        if len(keys) < 2:
            raise ChatInputError("Compare needs at least one more column: add a model to compare with.", field="compare")
        if len(keys) > MAX_COLUMNS:
            raise ChatInputError(f"Compare at most {MAX_COLUMNS} columns at once.", field="compare")

    short = len(system) + sum(len(m.content) for m in messages) + len(_one(data, "tools")) <= INLINE_COUNT_LIMIT
    columns = []
    for key, over in zip(keys, overrides):
        try:
            provider_id, model = parse_model_key(key)
            provider, entry = await model_resolve(team=team, model=model, provider_id=provider_id)
        except ProxyError as exc:
            raise ChatInputError(exc.message, field="model_key") from None
        request: dict[str, Any] = {"model": model, "messages": body_messages, **sampling, **over}
        if tools:
            request["tools"] = tools
            choice = _one(data, "tool_choice", "auto") or "auto"
            if choice in ("auto", "none", "required"):
                if choice != "auto":
                    request["tool_choice"] = choice
            elif choice in {t["function"]["name"] for t in tools}:
                request["tool_choice"] = {"type": "function", "function": {"name": choice}}
            else:
                raise ChatInputError(f"tool_choice names {choice}, which is not one of your tools.", field="tool_choice")
            if not _checked(data, "parallel_tool_calls"):
                request["parallel_tool_calls"] = False
        if response_format:
            request["response_format"] = response_format
        _capability_checks(entry, model=model, request=request, images=bool(images))
        if entry is None or not short:
            # The database (for a model the index does not know) or a long count: off the loop.
            await database_sync_to_async(_context_checks)(team=team, model=model, entry=entry, request=request)
        else:
            _context_checks(team=team, model=model, entry=entry, request=request)
        label = model if len(keys) == 1 else (f"{model} · t={over['temperature']}" if "temperature" in over else model)
        columns.append(Column(provider=provider, entry=entry, model_key=key, request=request, label=label))
    params = params_from_form(data)
    return ChatPlan(
        conversation_id=_int(_one(data, "conversation")), system=system, messages=messages, removed=removed,
        added=added, columns=columns, params=params, response_format=response_format,
    )


def _capability_checks(entry: ModelEntry | None, *, model: str, request: dict[str, Any], images: bool) -> None:
    """Refuse what a model is known not to do. Unknown models: the upstream decides."""
    if entry is None or not entry.known:
        return
    caps = entry.capabilities
    if images and "vision" not in caps:
        raise ChatInputError(f"{model} does not accept images: remove the image or pick a model with vision (e.g. gpt-4o).", field="model_key")
    if request.get("tools") and "tools" not in caps:
        raise ChatInputError(f"{model} does not support function calling: clear the tools or pick another model.", field="tools")
    if request.get("logprobs") and "logprobs" not in caps:
        raise ChatInputError(f"{model} does not return logprobs: untick Logprobs.", field="logprobs")
    if (request.get("response_format") or {}).get("type") == "json_schema" and "json_schema" not in caps:
        raise ChatInputError(f"{model} does not support structured output (json_schema): choose text or json_object.", field="response_format")
    if "reasoning" in caps:
        for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
            if key in request and not (key == "temperature" and request[key] == 1):
                raise ChatInputError(f"{model} is a reasoning model and does not take {key.replace('_', ' ')}: clear it.", field=key)
        if "max_tokens" in request:
            request["max_completion_tokens"] = request.pop("max_tokens")


# Token counts of requests up to this many characters run on the event loop (well under a
# millisecond); longer ones go to a thread so other streams are not held up.
INLINE_COUNT_LIMIT = 20_000


def _context_checks(*, team: Team, model: str, entry: ModelEntry | None, request: dict[str, Any]) -> None:
    # A listed model's entry already holds what the team's table, the catalog and the
    # engine say about its context window; only an unlisted one needs the database.
    context_length = entry.context_length if entry else context_length_for(team=team, model=model)
    if not context_length:
        return
    prompt = tokens.count_messages(request["messages"], model=model)
    if request.get("tools"):
        prompt += tokens.count_text(json.dumps(request["tools"]), model=model)
    check = context_check(prompt_tokens=prompt, max_tokens=request.get("max_tokens") or request.get("max_completion_tokens"), context_length=context_length)
    if check["fits"] is False:
        raise ChatInputError(f"{model}: {check['message']}", field="max_tokens")


def _int(value: str) -> int | None:
    return int(value) if value and value.isdigit() else None


# -- saving ------------------------------------------------------------------------------------

def conversation_title(messages: list[Message]) -> str:
    for m in messages:
        if m.role == "user" and m.content.strip():
            text = " ".join(m.content.split())
            return text[:80] + ("…" if len(text) > 80 else "")
    return "New chat"


@transaction.atomic
def conversation_save(
    *, team: Team, user, conversation_id: int | None, system: str, messages: list[Message], params: dict[str, Any]
) -> Conversation:
    """Create or update the conversation shown on reload (scoped to the team)."""
    conversation = None
    if conversation_id:
        conversation = Conversation.objects.select_for_update().filter(team=team, pk=conversation_id).first()
    if conversation is None:
        conversation = Conversation(team=team, user=user if getattr(user, "is_authenticated", False) else None)
    conversation.state = {"system": system, "messages": [m.as_state() for m in messages], "params": params}
    conversation.title = conversation_title(messages)
    conversation.save()
    return conversation


@transaction.atomic
def turn_save(
    *, team: Team, user, plan: ChatPlan, uid: str, group: str = "", prompt_version_id: int | None = None,
) -> tuple[Conversation, list[Run]]:
    """A turn's one database trip: a Run per column, and the conversation with the new
    (empty) assistant message that lists them. It runs while the model calls start."""
    runs = [
        run_start(team=team, user=user, capability=Capability.CHAT, provider=column.provider,
                  model=column.request.get("model", ""), request=column.request, group=group,
                  prompt_version_id=prompt_version_id)
        for column in plan.columns
    ]
    conversation = conversation_save(
        team=team, user=user, conversation_id=plan.conversation_id, system=plan.system,
        messages=[*plan.messages, Message(uid=uid, role="assistant", runs=[run.pk for run in runs])], params=plan.params,
    )
    return conversation, runs


@transaction.atomic
def conversation_message_update(*, conversation_id: int, uid: str, **changes: Any) -> None:
    """Record an answer (content, tool calls, runs) on one message once its runs finish."""
    conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
    if conversation is None:
        return
    for message in conversation.state.get("messages", []):
        if message.get("uid") == uid:
            message.update(changes)
            break
    else:
        conversation.state.setdefault("messages", []).append({"uid": uid, **changes})
    conversation.save(update_fields=["state", "updated_at"])


def conversation_messages_append(*, conversation_id: int, messages: list[Message]) -> None:
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
        if conversation is None:
            return
        conversation.state.setdefault("messages", []).extend(m.as_state() for m in messages)
        conversation.save(update_fields=["state", "updated_at"])


def prompt_save(*, team: Team, user, name: str, plan: ChatPlan, prompt=None):
    """Save the conversation and parameters as a new prompt (the prompts library's version),
    or as the next version of `prompt` (then `name` is the commit message)."""
    from apps.prompts.services import prompt_version_create

    column = plan.columns[0]
    request = column.request
    messages = [m for m in request["messages"]]
    params = {k: v for k, v in request.items() if k not in ("model", "messages", "tools", "response_format")}
    return prompt_version_create(
        team=team, user=user, prompt=prompt, name=name or conversation_title(plan.messages), messages=messages,
        provider=column.provider, model=request["model"], params=params, tools=request.get("tools") or [],
        response_format=request.get("response_format"),
        commit_message=(name if prompt is not None and name else "Saved from the chat playground"),
    )
