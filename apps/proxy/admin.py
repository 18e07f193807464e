from django.contrib import admin

from apps.proxy.models import ModelPrice, Provider, Run


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "kind", "base_url", "key_hint", "enabled"]
    exclude = ["api_key_encrypted"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "team", "user", "capability", "model", "status", "cost", "created_at"]
    list_filter = ["status", "capability"]


admin.site.register(ModelPrice)
