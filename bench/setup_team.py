"""Run inside the benchmark's own var dir: a user, a team, an API token and a provider
pointing at the fast upstream. Prints the raw token (and nothing else) on stdout."""
from __future__ import annotations

import os
import sys

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    django.setup()
    from django.contrib.auth import get_user_model

    from apps.accounts.services import api_token_create, team_create
    from apps.proxy.services import provider_save

    upstream = sys.argv[1]
    user = get_user_model().objects.create_user(username="bench", password="a-long-bench-password")
    team = team_create(name="Bench", owner=user)
    # The team keeps the local engine (the engine part of the benchmark uses it); its model
    # ids do not clash with the fast upstream's "bench-model".
    provider_save(team=team, user=user, name="Fast upstream", base_url=upstream, api_key="sk-bench")
    print(api_token_create(user=user, team=team, name="bench")[1])


if __name__ == "__main__":
    main()
