"""Objects for the team-isolation walk (tests/test_team_isolation.py).

Every URL kwarg name that appears in any URL pattern needs a factory here: a function
(team, user) -> the kwarg's value, creating an object that belongs to `team`. The walk
then requests the URL as a member of another team and expects 404. A new URL with a
new kwarg name fails the walk until its factory is added: nothing is missed.
"""
from __future__ import annotations

from decimal import Decimal


def provider_id(team, user):
    from apps.proxy.services import provider_save

    return provider_save(team=team, user=user, name="Isolated provider", base_url="http://127.0.0.1:9/v1", api_key="sk-secret-isolation").pk


def price_id(team, user):
    from apps.proxy.services import price_set

    return price_set(team=team, model="isolated-model", input_per_million=Decimal(1), output_per_million=Decimal(2)).pk


def membership_id(team, user):
    return team.memberships.get(user=user).pk


def token_id(team, user):
    from apps.accounts.services import api_token_create

    return api_token_create(user=user, team=team, name="isolated")[0].pk


def run_id(team, user):
    from apps.proxy.models import Run

    return Run.objects.create(team=team, user=user, capability="chat", model="m", output_text="secret output").pk


def prompt_id(team, user):
    from apps.prompts.services import prompt_version_create

    return prompt_version_create(team=team, user=user, name="Isolated prompt", messages=[{"role": "user", "content": "hi"}]).prompt_id


def version_id(team, user):
    from apps.prompts.services import prompt_version_create

    return prompt_version_create(team=team, user=user, name="Isolated prompt v", messages=[{"role": "user", "content": "hi"}]).pk


def set_id(team, user):
    from apps.embeddings.models import TextSet

    return TextSet.objects.create(team=team, created_by=user, name="secret set", texts=["secret text"]).pk


def embedding_id(team, user):
    from apps.embeddings.models import Embedding

    text_set = _text_set_for(team, user)
    return Embedding.objects.create(team=team, user=user, text_set=text_set, model="m", total=1, status="failed", error="secret").pk


def _text_set_for(team, user):
    from apps.embeddings.models import TextSet

    return TextSet.objects.create(team=team, created_by=user, name="secret set", texts=["secret text"])


def training_file_id(team, user):
    from django.core.files.base import ContentFile

    from apps.finetunes.services import training_file_create

    line = b'{"messages": [{"role": "user", "content": "secret"}, {"role": "assistant", "content": "secret answer"}]}\n'
    return training_file_create(team=team, user=user, upload=ContentFile(line, name="secret.jsonl"), filename="secret.jsonl")[0].pk


def ft_job_id(team, user):
    from apps.finetunes.models import FineTuneJob

    return FineTuneJob.objects.create(team=team, base_model="secret-base", status="succeeded", fine_tuned_model="ft:secret").pk


def link_id(team, user):
    from apps.prompts.services import prompt_version_create, share_link_create

    version = prompt_version_create(team=team, user=user, name="secret shared prompt", messages=[{"role": "user", "content": "secret"}])
    return share_link_create(team=team, user=user, version=version).pk


def share_token(team, user):
    from apps.prompts.models import ShareLink

    return ShareLink.objects.get(pk=link_id(team, user)).token


def generation_id(team, user):
    from django.core.files.base import ContentFile

    from apps.images.models import Generation
    from tests.upstream import png_bytes

    generation = Generation(team=team, user=user, model="dall-e-2", operation="variation", prompt="secret prompt", source_name="secret.png")
    generation.source.save("secret.png", ContentFile(png_bytes()), save=False)
    generation.mask.save("secret-mask.png", ContentFile(png_bytes()), save=False)
    generation.save()
    return generation.pk


def image_id(team, user):
    from django.core.files.base import ContentFile

    from apps.images.models import GeneratedImage, Generation
    from tests.upstream import png_bytes

    generation = Generation.objects.get(pk=generation_id(team, user))
    image = GeneratedImage(team=team, generation=generation, revised_prompt="secret revised prompt")
    image.file.save("secret.png", ContentFile(png_bytes()), save=False)
    image.save()
    return image.pk

KWARG_FACTORIES = {
    "link_id": link_id,
    "token": share_token,
    "provider_id": provider_id,
    "price_id": price_id,
    "membership_id": membership_id,
    "token_id": token_id,
    "run_id": run_id,
    "prompt_id": prompt_id,
    "version_id": version_id,
    "set_id": set_id,
    "embedding_id": embedding_id,
    "training_file_id": training_file_id,
    "ft_job_id": ft_job_id,
    "generation_id": generation_id,
    "image_id": image_id,
}

# URL names that are public on purpose (they carry their own signed token), or not
# team-scoped objects at all. Each needs a reason.
NOT_TEAM_SCOPED = {
    "accounts:setup": "first-run page, 404 once a user exists",
    "share:view": "public read-only share link: its unguessable token is the secret (apps/prompts tests)",
    "accounts:login": "sign in",
    "accounts:logout": "sign out",
}


# chat
def conversation_id(team, user):
    from apps.chat.models import Conversation

    return Conversation.objects.create(team=team, user=user, title="secret chat", state={"system": "secret"}).pk


def attachment_id(team, user):
    from apps.chat.services import attachment_create
    from tests.upstream import png_bytes

    return attachment_create(team=team, user=user, filename="secret.png", content=png_bytes()).pk


KWARG_FACTORIES.update({"conversation_id": conversation_id, "attachment_id": attachment_id})


# /v1 (token-authenticated; the walks skip team isolation for it, but name its kwargs)
KWARG_FACTORIES.update({"model": lambda team, user: "gpt-4o-mini", "rest": lambda team, user: "no/such/endpoint"})


# evaluations
def _suite_for(team, user):
    from apps.evals.services import row_add, suite_create

    suite = suite_create(team=team, user=user, name="secret suite", columns=["city"])
    row_add(suite=suite, values={"city": "secret city"})
    return suite


def suite_id(team, user):
    return _suite_for(team, user).pk


def row_id(team, user):
    return _suite_for(team, user).rows.get().pk


def check_id(team, user):
    from apps.evals.services import check_add

    return check_add(suite=_suite_for(team, user), kind="contains", value="secret").pk


def evaluation_id(team, user):
    from apps.evals.models import Evaluation

    suite = _suite_for(team, user)
    return Evaluation.objects.create(team=team, suite=suite, created_by=user, status="succeeded", row_count=1, total=1,
                                     error="secret error").pk


KWARG_FACTORIES.update({"suite_id": suite_id, "row_id": row_id, "check_id": check_id, "evaluation_id": evaluation_id})


# speech
def clip_id(team, user):
    from django.core.files.base import ContentFile

    from apps.proxy.models import Run
    from tests.upstream import wav_bytes

    run = Run.objects.create(team=team, user=user, capability="speech", model="tts-1", status="succeeded",
                             input={"input": "secret words"}, output={"format": "wav"})
    run.output_file.save("secret.wav", ContentFile(wav_bytes()), save=True)
    return run.pk


def transcript_id(team, user):
    from django.core.files.base import ContentFile

    from apps.speech.models import Transcript
    from tests.upstream import wav_bytes

    transcript = Transcript(team=team, user=user, model="whisper-1", filename="secret.wav", status="succeeded",
                            text="secret transcript", segments=[{"start": 0.0, "end": 0.5, "text": "secret transcript"}])
    transcript.audio.save("secret.wav", ContentFile(wav_bytes()), save=False)
    transcript.save()
    return transcript.pk


KWARG_FACTORIES.update({"clip_id": clip_id, "transcript_id": transcript_id})
