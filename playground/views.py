from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import redirect

from apps.accounts.services import setup_needed


def home(request):
    if not request.user.is_authenticated:
        if setup_needed():
            from django.shortcuts import render

            return render(request, "accounts/setup_link.html", status=200)
        return redirect("accounts:login")
    return redirect("/chat/")


def healthz(request):
    return JsonResponse({"ok": True})
