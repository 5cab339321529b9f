"""Texts shown to API users, Russian by default and English on request (Accept-Language: en)."""

from __future__ import annotations

from collections.abc import Mapping

MESSAGES: dict[str, dict[str, str]] = {
    "branch_not_found": {
        "ru": "Филиал {branch!r} не найден. Возьмите код филиала из GET /api/v1/branches.",
        "en": "Branch {branch!r} not found; use a code from GET /api/v1/branches.",
    },
    "order_not_found": {
        "ru": "Заказ {order!r} не найден. Проверьте идентификатор или номер заказа.",
        "en": "Order {order!r} not found; check the order id or number.",
    },
    "offer_not_sold": {
        "ru": "Предложение {offer!r} не продаётся в филиале {branch!r}. "
        "Возьмите offer_id из GET /api/v1/products.",
        "en": "Offer {offer!r} is not sold in branch {branch!r}; "
        "take offer ids from GET /api/v1/products.",
    },
    "offer_without_price": {
        "ru": "У предложения {offer!r} в филиале {branch!r} ещё нет цены. "
        "Дождитесь следующего обмена цен с 1С.",
        "en": "Offer {offer!r} has no price in branch {branch!r} yet; "
        "wait for the branch's next price exchange.",
    },
    "idempotency_key_reused": {
        "ru": "Ключ Idempotency-Key {key!r} уже использован с другим телом запроса. "
        "Для нового заказа отправьте новый ключ.",
        "en": "Idempotency-Key {key!r} was already used with another request body; "
        "send a new key for a new order.",
    },
    "idempotency_key_missing": {
        "ru": "Нет заголовка Idempotency-Key. Передайте уникальный ключ (например, UUID) "
        "для каждого нового заказа.",
        "en": "The Idempotency-Key header is missing; send a unique key (a UUID, say) "
        "with every new order.",
    },
    "invalid_body": {
        "ru": "Тело запроса не разобрано: {error}. Отправьте JSON по схеме из /openapi.json.",
        "en": "The request body could not be read: {error}. Send JSON matching /openapi.json.",
    },
    "invalid_field": {
        "ru": "Поле {field}: {error}.",
        "en": "Field {field}: {error}.",
    },
    "invalid_query": {
        "ru": "Параметр {field}: {error}.",
        "en": "Query parameter {field}: {error}.",
    },
    "unauthorized": {
        "ru": "Нужен токен API: передайте заголовок Authorization: Bearer <токен>. "
        "Токен создаёт администратор командой `tentorium-hub tokens create`.",
        "en": "An API token is required: send Authorization: Bearer <token>. "
        "An administrator creates one with `tentorium-hub tokens create`.",
    },
    "forbidden": {
        "ru": "Токену не хватает права {scope!r} для этого запроса.",
        "en": "The token lacks the {scope!r} scope this request needs.",
    },
    "not_found": {
        "ru": "Адрес {path} не найден. Список методов: /openapi.json.",
        "en": "No endpoint at {path}; see /openapi.json.",
    },
    "method_not_allowed": {
        "ru": "Метод {method} не поддерживается для {path}.",
        "en": "Method {method} is not supported on {path}.",
    },
    "overloaded": {
        "ru": "Сервер перегружен. Повторите запрос через несколько секунд.",
        "en": "The hub is overloaded; retry in a few seconds.",
    },
    "storage_unavailable": {
        "ru": "База данных недоступна. Повторите запрос позже.",
        "en": "The database is unavailable; retry later.",
    },
    "internal": {
        "ru": "Внутренняя ошибка сервера. Повторите запрос; если ошибка повторится, "
        "сообщите администратору время запроса.",
        "en": "Internal server error; retry, and if it persists tell the administrator "
        "the time of the request.",
    },
    "discount_too_large": {
        "ru": "Скидка {discount} больше суммы оплачиваемых строк {lines_sum}.",
        "en": "Discount {discount} exceeds the sum of the paid lines {lines_sum}.",
    },
    "branch_exists": {
        "ru": "Филиал {branch!r} или логин обмена уже существует.",
        "en": "Branch {branch!r} or its exchange login already exists.",
    },
    "payload_too_large": {
        "ru": "Тело запроса больше {limit} байт.",
        "en": "The request body exceeds {limit} bytes.",
    },
}


def pick_language(accept_language: str | None) -> str:
    """Russian unless the client prefers English (the first tag decides)."""
    if not accept_language:
        return "ru"
    first = accept_language.split(",")[0].strip().lower()
    return "en" if first.startswith("en") else "ru"


def render(code: str, lang: str, params: Mapping[str, object], fallback: str) -> str:
    templates = MESSAGES.get(code)
    if templates is None:
        return fallback
    try:
        return templates[lang].format(**params)
    except (KeyError, IndexError):
        return fallback
