"""Prometheus metrics at ``/metrics``: GraphQL operations, open subscriptions, sync health.

What it exposes (text format of prometheus-client, one registry per application):

    inbox_api_graphql_operations_total{type,operation,status}   counter, every operation
    inbox_api_graphql_operation_seconds{type,operation}         histogram, queries/mutations
    inbox_api_graphql_execution_total{path}                     counter, compiled or fallback
    inbox_api_open_subscriptions                                gauge, this process
    inbox_api_sync_accounts{provider,phase}                     gauge, active accounts
    inbox_api_sync_lag_seconds{provider}                        gauge, the stalest account
    inbox_api_sync_failing_accounts{code}                       gauge, last run failed so
    inbox_api_sync_consecutive_failures{code}                   gauge, their failures in a row

Operations are counted by ``OperationMetrics``, a schema extension beside the usage log's
(``resolvers.usage``): the operation's type and name (at most ``MAX_OPERATION_NAMES`` distinct
names, later ones count as ``other``; no name: ``anonymous``) and ``ok``/``error``; never the
query, variables or the caller. A subscription counts as open from its execution to its end;
its lifetime is no latency, so it stays out of the histogram. The execution counter says how
queries and mutations were executed: from a compiled plan (``resolvers.compiled``) or by
graphql-core (``fallback``: mutations, what plans do not cover, a missing scope, an error).

The sync figures are read from the ``sync_states`` table at each scrape: it is where every
worker records how its runs ended (``sync.engine``), so any API process reports the whole
fleet's, whichever process ran the sync. Lag is the time since the last successful sync of the
stalest active account that has synced once (accounts still in their first sync show in
``inbox_api_sync_accounts{phase="initial"}``).

Who may read it: with ``INBOX_API_METRICS_TOKEN`` set, any client presenting
``Authorization: Bearer <that token>`` (compared in constant time) and nobody else; without
it, only a client on a loopback address whose request carries no proxy forwarding header
(a reverse proxy on the same host would otherwise make every client look local). Others get
404, as if there were no such page. Nothing here ever carries a token, address or message.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType
from tortoise.functions import Count, Sum

from app import clock
from app.models import SyncState
from app.settings import Settings
from app.types import AccountStatus, Provider

MAX_OPERATION_NAMES = 200
_LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


class ServerMetrics:
    """The metrics of one application: its registry, the operation hook and the endpoint."""

    def __init__(self, settings: Settings) -> None:
        token = settings.metrics_token
        self._token = token.get_secret_value().encode() if token is not None else None
        self.registry = CollectorRegistry(auto_describe=True)
        self.operations = Counter(
            "inbox_api_graphql_operations",
            "GraphQL operations by type, name and outcome.",
            ["type", "operation", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "inbox_api_graphql_operation_seconds",
            "Time to answer a query or mutation, from parsing to the result.",
            ["type", "operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.open_subscriptions = Gauge(
            "inbox_api_open_subscriptions",
            "Subscriptions running in this process.",
            registry=self.registry,
        )
        self.sync_accounts = Gauge(
            "inbox_api_sync_accounts",
            "Active accounts by provider and sync phase.",
            ["provider", "phase"],
            registry=self.registry,
        )
        self.sync_lag = Gauge(
            "inbox_api_sync_lag_seconds",
            "Seconds since the last successful sync of the stalest active account.",
            ["provider"],
            registry=self.registry,
        )
        self.failing_accounts = Gauge(
            "inbox_api_sync_failing_accounts",
            "Active accounts whose last sync run failed, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.consecutive_failures = Gauge(
            "inbox_api_sync_consecutive_failures",
            "Failed runs in a row, summed over the accounts failing with each code.",
            ["code"],
            registry=self.registry,
        )
        self._names: set[str] = set()

    def count_execution_paths(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Export ``counts()`` (operations by execution path) at each scrape."""
        self.registry.register(_ExecutionPaths(counts))

    def extension(self) -> SchemaExtension:
        """A fresh ``OperationMetrics`` (``build_schema`` takes extension factories)."""
        return OperationMetrics(self)

    def route(self) -> Route:
        return Route("/metrics", self.endpoint, methods=["GET"])

    def observe_operation(
        self, kind: OperationType | None, name: str | None, *, failed: bool, seconds: float
    ) -> None:
        """One operation ended (``OperationMetrics``, and the direct read path, which answers
        without the extensions); ``kind`` None: no parsable operation."""
        type_label = kind.value if kind is not None else "invalid"
        label = self.operation_label(name)
        self.operations.labels(type_label, label, "error" if failed else "ok").inc()
        if kind is not OperationType.SUBSCRIPTION:
            self.latency.labels(type_label, label).observe(seconds)

    def operation_label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if name in self._names:
            return name
        if len(self._names) >= MAX_OPERATION_NAMES:
            return "other"
        self._names.add(name)
        return name

    async def endpoint(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        await self._read_sync_states()
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def _refusal(self, request: Request) -> Response | None:
        if self._token is not None:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                presented.strip().encode(), self._token
            ):
                return None
            return PlainTextResponse(
                "Unauthorized", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        forwarded = any(header in request.headers for header in _FORWARDING_HEADERS)
        if request.client is not None and _is_loopback(request.client.host) and not forwarded:
            return None
        return PlainTextResponse("Not Found", status_code=404)

    async def _read_sync_states(self) -> None:
        active = SyncState.filter(
            account__status=AccountStatus.ACTIVE, account__owner__terminated_at__isnull=True
        )
        by_phase = (
            await active.annotate(accounts=Count("account_id"))
            .group_by("account__provider", "phase")
            .values("account__provider", "phase", "accounts")
        )
        self.sync_accounts.clear()
        for row in by_phase:
            labels = (str(row["account__provider"]), str(row["phase"]))
            self.sync_accounts.labels(*labels).set(row["accounts"])
        now = clock.now()
        self.sync_lag.clear()
        for provider in Provider:
            stalest = await (
                active.filter(account__provider=provider, last_success_at__isnull=False)
                .order_by("last_success_at")
                .first()
            )
            if stalest is not None and stalest.last_success_at is not None:
                lag = max(0.0, (now - stalest.last_success_at).total_seconds())
                self.sync_lag.labels(provider.value).set(lag)
        failing = (
            await active.filter(last_error_code__isnull=False)
            .annotate(accounts=Count("account_id"), failures=Sum("consecutive_failures"))
            .group_by("last_error_code")
            .values("last_error_code", "accounts", "failures")
        )
        self.failing_accounts.clear()
        self.consecutive_failures.clear()
        for row in failing:
            code = str(row["last_error_code"])
            self.failing_accounts.labels(code).set(row["accounts"])
            self.consecutive_failures.labels(code).set(row["failures"] or 0)


class _ExecutionPaths(Collector):
    """``inbox_api_graphql_execution_total{path}``, read from the counts at each scrape."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "inbox_api_graphql_execution",
            "Queries and mutations by how they were executed: compiled plan or graphql-core.",
            labels=["path"],
        )
        for path, count in self._counts().items():
            family.add_metric([path], count)
        yield family


class OperationMetrics(SchemaExtension):
    """Counts each operation and times queries and mutations; tracks open subscriptions."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics
        self._subscribed = False

    def on_execute(self) -> Iterator[None]:
        if self._operation_type() is OperationType.SUBSCRIPTION and not self._subscribed:
            self._subscribed = True
            self._metrics.open_subscriptions.inc()
        yield

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if self._subscribed:
                self._metrics.open_subscriptions.dec()
        elapsed = time.perf_counter() - started
        context = self.execution_context
        errors = bool(getattr(context.result, "errors", None) or context.pre_execution_errors)
        self._metrics.observe_operation(
            self._operation_type(), context.operation_name, failed=errors, seconds=elapsed
        )

    def _operation_type(self) -> OperationType | None:
        try:
            return self.execution_context.operation_type
        except RuntimeError:  # no parsable operation
            return None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
