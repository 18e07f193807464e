from __future__ import annotations

from django import forms

from apps.accounts.models import Role


class SetupForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, min_length=10, help_text="At least 10 characters.")
    team_name = forms.CharField(max_length=100, initial="My team", label="Team name")


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100, label="Team name")


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.EDITOR)
    password = forms.CharField(
        widget=forms.PasswordInput, required=False, help_text="Only to create a new account."
    )
    email = forms.EmailField(required=False)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, initial="My script")
