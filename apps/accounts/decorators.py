"""Team and role checks for views: one decorator, used by every page."""
from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect

from apps.accounts.models import Role

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def team_required(role: str = Role.VIEWER, *, write_role: str = Role.EDITOR):
    """Sign-in and team membership; sets request.team.

    `role` is needed for every request; `write_role` for POST/PUT/PATCH/DELETE, so a viewer
    can open a playground but not run or save in it (403 says why).
    """

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = request.membership
            if not membership:
                return redirect("accounts:team_create")
            needed = role if request.method in SAFE_METHODS else max(role, write_role, key=_rank)
            if not membership.allows(needed):
                raise PermissionDenied(f"Your role in {membership.team.name} is {membership.role}; this needs {needed}.")
            request.team = membership.team
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _rank(role: str) -> int:
    return [Role.VIEWER, Role.EDITOR, Role.OWNER].index(Role(role))
