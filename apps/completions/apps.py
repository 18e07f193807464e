from django.apps import AppConfig


class CompletionsConfig(AppConfig):
    name = "apps.completions"
    label = "completions"
