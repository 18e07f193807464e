"""Reads scoped to a team: the one place where team isolation is enforced.

Every object read for a page or an API call goes through `team_get_object_or_404` (or a
selector built on it): an object of another team is a 404, never a 403 that would leak
that it exists.
"""
from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import Http404

from apps.accounts.models import Membership, Team

M = TypeVar("M", bound=Model)


def team_get_object_or_404(queryset: QuerySet[M] | type[M], *, team: Team, team_field: str = "team", **lookup) -> M:
    qs = queryset.objects.all() if isinstance(queryset, type) else queryset
    try:
        return qs.get(**{team_field: team}, **lookup)
    except (qs.model.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No {qs.model._meta.verbose_name} found.") from None


def memberships_for_user(*, user) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("team").order_by("team__name")


def membership_get(*, user, team_id: int | None) -> Membership | None:
    """The user's membership in `team_id`, else their first team's, else None."""
    memberships = memberships_for_user(user=user)
    if team_id is not None:
        found = memberships.filter(team_id=team_id).first()
        if found:
            return found
    return memberships.first()


def team_members(*, team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")
