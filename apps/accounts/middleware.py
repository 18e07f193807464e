"""Puts the signed-in user's current team on the request (chosen with the team switcher)."""
from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from apps.accounts.selectors import membership_get

SESSION_TEAM_KEY = "team_id"


class TeamMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = SimpleLazyObject(lambda: _membership(request))
        return self.get_response(request)


def _membership(request):
    user = request.user
    if not user.is_authenticated:
        return None
    return membership_get(user=user, team_id=request.session.get(SESSION_TEAM_KEY))
