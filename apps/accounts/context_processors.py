from __future__ import annotations

from apps.accounts.selectors import memberships_for_user


def team(request):
    """The current team and the user's other teams, for the switcher in base.html."""
    user = getattr(request, "user", None)
    if not user or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "current_membership": membership or None,
        "current_team": membership.team if membership else None,
        "user_memberships": memberships_for_user(user=user),
    }
