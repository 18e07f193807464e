"""Proxy pages: providers, prices, the model index, the tokenizer and the live token count."""
from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.decorators import team_required
from apps.accounts.models import Role
from apps.accounts.selectors import team_get_object_or_404
from apps.proxy import services, tokens
from apps.proxy.errors import ProxyError
from apps.proxy.forms import PriceForm, ProviderForm, TokenizerForm, format_pairs
from apps.proxy.models import ModelPrice
from apps.proxy.selectors import model_index, provider_get, providers_for_team


# -- providers -----------------------------------------------------------------------------

@team_required(write_role=Role.OWNER)
def providers(request):
    return render(request, "proxy/providers.html", {"providers": providers_for_team(team=request.team)})


@team_required(role=Role.OWNER)
def provider_edit(request, provider_id: int | None = None):
    provider = provider_get(team=request.team, provider_id=provider_id) if provider_id else None
    if provider and provider.is_local:
        messages.info(request, "The local engine needs no settings: manage its models on the Local engine page.")
        return redirect("/engine/")
    initial = {}
    if provider:
        initial = {
            "name": provider.name, "base_url": provider.base_url, "auth_style": provider.auth_style,
            "extra_headers": format_pairs(provider.extra_headers), "query_params": format_pairs(provider.query_params),
            "organization": provider.organization, "project": provider.project, "enabled": provider.enabled,
        }
    form = ProviderForm(request.POST or None, initial=initial or {"enabled": True})
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.provider_save(team=request.team, user=request.user, provider=provider, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in getattr(exc, "message_dict", {None: exc.messages}).items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Provider {saved.name} saved. Use “Test connection” to check it.")
            return redirect("proxy:providers")
    return render(request, "proxy/provider_form.html", {"form": form, "provider": provider})


@team_required(role=Role.OWNER)
@require_POST
def provider_delete(request, provider_id: int):
    provider = provider_get(team=request.team, provider_id=provider_id)
    try:
        services.provider_delete(provider=provider)
        messages.success(request, f"Provider {provider.name} removed. Its past runs are kept.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("proxy:providers")


@team_required(write_role=Role.EDITOR)
@require_POST
def provider_test(request, provider_id: int):
    """List the provider's models, or say exactly what failed (htmx partial)."""
    provider = provider_get(team=request.team, provider_id=provider_id)
    try:
        models = async_to_sync(services.provider_test)(provider=provider)
    except ProxyError as exc:
        return render(request, "proxy/_provider_test.html", {"provider": provider, "error": exc})
    return render(request, "proxy/_provider_test.html", {"provider": provider, "models": models})


# -- prices --------------------------------------------------------------------------------

@team_required(write_role=Role.OWNER)
def prices(request):
    form = PriceForm(request.POST or None)
    form.instance.team = request.team
    if request.method == "POST" and form.is_valid():
        services.price_set(team=request.team, **form.cleaned_data)
        messages.success(request, f"Price for {form.cleaned_data['model']} saved.")
        return redirect("proxy:prices")
    from apps.proxy.catalog import KNOWN_MODELS

    return render(
        request,
        "proxy/prices.html",
        {"form": form, "prices": ModelPrice.objects.filter(team=request.team), "known": sorted(KNOWN_MODELS.items())},
    )


@team_required(role=Role.OWNER)
@require_POST
def price_delete(request, price_id: int):
    price = team_get_object_or_404(ModelPrice, team=request.team, pk=price_id)
    price.delete()
    messages.success(request, f"Price for {price.model} removed; the built-in price applies again.")
    return redirect("proxy:prices")


# -- models ----------------------------------------------------------------------------------

@team_required()
def models(request):
    index = async_to_sync(model_index)(team=request.team, refresh=bool(request.GET.get("refresh")))
    return render(request, "proxy/models.html", {"index": index})


# -- tokens ----------------------------------------------------------------------------------

@team_required(write_role=Role.VIEWER)
def tokenizer(request):
    form = TokenizerForm(request.POST or request.GET or None)
    text, encoding = "", tokens.ENCODINGS[0]
    if form.is_valid():
        text = form.cleaned_data["text"] or ""
        model = form.cleaned_data.get("model")
        encoding = tokens.encoding_name_for_model(model) if model else (form.cleaned_data["encoding"] or encoding)
    # Five alternating colours, as OpenAI's tokenizer shows them.
    pieces = [(tid, piece, i % 5) for i, (tid, piece) in enumerate(tokens.tokenize(text, encoding=encoding))] if text else []
    context = {"form": form, "pieces": pieces, "encoding": encoding, "text": text, "chars": len(text)}
    if request.htmx:
        return render(request, "proxy/tokenizer.html#result", context)
    return render(request, "proxy/tokenizer.html", context)


@team_required(write_role=Role.VIEWER)
def token_count(request):
    """Live token count for every editor: text or chat messages, plus the context check.

    POST (form or JSON): text | messages (JSON list), model, encoding, max_tokens,
    context_length. JSON back, or the context-check fragment for htmx.
    """
    data = request.POST.dict() if request.POST else {}
    if not data and request.body and request.content_type == "application/json":
        try:
            data = json.loads(request.body)
        except json.JSONDecodeError:
            return HttpResponseBadRequest("Send JSON or form data.")
    if not data:
        data = request.GET.dict()
    model = data.get("model") or ""
    if data.get("model_key"):  # pickers submit "<provider id>:<model id>"
        model = data["model_key"].partition(":")[2]
    encoding = data.get("encoding") or tokens.encoding_name_for_model(model)
    if encoding not in tokens.ENCODINGS:
        return JsonResponse({"error": f"Unknown encoding; choose one of {', '.join(tokens.ENCODINGS)}."}, status=400)
    messages_data = data.get("messages")
    if isinstance(messages_data, str) and messages_data:
        try:
            messages_data = json.loads(messages_data)
        except json.JSONDecodeError:
            return JsonResponse({"error": "messages must be a JSON list of {role, content}."}, status=400)
    if messages_data:
        count = tokens.count_messages(messages_data, encoding=encoding)
    else:
        count = tokens.count_text(data.get("text") or "", encoding=encoding)
    max_tokens = _int(data.get("max_tokens"))
    context_length = _int(data.get("context_length")) or (services.context_length_for(team=request.team, model=model) if model else None)
    check = services.context_check(prompt_tokens=count, max_tokens=max_tokens, context_length=context_length)
    check["encoding"] = encoding
    check["tokens"] = count
    if request.htmx:
        return render(request, "proxy/_context_check.html", {"check": check})
    return JsonResponse(check)


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
