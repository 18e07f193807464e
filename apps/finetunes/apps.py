from django.apps import AppConfig


class FinetunesConfig(AppConfig):
    name = "apps.finetunes"
    label = "finetunes"

    def ready(self) -> None:
        # Tuned local models join the engine's model list and answer in chat. Registering
        # is cheap (no torch import); the background worker starts from
        # apps.proxy.startup.on_server_start, so management commands never start it.
        from apps.engine import extensions
        from apps.finetunes.serving import source

        extensions.register_source(source)
