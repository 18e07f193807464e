"""The completions websocket against the test upstream over real HTTP and the real local engine."""
from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from apps.completions.tests.conftest import form
from apps.proxy.models import Provider, Run, RunStatus
from tests.upstream import Reply, completion_chunks

pytestmark = pytest.mark.django_db(transaction=True)
COMPLETIONS = "POST /v1/completions"


async def runs():
    return await sync_to_async(lambda: list(Run.objects.order_by("id")))()


async def test_run_streams_the_completion_after_the_prompt_escaped(owner, team, upstream, upstream_provider, completions_connect):
    upstream.script(COMPLETIONS, Reply.stream(completion_chunks([" upon", " a <b>", " time"])))
    client = await completions_connect(owner, team)
    await client.send(form(upstream_provider, prompt="Once {{what}}", var_what="<i>"))
    frames = await client.until("data-run-button")
    await client.close()
    (run,) = await runs()
    assert run.status == RunStatus.SUCCEEDED and run.output_text == " upon a <b> time" and run.capability == "completion"
    # The opening frame: the prompt (escaped, variables filled) and an empty completion to fill; Stop.
    opening = client.frames[0]
    assert "Once &lt;i&gt;" in opening and f'id="out-{run.pk}-0"' in opening and "data-stop-button" in opening
    assert f'hx-swap-oob="beforeend:#out-{run.pk}-0"' in frames and "a &lt;b&gt;" in frames and "a <b>" not in frames
    final = client.frames[-1]
    assert 'hx-swap-oob="outerHTML"' in final and "cmp-out" in final and f"run #{run.pk}" in final
    assert "in</span>" in final and "TTFT" in final  # the numbers under the answer
    sent = upstream.requests_to("/v1/completions")[0].json
    assert sent["prompt"] == "Once <i>" and sent["stream"] is True and sent["max_tokens"] == 16
    assert run.input == {"prompt": "Once <i>"}


async def test_stop_keeps_the_partial_completion_and_closes_the_upstream_request(owner, team, upstream, upstream_provider, completions_connect):
    upstream.script(COMPLETIONS, Reply.stream(completion_chunks([" upon", " a", " time", " there"]), stall_after=2))
    client = await completions_connect(owner, team)
    await client.send(form(upstream_provider))
    await client.until(" a</div>")  # the second piece has streamed in
    await client.send({"action": "stop"})
    final = await client.until("data-run-button")
    await client.close()
    assert await asyncio.to_thread(upstream.wait_for_disconnect)
    (run,) = await runs()
    assert run.status == RunStatus.CANCELLED and run.output_text == " upon a"
    assert " upon a" in final and "Cancelled" in final


async def test_a_closed_tab_cancels_the_run_and_keeps_what_arrived(owner, team, upstream, upstream_provider, completions_connect):
    upstream.script(COMPLETIONS, Reply.stream(completion_chunks([" upon", " a", " time"]), stall_after=1))
    client = await completions_connect(owner, team)
    await client.send(form(upstream_provider))
    await client.until(" upon</div>")
    await client.close()
    assert await asyncio.to_thread(upstream.wait_for_disconnect)
    (run,) = await runs()
    assert run.status == RunStatus.CANCELLED and run.output_text == " upon"


async def test_an_upstream_error_mid_stream_keeps_the_partial_text_and_shows_the_error(owner, team, upstream, upstream_provider, completions_connect):
    upstream.script(COMPLETIONS, Reply.stream(completion_chunks([" upon", " a", " time"]), drop_after=2))
    client = await completions_connect(owner, team)
    await client.send(form(upstream_provider))
    final = await client.until("data-run-button")
    await client.close()
    (run,) = await runs()
    assert run.status == RunStatus.FAILED and run.output_text == " upon a"
    assert "run-error" in final and " upon a" in final


async def test_bad_input_is_refused_before_sending_with_the_field_named(owner, team, upstream, upstream_provider, completions_connect):
    client = await completions_connect(owner, team)
    await client.send(form(upstream_provider, prompt="Hi {{ name }}"))
    missing = await client.until("chat-errors")
    await client.send(form(upstream_provider, prompt="word " * 4000, max_tokens="500"))
    overflow = await client.until("chat-errors")
    await client.close()
    assert "no value for &#x27;name&#x27;" in missing and 'data-field="var_name"' in missing
    assert "context window" in overflow and 'data-field="max_tokens"' in overflow
    assert upstream.requests_to("/v1/completions") == [] and await runs() == []


async def test_a_viewer_cannot_run(viewer, team, upstream, upstream_provider, completions_connect):
    client = await completions_connect(viewer, team)
    await client.send(form(upstream_provider))
    frames = await client.until("chat-errors")
    await client.close()
    assert "viewer" in frames and await runs() == []


async def test_logprobs_from_the_local_base_model_become_a_heat_map_over_the_completion(owner, team, completions_connect):
    local = await sync_to_async(Provider.objects.get)(team=team, kind="local")
    client = await completions_connect(owner, team)
    await client.send(form(local, model="gemma-3-270m", prompt="The three primary colours are", max_tokens="8",
                           temperature="0", logprobs="on", top_logprobs="3"))
    final = await client.until("data-run-button", timeout=120)
    await client.close()
    (run,) = await runs()
    assert run.status == RunStatus.SUCCEEDED and run.output_text and run.completion_tokens
    assert run.params["logprobs"] == 3 and run.output["choices"][0]["logprobs"]
    assert 'class="cmp-out heat"' in final and 'class="lp lp-' in final and "data-tip=" in final
    assert "The three primary colours are" in final


async def test_n_choices_stream_side_by_side_and_echo_shows_the_prompt_once(owner, team, upstream, upstream_provider, completions_connect):
    base = {"id": "cmpl-n", "object": "text_completion", "created": 1700000000, "model": "gpt-3.5-turbo-instruct"}

    def chunk(index, text, finish=None):
        return {**base, "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish}]}

    upstream.script(COMPLETIONS, Reply.stream([
        chunk(0, "Roses are red,"), chunk(1, "Roses are red,"), chunk(0, " violets"), chunk(1, " poppies"),
        chunk(0, "", "stop"), chunk(1, "", "length"),
    ]))
    client = await completions_connect(owner, team)
    await client.send(form(upstream_provider, prompt="Roses are red,", n="2", echo="on", suffix=" too."))
    frames = await client.until("data-run-button")
    await client.close()
    (run,) = await runs()
    opening = client.frames[0]
    assert f'id="out-{run.pk}-0"' in opening and f'id="out-{run.pk}-1"' in opening and "Completion 2" in opening
    assert f"beforeend:#out-{run.pk}-1" in frames
    final = client.frames[-1]
    # Echo: the prompt is shown as the prompt, only the new text as the completion; the suffix after it.
    assert '<span class="cmp-out" data-out> violets</span>' in final and '<span class="cmp-out" data-out> poppies</span>' in final
    assert final.count('<span class="cmp-prompt-text">Roses are red,</span>') == 2 and "cmp-suffix" in final
    assert "· length" in final and "Continue from completion 2" in final
    sent = upstream.requests_to("/v1/completions")[0].json
    assert sent["n"] == 2 and sent["echo"] is True and sent["suffix"] == " too."
