"""Speech in chromium against the local engine: speak a sentence with Piper's voice, hear
that the player loaded it, upload that WAV to speech to text, see the words with
timestamps and click a segment to play that part. Screenshots go to test-artifacts/<test>/."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.proxy.models import Run
from apps.speech.models import Transcript

pytestmark = pytest.mark.django_db(transaction=True)
from tests.speech_round_trip import SENTENCE, heard_back


def test_speak_then_transcribe_with_timestamps(page, login, owner, team, shot, tmp_path):
    login(page, owner)
    page.goto("/speech/")
    expect(page.locator("#tts-model")).to_have_value(re.compile(r"\d+:piper-joe-medium"))
    expect(page.locator("input[name=voice][value=joe]")).to_be_checked()
    shot(page, "1-tts-empty")
    # A parameter the local voice cannot take is refused with a message that says what to do.
    page.fill("#tts-text", "Hello.")
    page.click("details.more summary")
    page.fill("textarea[name=instructions]", "Speak like a pirate.")
    page.click("#tts-run")
    expect(page.locator("#tts-error")).to_contain_text("does not support the parameter 'instructions'")
    shot(page, "1b-tts-error")
    page.fill("textarea[name=instructions]", "")
    page.fill("#tts-text", SENTENCE)
    page.select_option("#tts-format", "wav")
    page.click("#tts-run")
    player = page.locator("#tts-audio")
    expect(player).to_be_visible(timeout=180_000)
    page.wait_for_function("document.querySelector('#tts-audio').readyState >= 1 && document.querySelector('#tts-audio').duration > 0")
    duration = page.evaluate("document.querySelector('#tts-audio').duration")
    assert 1.5 < duration < 6
    expect(page.locator("#tts-result .speech-stats")).to_contain_text("s audio")
    expect(page.locator("#clip-history .clip-row")).to_have_count(1)
    assert not page.js_errors
    shot(page, "2-tts-spoken")

    clip = Run.objects.get(capability="speech", status="succeeded")
    wav = page.request.get(f"/speech/clips/{clip.pk}/audio?download=1")
    assert wav.ok and wav.body()[:4] == b"RIFF"
    path = tmp_path / "fox.wav"
    path.write_bytes(wav.body())

    page.goto("/speech/transcribe/")
    expect(page.locator("#stt-model")).to_have_value(re.compile(r"\d+:whisper-tiny.en"))
    page.set_input_files("#stt-file", str(path))
    expect(page.locator("#stt-file-name")).to_contain_text("fox.wav")
    page.click(".task-seg label:has-text('Translate')")
    expect(page.locator("#english-only-note")).to_be_visible()
    page.click(".task-seg label:has-text('Transcribe')")
    expect(page.locator("#english-only-note")).to_be_hidden()
    shot(page, "3-stt-ready")
    page.click("#stt-run")
    segments = page.locator(".segment")
    expect(segments.first).to_be_visible(timeout=180_000)
    text = " ".join(segments.locator(".seg-text").all_inner_texts())
    assert heard_back(text), text
    expect(segments.first.locator(".ts")).to_contain_text("0:00.0 →")
    expect(page.locator(".speech-stats")).to_contain_text("RTF")
    shot(page, "4-transcript")

    page.wait_for_function("document.querySelector('#transcript-audio').readyState >= 1")
    segments.first.click()
    expect(segments.first).to_have_class(re.compile(r"\bactive\b"))
    page.wait_for_function("document.querySelector('#transcript-audio').currentTime > 0")
    assert not page.js_errors
    shot(page, "5-segment-playing")
    assert Transcript.objects.get().status == "succeeded"


def test_long_transcription_shows_progress_and_stop_keeps_the_text(page, login, owner, team, upstream, upstream_provider, shot, settings):
    from tests.upstream import Reply, wav_bytes

    settings.SPEECH_CHUNK_SECONDS = 2.0
    parts = [Reply(json={"text": f"Part {i} heard.", "segments": [{"start": 0.0, "end": 1.5, "text": f" Part {i} heard."}]},
                   first_delay=0.8) for i in range(1, 11)]
    upstream.script("POST /v1/audio/transcriptions", *parts)
    path = settings.MEDIA_ROOT.parent / "long.wav"
    path.write_bytes(wav_bytes(seconds=20.0))
    login(page, owner)
    page.goto(f"/speech/transcribe/?model={upstream_provider.pk}:whisper-1")
    page.set_input_files("#stt-file", str(path))
    page.click("#stt-run")
    expect(page.locator("#progress")).to_contain_text("Transcribing")
    expect(page.locator("#progress .partial-text")).to_contain_text("Part 1 heard.", timeout=20_000)
    shot(page, "1-progress")
    page.click("#progress button:has-text('Stop')")
    expect(page.locator("#progress .alert-warn")).to_contain_text("Stopped", timeout=20_000)
    expect(page.locator(".segment").first).to_contain_text("Part 1 heard.")
    shot(page, "2-stopped")
    transcript = Transcript.objects.get()
    assert transcript.status == "cancelled" and transcript.chunks_done < transcript.chunks == 10
    assert transcript.run.status == "cancelled" and transcript.run.completion_tokens  # what was heard is counted
    assert not page.js_errors


def test_record_in_the_browser_with_level_meter_and_timer(browser, live_asgi, login, owner, team, shot):
    """Chromium's fake microphone (a beep) stands in for a voice: the recorder runs, the
    timer and level meter move, the recording becomes the form's file and is transcribed."""
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    fake_mic = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=[
        *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
    try:
        context = fake_mic.new_context(base_url=live_asgi.url, viewport={"width": 1360, "height": 860}, permissions=["microphone"])
        context.set_default_timeout(15_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        login(page, owner)
        page.goto("/speech/transcribe/")
        page.click("#rec-start")
        expect(page.locator("#rec-stop")).to_be_visible()
        expect(page.locator("#rec-time")).to_have_text("0:02", timeout=10_000)
        page.wait_for_function("parseFloat(document.querySelector('#rec-level').style.width) > 0")
        shot(page, "1-recording")
        page.click("#rec-stop")
        expect(page.locator("#stt-file-name")).to_contain_text(re.compile(r"recording-.*\.(webm|ogg|m4a)"))
        expect(page.locator("#rec-status")).to_contain_text("Recorded 0:0")
        assert page.evaluate("document.querySelector('#stt-file').files[0].size") > 1000
        shot(page, "2-recorded")
        page.click("#stt-run")
        expect(page.locator("#progress .speech-stats")).to_be_visible(timeout=180_000)
        transcript = Transcript.objects.get()
        assert transcript.status == "succeeded", transcript.error
        assert transcript.filename.startswith("recording-") and transcript.duration_s > 1.5
        # The recording was rewritten with its length, so the player shows it and can seek.
        page.wait_for_function("isFinite(document.querySelector('#transcript-audio').duration) && document.querySelector('#transcript-audio').duration > 1.5")
        shot(page, "3-transcribed")
        assert not errors
    finally:
        fake_mic.close()
