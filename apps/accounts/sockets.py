"""Websocket consumers sign people in the way pages do: the session's user and team."""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from apps.accounts.middleware import SESSION_TEAM_KEY
from apps.accounts.selectors import membership_get

CLOSE_SIGNED_OUT = 4401
CLOSE_NOT_A_MEMBER = 4403


async def socket_member_connect(consumer: AsyncWebsocketConsumer) -> bool:
    """Set consumer.user, .membership and .team from the session, or close the socket.

    Returns False (the socket closed with 4401 or 4403) for a visitor who is signed out or
    not a member of the session's team; the caller then stops connecting.
    """
    user = consumer.scope.get("user")
    if user is None or not user.is_authenticated:
        await consumer.close(code=CLOSE_SIGNED_OUT)
        return False
    session = consumer.scope.get("session")
    team_id = session.get(SESSION_TEAM_KEY) if session is not None else None
    membership = await database_sync_to_async(lambda: membership_get(user=user, team_id=team_id))()
    if membership is None:
        await consumer.close(code=CLOSE_NOT_A_MEMBER)
        return False
    consumer.user = user
    consumer.membership = membership
    consumer.team = await database_sync_to_async(lambda: membership.team)()
    return True
