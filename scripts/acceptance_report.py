"""The PASS/FAIL/SKIP table of scripts/acceptance.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import openai

# --------------------------------------------------------------------------- results


@dataclass
class Result:
    req: str
    name: str
    status: str  # PASS, FAIL, SKIP
    detail: str


class Report:
    def __init__(self) -> None:
        self.results: list[Result] = []

    def add(self, req: str, name: str, status: str, detail: str = "") -> None:
        result = Result(req, name, status, " ".join(detail.split())[:160])
        self.results.append(result)
        print(f"{result.status:<4}  {result.req:<7}  {result.name}: {result.detail}", flush=True)

    def check(self, req: str, name: str, fn: Callable[[], str]) -> None:
        """Run ``fn``; it returns a detail for PASS or raises AssertionError / an API error."""
        try:
            detail = fn()
        except Skip as exc:
            self.add(req, name, "SKIP", str(exc))
        except AssertionError as exc:
            self.add(req, name, "FAIL", str(exc) or "assertion failed")
        except openai.APIError as exc:
            status = getattr(exc, "status_code", None)
            self.add(req, name, "FAIL", f"{type(exc).__name__} {status or ''}: {exc}")
        except Exception as exc:  # noqa: BLE001 - network errors, bad JSON: a FAIL, not a crash
            self.add(req, name, "FAIL", f"{type(exc).__name__}: {exc}")
        else:
            self.add(req, name, "PASS", detail)

    @property
    def failed(self) -> int:
        return sum(r.status == "FAIL" for r in self.results)

    def table(self) -> str:
        width = max([len(r.name) for r in self.results] + [5])
        lines = [f"{'STATUS':<6}  {'REQ':<7}  {'CHECK':<{width}}  DETAIL",
                 f"{'-' * 6}  {'-' * 7}  {'-' * width}  {'-' * 6}"]
        for r in self.results:
            lines.append(f"{r.status:<6}  {r.req:<7}  {r.name:<{width}}  {r.detail[:90]}")
        counts = {s: sum(r.status == s for r in self.results) for s in ("PASS", "FAIL", "SKIP")}
        lines.append(f"\n{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
        return "\n".join(lines)


class Skip(Exception):
    pass
