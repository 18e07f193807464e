"""“View code”: the exact request as curl, Python (openai SDK) and Node (openai package).

The key is always read from an environment variable, never written into the snippet.
Reusable by any page that holds an OpenAI request body:

    from apps.chat.code import request_code, key_env_for
    snippets = request_code(body, base_url=provider.base_url, key_env=key_env_for(provider))
    snippets["curl"], snippets["python"], snippets["node"]

`endpoint` is "chat/completions" (default) or any other path under the base URL
("completions", "embeddings" ...); the SDK call is chosen from it.
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_INLINE_DATA_URL = 200  # a pasted 5 MB image would drown the snippet: shortened, and said so

SDK_CALLS = {
    "chat/completions": ("client.chat.completions.create", "client.chat.completions.create"),
    "completions": ("client.completions.create", "client.completions.create"),
    "embeddings": ("client.embeddings.create", "client.embeddings.create"),
    "images/generations": ("client.images.generate", "client.images.generate"),
    "audio/speech": ("client.audio.speech.create", "client.audio.speech.create"),
}


def key_env_for(provider) -> str:
    """The environment variable a snippet reads the key from, named after the provider."""
    if provider is None or getattr(provider, "is_local", False):
        return "PLAYGROUND_API_KEY"
    if "api.openai.com" in (provider.base_url or ""):
        return "OPENAI_API_KEY"
    name = re.sub(r"[^A-Z0-9]+", "_", provider.name.upper()).strip("_") or "PROVIDER"
    return f"{name}_API_KEY"


def _shorten(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str):
        if value.startswith("data:") and len(value) > MAX_INLINE_DATA_URL:
            return value[: value.find(",") + 1] + "<base64 image data>", True
        return value, False
    if isinstance(value, list):
        items = [_shorten(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    if isinstance(value, dict):
        items = {k: _shorten(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(s for _, s in items.values())
    return value, False


def _py(value: Any, indent: int = 0) -> str:
    """A Python literal (True/False/None, not JSON's true/false/null)."""
    pad, inner = "    " * indent, "    " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{\n" + "".join(f"{inner}{json.dumps(k)}: {_py(v, indent + 1)},\n" for k, v in value.items()) + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + "".join(f"{inner}{_py(v, indent + 1)},\n" for v in value) + pad + "]"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if value is None:
        return "None"
    return json.dumps(value, ensure_ascii=False)


def request_code(request: dict[str, Any], *, base_url: str, key_env: str = "OPENAI_API_KEY",
                 endpoint: str = "chat/completions", stream: bool = False) -> dict[str, str]:
    """{"curl", "python", "node"}: runnable snippets sending `request` to `base_url`."""
    body, shortened = _shorten({k: v for k, v in request.items() if k != "stream"})
    if stream:
        body["stream"] = True
    note = "# Images are shortened here: put the full data URL back before running.\n" if shortened else ""
    base_url = base_url.rstrip("/")
    is_openai = base_url in ("https://api.openai.com/v1", "")
    body_json = json.dumps(body, indent=2, ensure_ascii=False)
    curl = (
        f"{note}curl {base_url}/{endpoint} \\\n"
        f'  -H "Content-Type: application/json" \\\n'
        f'  -H "Authorization: Bearer ${key_env}" \\\n'
        f"  -d @- <<'JSON'\n{body_json}\nJSON"
    )
    py_call, js_call = SDK_CALLS.get(endpoint, SDK_CALLS["chat/completions"])
    client_args = f'api_key=os.environ["{key_env}"]' + ("" if is_openai else f', base_url="{base_url}"')
    kwargs = "".join(f"    {k}={_py(v, 1)},\n" for k, v in body.items())
    python = (
        f"{note}import os\n\nfrom openai import OpenAI\n\nclient = OpenAI({client_args})\n\n"
        f"response = {py_call}(\n{kwargs})\n"
        + ("for chunk in response:\n    print(chunk)\n" if stream else "print(response)\n")
    )
    js_client = f"apiKey: process.env.{key_env}" + ("" if is_openai else f', baseURL: "{base_url}"')
    js_body = "\n".join("  " + line for line in body_json.splitlines()).lstrip()
    node = (
        f"{note.replace('#', '//')}import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ {js_client} }});\n\n"
        f"const response = await {js_call}({js_body});\n"
        + ("for await (const chunk of response) console.log(chunk);\n" if stream else "console.log(response);\n")
    )
    return {"curl": curl, "python": python, "node": node}
