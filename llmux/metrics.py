"""Prometheus metrics for one application, in its own registry (never the global default).

The scheduler reports loads, unloads, evictions, queue depth, leases (calls in flight) and
requests waiting, by model; the HTTP routes report time to first token, tokens generated,
where time to first token goes
(:meth:`Metrics.observe_phases`), finished requests, internal errors and streams cut off because the client stopped reading. ``GET /metrics`` serves
:meth:`Metrics.render`.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)

LOAD_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.loads = Counter(
            "llmux_model_loads", "Model loads that succeeded", ["model", "reason"], registry=r
        )
        self.load_failures = Counter(
            "llmux_model_load_failures", "Model loads that raised", ["model"], registry=r
        )
        self.unloads = Counter(
            "llmux_model_unloads", "Model unloads", ["model", "reason"], registry=r
        )
        self.evictions = Counter(
            "llmux_model_evictions",
            "Models evicted to load another (reason: replace, room, oom)",
            ["model", "reason"],
            registry=r,
        )
        self.load_seconds = Histogram(
            "llmux_model_load_seconds", "Time to load a model", ["model"],
            buckets=LOAD_BUCKETS, registry=r,
        )
        self.unload_seconds = Histogram(
            "llmux_model_unload_seconds", "Time to unload a model", ["model"],
            buckets=LOAD_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge(
            "llmux_queue_depth", "Requests waiting for admission", registry=r
        )
        self.in_flight = Gauge(
            "llmux_requests_in_flight", "Leases held (requests being served)", ["model"],
            registry=r,
        )
        self.waiting = Gauge(
            "llmux_requests_waiting",
            "Requests waiting for the model: for its load or for a free parallel slot",
            ["model"], registry=r,
        )
        self.vram_used = Gauge(
            "llmux_vram_used_gb", "VRAM the loaded models account for", registry=r
        )
        self.ttft = Histogram(
            "llmux_time_to_first_token_seconds", "Time to first token", ["model"],
            buckets=TTFT_BUCKETS, registry=r,
        )
        self.phases = Summary(
            "llmux_chat_phase_seconds",
            "Where a chat request's time to first token goes: parse (body read and "
            "validated), admission (waiting for the model: its load or a free slot), runtime "
            "(the runtime's work until its first output: template, tokens, prefill, first "
            "token), first_write (the first bytes sent)",
            ["model", "phase"], registry=r,
        )
        self.prompt_tokens = Counter(
            "llmux_prompt_tokens",
            "Prompt tokens of chat requests, by how they were served: processed (evaluated) "
            "or cached (a reused state of the same prefix)", ["model", "kind"], registry=r,
        )
        self.tokens = Counter(
            "llmux_tokens_generated", "Tokens generated", ["model"], registry=r
        )
        self.requests = Counter(
            "llmux_requests", "Finished HTTP requests", ["model", "endpoint", "status"],
            registry=r,
        )
        self.internal_errors = Counter(
            "llmux_internal_errors",
            "Unexpected errors (answered with a generic message and an error id)", ["model"],
            registry=r,
        )
        self.stalled_streams = Counter(
            "llmux_stalled_streams",
            "Streams ended because the client stopped reading (server.stream_write_timeout_s)",
            ["model"], registry=r,
        )

    # ------------------------------------------------------------------ from the scheduler

    def model_loaded(self, model: str, seconds: float, reason: str = "request") -> None:
        self.loads.labels(model, reason).inc()
        self.load_seconds.labels(model).observe(seconds)

    def model_load_failed(self, model: str) -> None:
        self.load_failures.labels(model).inc()

    def model_unloaded(self, model: str, seconds: float, reason: str) -> None:
        self.unloads.labels(model, reason).inc()
        self.unload_seconds.labels(model).observe(seconds)

    def model_evicted(self, model: str, reason: str) -> None:
        self.evictions.labels(model, reason).inc()

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def set_vram_used(self, gb: float) -> None:
        self.vram_used.set(gb)

    def lease_started(self, model: str) -> None:
        self.in_flight.labels(model).inc()

    def lease_ended(self, model: str) -> None:
        self.in_flight.labels(model).dec()

    def set_waiting(self, model: str, n: int) -> None:
        self.waiting.labels(model).set(n)

    # ------------------------------------------------------------------ from the routes

    def observe_ttft(self, model: str, seconds: float) -> None:
        self.ttft.labels(model).observe(seconds)

    def observe_phases(self, model: str, stamps: "list[tuple[str, float]]",
                       started: float) -> None:
        """``stamps``: (phase, the time it ended) in order, from ``started``."""
        last = started
        for phase, at in stamps:
            self.phases.labels(model, phase).observe(max(0.0, at - last))
            last = at

    def add_prompt(self, model: str, usage) -> None:
        """Count a chat request's prompt tokens: processed and cached."""
        cached = max(0, min(usage.cached_tokens, usage.prompt_tokens))
        self.prompt_tokens.labels(model, "processed").inc(usage.prompt_tokens - cached)
        if cached:
            self.prompt_tokens.labels(model, "cached").inc(cached)

    def add_tokens(self, model: str, n: int) -> None:
        if n > 0:
            self.tokens.labels(model).inc(n)

    def request_done(self, model: str, endpoint: str, status: int) -> None:
        self.requests.labels(model, endpoint, str(status)).inc()

    def internal_error(self, model: str) -> None:
        self.internal_errors.labels(model).inc()

    def stream_stalled(self, model: str) -> None:
        self.stalled_streams.labels(model).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
