"""The hub's exception tree; adapters map library errors onto it in one place each."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose.

    `code` and `params` let the HTTP layer render the message for people in Russian or
    English from its message catalog; the exception text itself is English, for logs.
    """

    def __init__(
        self, message: str, *, code: str | None = None, params: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.params = params or {}


class ConfigError(HubError):
    """An invalid setting or command-line value."""


class ValidationError(HubError):
    """Input that breaks a rule; `field` names the offending value in API responses."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        params: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, code=code, params=params)
        self.field = field


class NotFoundError(HubError):
    """A referenced record does not exist."""


class ConflictError(HubError):
    """A request conflicts with stored state (e.g. an idempotency key reused with another body)."""


class StorageError(HubError):
    """A database call failed."""


class ExchangeError(HubError):
    """A CommerceML exchange step failed; `message_ru` is the text 1C shows to its admin."""

    def __init__(self, message: str, *, message_ru: str) -> None:
        super().__init__(message)
        self.message_ru = message_ru


class CommerceMLError(HubError):
    """A CommerceML document is malformed or unsafe.

    `message` is English for logs; `message_ru` is shown to the 1C admin in a `failure` reply.
    """

    def __init__(self, message: str, *, message_ru: str, filename: str | None = None) -> None:
        super().__init__(message)
        self.message_ru = message_ru
        self.filename = filename


class ConnectorError(HubError):
    """A call to an outside system failed.

    `retryable` tells the caller whether the same call may succeed later.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class MailboxFull(HubError):
    """An actor's mailbox rejected a message because it is at capacity."""


class ActorNotFound(HubError):
    """No actor is registered under the requested name (a dead letter)."""


class AskTimeout(HubError):
    """An `ask` got no reply within its deadline."""
