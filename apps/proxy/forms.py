from __future__ import annotations

import json

from django import forms

from apps.proxy.models import AuthStyle, ModelPrice
from apps.proxy.tokens import ENCODINGS


def parse_pairs(text: str, *, what: str) -> dict[str, str]:
    """'Name: value' lines (or a JSON object) into a dict, naming the line that is wrong."""
    text = (text or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"{what}: invalid JSON at line {exc.lineno}: {exc.msg}.") from None
        if not isinstance(data, dict):
            raise forms.ValidationError(f"{what}: expected a JSON object.")
        return {str(k): str(v) for k, v in data.items()}
    pairs = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise forms.ValidationError(f"{what}, line {number}: write it as 'Name: value'.")
        pairs[name.strip()] = value.strip()
    return pairs


def format_pairs(pairs: dict[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in (pairs or {}).items())


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=60, help_text="Shown in model pickers, e.g. OpenAI, vLLM on gpu-1, Azure EU.")
    base_url = forms.URLField(
        max_length=500, label="Base URL", assume_scheme="https",
        help_text="The API root, usually ending in /v1: https://api.openai.com/v1, http://localhost:11434/v1 (Ollama), http://localhost:8000/v1 (vLLM).",
    )
    api_key = forms.CharField(
        required=False, label="API key", widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted, never shown again. Leave blank to keep the current key.",
    )
    clear_key = forms.BooleanField(required=False, label="Remove the stored key")
    auth_style = forms.ChoiceField(choices=AuthStyle.choices, initial=AuthStyle.BEARER, label="Send the key as")
    extra_headers = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2, "class": "code"}),
        help_text="Optional, one per line: 'Header-Name: value'.",
    )
    query_params = forms.CharField(
        required=False, label="Query parameters", widget=forms.Textarea(attrs={"rows": 1, "class": "code"}),
        help_text="Optional, one per line, e.g. 'api-version: 2024-10-21' for Azure OpenAI.",
    )
    organization = forms.CharField(required=False, max_length=100, help_text="Optional OpenAI organization id.")
    project = forms.CharField(required=False, max_length=100, help_text="Optional OpenAI project id.")
    enabled = forms.BooleanField(required=False, initial=True)

    def clean_extra_headers(self):
        return parse_pairs(self.cleaned_data["extra_headers"], what="Extra headers")

    def clean_query_params(self):
        return parse_pairs(self.cleaned_data["query_params"], what="Query parameters")


class PriceForm(forms.ModelForm):
    class Meta:
        model = ModelPrice
        fields = ["model", "input_per_million", "output_per_million", "context_length"]
        help_texts = {"model": "An exact model id, or a prefix ending in * (e.g. llama-3*)."}


class TokenizerForm(forms.Form):
    text = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 8}))
    encoding = forms.ChoiceField(choices=[(e, e) for e in ENCODINGS], initial=ENCODINGS[0], required=False)
    model = forms.CharField(required=False, max_length=200)
