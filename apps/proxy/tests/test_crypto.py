"""Provider keys at rest: encrypted, decrypted (cached), and unreadable after a key change."""
from __future__ import annotations

from django.test import override_settings

from apps.proxy import crypto


def test_a_stored_key_reads_back_and_another_secret_cannot_read_it():
    with override_settings(FIELD_ENCRYPTION_KEY="first-secret"):
        token = crypto.encrypt("sk-live-1234")
        assert token != "sk-live-1234" and "sk-live" not in token
        assert crypto.decrypt(token) == "sk-live-1234"
        assert crypto.decrypt(token) == "sk-live-1234"  # now from the cache
    # The cache answers only for the secret that decrypted it: after a change of
    # FIELD_ENCRYPTION_KEY the stored key must be entered again, as without the cache.
    with override_settings(FIELD_ENCRYPTION_KEY="second-secret"):
        assert crypto.decrypt(token) == ""
    with override_settings(FIELD_ENCRYPTION_KEY="first-secret"):
        assert crypto.decrypt(token) == "sk-live-1234"
