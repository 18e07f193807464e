"""completion_plan: the page's form -> one /v1/completions request, or an error naming the fix."""
from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from apps.completions.services import CompletionInputError, completion_plan, prompt_save
from apps.completions.tests.conftest import form
from apps.proxy.models import Provider
from apps.proxy.services import price_set

pytestmark = pytest.mark.django_db(transaction=True)


def plan(team, data, **kwargs):
    return async_to_sync(completion_plan)(team=team, data=data, **kwargs)


def refused(team, data, **kwargs) -> CompletionInputError:
    with pytest.raises(CompletionInputError) as info:
        plan(team, data, **kwargs)
    return info.value


def test_the_form_becomes_the_exact_request(team, upstream, upstream_provider):
    data = form(upstream_provider, prompt="Dear {{ name }},\n", temperature="0.3", top_p="0.9", max_tokens="40",
                stop="\\n\\n\nEND", presence_penalty="0.5", frequency_penalty="-0.5", seed="7", n="2",
                logprobs="on", top_logprobs="3", echo="on", best_of="3", suffix=" Kind regards", var_name="Ada")
    result = plan(team, data)
    assert result.request == {
        "model": "gpt-3.5-turbo-instruct", "prompt": "Dear Ada,\n", "temperature": 0.3, "top_p": 0.9, "max_tokens": 40,
        "stop": ["\n\n", "END"], "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 7, "n": 2,
        "logprobs": 3, "suffix": " Kind regards", "echo": True, "best_of": 3,
    }
    assert result.template == "Dear {{ name }},\n" and result.values == {"name": "Ada"}
    assert result.provider == upstream_provider


def test_a_variable_with_no_value_is_refused_naming_it(team, upstream, upstream_provider):
    error = refused(team, form(upstream_provider, prompt="Translate {{text}} into {{ language }}", var_text="hi", var_language=""))
    assert "'language'" in error.message and "fill in" in error.message and error.field == "var_language"


def test_an_unclosed_placeholder_is_refused_with_its_line(team, upstream, upstream_provider):
    error = refused(team, form(upstream_provider, prompt="Hello\nDear {{name,\n"))
    assert "never closed" in error.message and "line 2" in error.message and error.field == "prompt"


def test_an_empty_prompt_is_refused(team, upstream, upstream_provider):
    assert refused(team, form(upstream_provider, prompt="  \n")).field == "prompt"


def test_a_prompt_over_the_context_window_is_refused_before_sending(team, upstream, upstream_provider):
    # gpt-3.5-turbo-instruct has a 4,096-token window in the catalog.
    error = refused(team, form(upstream_provider, prompt="word " * 4000, max_tokens="500"))
    assert "over the model's 4,096-token context window" in error.message and error.field == "max_tokens"
    assert "Shorten the prompt or lower max tokens" in error.message
    assert upstream.requests_to("/v1/completions") == []


def test_the_teams_context_length_counts_too(team, upstream, upstream_provider):
    upstream.models = ["my-base"]
    price_set(team=team, model="my-base", input_per_million=0, output_per_million=0, context_length=100)
    error = refused(team, form(upstream_provider, model="my-base", prompt="word " * 90, max_tokens="20"))
    assert "100-token context window" in error.message


def test_out_of_range_parameters_name_the_field(team, upstream, upstream_provider):
    assert refused(team, form(upstream_provider, temperature="3")).field == "temperature"
    assert refused(team, form(upstream_provider, logprobs="on", top_logprobs="9")).field == "top_logprobs"
    error = refused(team, form(upstream_provider, n="4", best_of="2"))
    assert error.field == "best_of" and "at least the number of completions" in error.message


def test_a_chat_model_is_refused_with_what_to_pick(team, upstream, upstream_provider):
    error = refused(team, form(upstream_provider, model="gpt-4o-mini"))
    assert "chat model" in error.message and error.field == "model_key"


def test_suffix_is_refused_where_the_model_does_not_take_it(team, upstream, upstream_provider):
    upstream.models = ["davinci-002"]
    error = refused(team, form(upstream_provider, model="davinci-002", suffix="end"))
    assert "does not take a suffix" in error.message and error.field == "suffix"


def test_the_local_engine_refuses_suffix_and_best_of_but_takes_echo(team):
    local = Provider.objects.get(team=team, kind="local")
    assert "local engine does not insert text" in refused(team, form(local, model="gemma-3-270m", suffix="x")).message
    assert refused(team, form(local, model="gemma-3-270m", best_of="3")).field == "best_of"
    result = plan(team, form(local, model="gemma-3-270m", echo="on", n="2", best_of="2"))
    assert result.request["echo"] is True and result.request["best_of"] == 2


def test_another_teams_provider_is_not_found(team, other_team, upstream, upstream_provider):
    local_of_other = Provider.objects.get(team=other_team, kind="local")
    error = refused(team, form(local_of_other, model="gemma-3-270m"))
    assert "does not exist in your team" in error.message


def test_save_as_prompt_keeps_the_template_and_versions_an_opened_prompt(team, owner, upstream, upstream_provider):
    data = form(upstream_provider, prompt="Q: {{question}}\nA:", temperature="0.2", stop="\\n")
    first = prompt_save(team=team, user=owner, name="Quiz", plan=plan(team, data, fill_variables=False))
    assert first.mode == "completion" and first.text == "Q: {{question}}\nA:" and first.model == "gpt-3.5-turbo-instruct"
    assert first.params == {"temperature": 0.2, "max_tokens": 16, "stop": ["\n"]} and first.number == 1
    again = prompt_save(team=team, user=owner, name="", plan=plan(team, {**data, "version": str(first.pk)}, fill_variables=False))
    assert again.prompt_id == first.prompt_id and again.number == 2
    # A broken placeholder is refused even when saving the template.
    assert refused(team, form(upstream_provider, prompt="{{ oops"), fill_variables=False).field == "prompt"
