"""Offline tokenizer data, encodings per model, runs recovery, costs."""
from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from apps.proxy import tokens
from apps.proxy.models import Run, RunStatus
from apps.proxy.services import context_check, cost_of, runs_mark_interrupted


@pytest.mark.parametrize("encoding", tokens.ENCODINGS)
def test_tokenization_is_two_tokens(encoding):
    assert [piece for _, piece in tokens.tokenize(" tokenization", encoding=encoding)] == [" token", "ization"]


def test_o200k_file_matches_the_official_hash():
    assert hashlib.sha256(tokens.o200k_path().read_bytes()).hexdigest() == tokens.O200K_SHA256


def test_rebuilt_o200k_with_wrong_bytes_is_refused(tmp_path):
    vocab = tmp_path / "o200k.vocab"
    vocab.write_bytes(b"\x01\x00\x00\x00" + b"\x01\x00" + b"a" + b"\x00\x00\x00\x00")
    with pytest.raises(tokens.TokenizerDataError, match="not the official"):
        tokens.o200k_from_quicktok(vocab, tmp_path / "out.tiktoken")


@pytest.mark.parametrize("model,encoding", [
    ("gpt-4o", "o200k_base"), ("gpt-4o-mini-2024-07-18", "o200k_base"), ("gpt-4.1-nano", "o200k_base"),
    ("gpt-5", "o200k_base"), ("o3-mini", "o200k_base"), ("gpt-4", "cl100k_base"), ("gpt-4-turbo", "cl100k_base"),
    ("gpt-3.5-turbo", "cl100k_base"), ("text-embedding-3-small", "cl100k_base"),
    ("ft:gpt-3.5-turbo-0125:acme::x1", "cl100k_base"), ("smollm2-135m-instruct", "o200k_base"),
])
def test_encoding_per_model_family(model, encoding):
    assert tokens.encoding_name_for_model(model) == encoding


def test_split_characters_show_their_bytes():
    pieces = tokens.tokenize("🦜", encoding="cl100k_base")
    assert "".join(p for _, p in pieces).startswith("\\x") or pieces[0][1] == "🦜"


def test_context_check_messages():
    ok = context_check(prompt_tokens=100, max_tokens=50, context_length=1000)
    assert ok["fits"] and ok["message"] == "100 prompt + 50 max output = 150 of 1,000 tokens"
    over = context_check(prompt_tokens=900, max_tokens=200, context_length=1000)
    assert not over["fits"] and "by 100" in over["message"]
    unknown = context_check(prompt_tokens=5, max_tokens=None, context_length=None)
    assert unknown["fits"] is None


def test_cost_of():
    assert cost_of(input_price=Decimal("2.5"), output_price=Decimal("10"), prompt_tokens=1000, completion_tokens=500) == Decimal("0.007500")
    assert cost_of(input_price=None, output_price=None, prompt_tokens=10, completion_tokens=10) is None


@pytest.mark.django_db
def test_runs_of_dead_processes_are_marked_interrupted(team, owner):
    import socket

    host = socket.gethostname()
    dead = Run.objects.create(team=team, capability="chat", model="m", output_text="partial", worker=f"{host}:999999")
    alive = Run.objects.create(team=team, capability="chat", model="m", worker=f"{host}:1")  # pid 1 is alive
    elsewhere = Run.objects.create(team=team, capability="chat", model="m", worker="other-host:5")
    done = Run.objects.create(team=team, capability="chat", model="m", status=RunStatus.SUCCEEDED, worker=f"{host}:999999")
    assert runs_mark_interrupted() == 1
    dead.refresh_from_db()
    assert dead.status == RunStatus.INTERRUPTED and dead.output_text == "partial" and "server stopped" in dead.error
    for run in (alive, elsewhere, done):
        status = run.status
        run.refresh_from_db()
        assert run.status == status


@pytest.mark.parametrize("out, ttft, total, rate", [
    (101, 200.0, 1200.0, 101.0),   # streamed: the tokens over the second after the first one
    (23, 777.0, 779.0, 23 / 0.779),  # one burst (a local tool call sent whole): over the whole call
    (0, 100.0, 200.0, None),
    (5, None, None, None),
])
def test_tokens_per_second_is_a_decode_rate_not_a_burst(out, ttft, total, rate):
    run = Run(completion_tokens=out, ttft_ms=ttft, total_ms=total)
    assert run.tokens_per_second == (pytest.approx(rate) if rate is not None else None)
