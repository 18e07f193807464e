"""ASGI entry point: Django for HTTP, Channels consumers for websockets.

Websockets check Origin against ALLOWED_HOSTS and carry the Django session, so consumers
see the same signed-in user as pages.
"""
from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from apps.proxy.v1_asgi import with_v1  # noqa: E402

# /v1 (bearer-token API) skips the pages' sync middleware: see apps/proxy/v1_asgi.py.
django_asgi_app = with_v1(django_asgi_app)

from apps.proxy.startup import on_server_start  # noqa: E402

if os.environ.get("PLAYGROUND_SKIP_STARTUP") != "1":
    on_server_start()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from playground.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns()))),
    }
)
