"""Access to the running node from request handlers."""

from __future__ import annotations

from quart import current_app

from tentorium_hub.node import NodeContext


def hub() -> NodeContext:
    ctx: NodeContext = current_app.extensions["hub"]
    return ctx
