"""Every Prometheus metric of the hub, with `record_*` helpers that keep call sites to one line.

Metrics use the process-wide default registry so `/metrics` exposes them all.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MAILBOX_DEPTH = Gauge("hub_mailbox_depth", "Messages waiting in an actor's mailbox", ["actor"])
MAILBOX_CAPACITY = Gauge("hub_mailbox_capacity", "Capacity of an actor's mailbox", ["actor"])
MAILBOX_REJECTED = Counter(
    "hub_mailbox_rejected_total", "Messages rejected or timed out on a full mailbox", ["actor"]
)
MAILBOX_COALESCED = Counter(
    "hub_mailbox_coalesced_total", "Wake-ups merged into one already waiting", ["actor"]
)
ACTOR_CRASHES = Counter("hub_actor_crashes_total", "Actor crashes", ["actor"])
ACTOR_RESTARTS = Counter("hub_actor_restarts_total", "Actor restarts by a supervisor", ["actor"])
ACTORS_RUNNING = Gauge("hub_actors_running", "Actors currently running")
DEAD_LETTERS = Counter(
    "hub_dead_letters_total", "Messages sent to an actor name nobody has registered", ["actor"]
)

BRANCH_LAST_SUCCESS = Gauge(
    "hub_branch_last_success_timestamp_seconds",
    "Unix time of the last successful exchange with the branch's 1C",
    ["branch"],
)
BRANCH_FAILURES = Gauge(
    "hub_branch_consecutive_failures", "Failed exchanges since the last success", ["branch"]
)
EXCHANGE_DURATION = Histogram(
    "hub_exchange_duration_seconds",
    "Time spent on one exchange step with 1C",
    ["kind", "step"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
EXCHANGE_RESULTS = Counter(
    "hub_exchange_results_total", "Exchange steps by result", ["kind", "step", "result"]
)
IMPORTED_ITEMS = Counter(
    "hub_imported_items_total", "Catalog items imported from 1C", ["branch", "item"]
)
ORDERS_BY_STATUS = Gauge("hub_orders", "Orders by current status", ["status"])
ORDER_TRANSITIONS = Counter(
    "hub_order_transitions_total", "Order status changes", ["status", "source"]
)
OUTBOX_PENDING = Gauge("hub_outbox_pending", "Deliveries waiting for a branch", ["branch"])
NOTIFICATIONS = Counter(
    "hub_notifications_total", "Notifications by channel and result", ["channel", "result"]
)
HTTP_REQUESTS = Histogram(
    "hub_http_request_duration_seconds",
    "API request latency",
    ["method", "route", "status"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def record_exchange(kind: str, step: str, result: str, seconds: float) -> None:
    EXCHANGE_DURATION.labels(kind, step).observe(seconds)
    EXCHANGE_RESULTS.labels(kind, step, result).inc()


def record_branch_success(branch: str, unix_time: float) -> None:
    BRANCH_LAST_SUCCESS.labels(branch).set(unix_time)
    BRANCH_FAILURES.labels(branch).set(0)


def record_branch_failure(branch: str, consecutive: int) -> None:
    BRANCH_FAILURES.labels(branch).set(consecutive)


def record_order_transition(status: str, source: str) -> None:
    ORDER_TRANSITIONS.labels(status, source).inc()


BRANCH_CIRCUIT_STATE = Gauge(
    "hub_branch_circuit_state",
    "Circuit breaker of the branch's 1C calls: 0 closed, 1 half-open, 2 open",
    ["branch"],
)
BRANCH_CIRCUIT_TRANSITIONS = Counter(
    "hub_branch_circuit_transitions_total",
    "Circuit breaker state changes, by the state entered",
    ["branch", "state"],
)
ODATA_PROFILE_PROBES = Counter(
    "hub_odata_profile_probes_total",
    "Reads of a branch's OData service document to choose entity names, by result",
    ["result"],
)


def record_circuit_state(branch: str, state: str, value: int, *, changed: bool) -> None:
    """Set the branch's circuit gauge; count a transition into `state` when `changed`."""
    BRANCH_CIRCUIT_STATE.labels(branch).set(value)
    if changed:
        BRANCH_CIRCUIT_TRANSITIONS.labels(branch, state).inc()
