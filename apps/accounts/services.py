"""Writes for accounts: first-run setup, teams, members, API tokens."""
from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import ApiToken, Membership, Role, Team, hash_token

logger = logging.getLogger(__name__)
User = get_user_model()


def setup_needed() -> bool:
    """True until the first user exists: the one-time setup page is open only then."""
    return not User.objects.exists()


def _unique_slug(name: str) -> str:
    base = slugify(name)[:90] or "team"
    slug, n = base, 1
    while Team.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def team_create(*, name: str, owner) -> Team:
    """A new team with `owner` as its owner and the local engine as its first provider."""
    from apps.proxy.services import provider_ensure_local

    team = Team.objects.create(name=name.strip(), slug=_unique_slug(name))
    Membership.objects.create(team=team, user=owner, role=Role.OWNER)
    provider_ensure_local(team=team)
    logger.info("team %s created by %s", team.slug, owner.username)
    return team


@transaction.atomic
def owner_setup(*, username: str, password: str, email: str = "", team_name: str = "My team"):
    """First run: create the owner and their team. Refused once any user exists."""
    if not setup_needed():
        raise PermissionDenied("Setup is already done: sign in instead.")
    user = User(username=username, email=email, is_staff=True, is_superuser=True)
    validate_password(password, user)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    team = team_create(name=team_name, owner=user)
    from apps.proxy.services import provider_from_environment

    provider_from_environment(team=team)
    return user, team


@transaction.atomic
def member_add(*, team: Team, username: str, role: str, password: str = "", email: str = "") -> Membership:
    """Add an existing user to the team, or create the account when a password is given."""
    if role not in Role.values:
        raise ValidationError({"role": f"Role must be one of {', '.join(Role.values)}."})
    user = User.objects.filter(username=username).first()
    if user is None:
        if not password:
            raise ValidationError({"password": f"No user '{username}' exists yet: give a password to create the account."})
        user = User(username=username, email=email)
        validate_password(password, user)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save()
    membership, created = Membership.objects.get_or_create(team=team, user=user, defaults={"role": role})
    if not created:
        raise ValidationError({"username": f"{username} is already a member of {team.name}."})
    return membership


@transaction.atomic
def member_set_role(*, membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Role must be one of {', '.join(Role.values)}."})
    if membership.role == Role.OWNER and role != Role.OWNER:
        _ensure_another_owner(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def member_remove(*, membership: Membership) -> None:
    if membership.role == Role.OWNER:
        _ensure_another_owner(membership)
    membership.delete()


def _ensure_another_owner(membership: Membership) -> None:
    others = Membership.objects.filter(team=membership.team, role=Role.OWNER).exclude(pk=membership.pk)
    if not others.exists():
        raise ValidationError("A team needs at least one owner: make someone else owner first.")


@transaction.atomic
def api_token_create(*, user, team: Team, name: str) -> tuple[ApiToken, str]:
    """Returns the token row and the raw token, which is shown once and never stored."""
    raw = ApiToken.generate()
    token = ApiToken.objects.create(
        user=user, team=team, name=name.strip() or "API token", token_hash=hash_token(raw), hint=raw[-4:]
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def api_token_authenticate(*, raw: str) -> ApiToken | None:
    """The live token for `raw`, or None (unknown, revoked, or its user left the team)."""
    if not raw or not raw.startswith(ApiToken.PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user", "team")
        .filter(token_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None or not Membership.objects.filter(team=token.team, user=token.user).exists():
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token
