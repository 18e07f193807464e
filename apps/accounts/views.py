"""Accounts pages: first-run setup, sign in, teams and members, API tokens."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts import ratelimit, services
from apps.accounts.decorators import team_required
from apps.accounts.forms import ApiTokenForm, MemberAddForm, RoleForm, SetupForm, TeamForm
from apps.accounts.middleware import SESSION_TEAM_KEY
from apps.accounts.models import ApiToken, Membership, Role
from apps.accounts.selectors import memberships_for_user, team_get_object_or_404, team_members

SETUP_SALT = "playground.setup"
LOGIN_LIMIT = 10  # failed sign-ins per address and username ...
LOGIN_WINDOW = 300  # ... per 5 minutes


class RateLimitedLoginView(auth_views.LoginView):
    """Sign in, refusing guessing: after LOGIN_LIMIT failures, 429 until the window ends."""

    template_name = "accounts/login.html"

    def _key(self) -> str:
        username = (self.request.POST.get("username") or "").strip().lower()
        return f"login:{self.request.META.get('REMOTE_ADDR', '')}:{username}"

    def post(self, request, *args, **kwargs):
        if ratelimit.peek(self._key(), window=LOGIN_WINDOW) >= LOGIN_LIMIT:
            response = render(request, "accounts/login.html", {"form": self.get_form(), "locked": True}, status=429)
            response["Retry-After"] = str(LOGIN_WINDOW)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        ratelimit.hit(self._key(), limit=LOGIN_LIMIT, window=LOGIN_WINDOW)
        return super().form_invalid(form)

    def form_valid(self, form):
        ratelimit.reset(self._key(), window=LOGIN_WINDOW)
        return super().form_valid(form)


def setup_token() -> str:
    """The token in the one-time setup link that `make run` prints."""
    return signing.dumps("setup", salt=SETUP_SALT)


def _form_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def setup(request):
    if not services.setup_needed():
        raise Http404("Setup is done.")
    try:
        signing.loads(request.GET.get("token", ""), salt=SETUP_SALT)
    except signing.BadSignature:
        return render(request, "accounts/setup_link.html", status=403)
    form = SetupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user, team = services.owner_setup(**form.cleaned_data)
        except ValidationError as exc:
            _form_errors(form, exc)
        except PermissionDenied:
            raise Http404("Setup is done.") from None
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[SESSION_TEAM_KEY] = team.pk
            messages.success(request, f"Welcome, {user.username}. The local engine is ready; add an OpenAI key in Providers.")
            return redirect("/")
    return render(request, "accounts/setup.html", {"form": form})


@login_required
def team_create(request):
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = services.team_create(name=form.cleaned_data["name"], owner=request.user)
        request.session[SESSION_TEAM_KEY] = team.pk
        messages.success(request, f"Team {team.name} created.")
        return redirect("accounts:team")
    return render(request, "accounts/team_create.html", {"form": form, "memberships": memberships_for_user(user=request.user)})


@login_required
@require_POST
def team_switch(request):
    membership = memberships_for_user(user=request.user).filter(team_id=request.POST.get("team")).first()
    if membership is None:
        raise Http404("No such team.")
    request.session[SESSION_TEAM_KEY] = membership.team_id
    return redirect(request.POST.get("next") or "/") if _safe(request, request.POST.get("next")) else redirect("/")


def _safe(request, url: str | None) -> bool:
    from django.utils.http import url_has_allowed_host_and_scheme

    return bool(url) and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()})


@team_required(write_role=Role.OWNER)
def team(request):
    form = MemberAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            membership = services.member_add(team=request.team, **form.cleaned_data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"{membership.user.username} added as {membership.role}.")
            return redirect("accounts:team")
    return render(
        request,
        "accounts/team.html",
        {"form": form, "members": team_members(team=request.team), "roles": Role.choices},
    )


@team_required(role=Role.OWNER)
@require_POST
def member_role(request, membership_id: int):
    membership = team_get_object_or_404(Membership, team=request.team, pk=membership_id)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            services.member_set_role(membership=membership, role=form.cleaned_data["role"])
            messages.success(request, f"{membership.user.username} is now {form.cleaned_data['role']}.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return redirect("accounts:team")


@team_required(role=Role.OWNER)
@require_POST
def member_remove(request, membership_id: int):
    membership = team_get_object_or_404(Membership, team=request.team, pk=membership_id)
    try:
        services.member_remove(membership=membership)
        messages.success(request, f"{membership.user.username} removed from {request.team.name}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("accounts:team")


@team_required(write_role=Role.VIEWER)
def api_tokens(request):
    """Personal tokens for /v1. The raw token is shown once, right after creation."""
    form = ApiTokenForm(request.POST or None)
    raw = None
    if request.method == "POST" and form.is_valid():
        _, raw = services.api_token_create(user=request.user, team=request.team, name=form.cleaned_data["name"])
    tokens = ApiToken.objects.filter(user=request.user, team=request.team)
    return render(request, "accounts/api_tokens.html", {"form": form, "tokens": tokens, "raw_token": raw})


@team_required(write_role=Role.VIEWER)
@require_POST
def api_token_revoke(request, token_id: int):
    token = team_get_object_or_404(ApiToken.objects.filter(user=request.user), team=request.team, pk=token_id)
    services.api_token_revoke(token=token)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("accounts:api_tokens")
