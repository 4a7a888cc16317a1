"""Runs the template's scheduled Lambda invocations (SAM `Schedule` events) with a timer thread.

moto stores EventBridge rules with a ScheduleExpression but never fires them. For each SAM
function event of `Type: Schedule` the provisioner creates the rule (and its Lambda target) in
moto and registers it here; the scheduler then invokes the function, as EventBridge does, with
the scheduled-event payload (or the event's `Input`, parsed, in its place):

    {"version": "0", "id": "<uuid>", "detail-type": "Scheduled Event", "source": "aws.events",
     "account": "123456789012", "time": "2026-01-01T12:00:00Z", "region": "us-east-1",
     "resources": ["arn:aws:events:us-east-1:123456789012:rule/<rule name>"], "detail": {}}

- `rate(N minute[s]|hour[s]|day[s])`: first run one period after the start, then every period;
  `LOCALAWS_SCHEDULE_SPEEDUP=S` divides the period by S (rate(1 minute) with S=60: every second).
- `cron(min hour day-of-month month day-of-week year)`, in UTC, at real time (no speedup), with
  `*`, `?`, lists, ranges, steps and names; `L`, `W` and `#` are not supported (logged, skipped).
- A rule disabled in moto (`events.disable_rule`, or `Enabled: false` / `State: DISABLED` in the
  template) does not fire; a deleted rule stops firing. Invocations are asynchronous, as for
  EventBridge (a small thread pool; an error is logged, not retried). Unlike EventBridge, a
  schedule whose previous invocation is still running skips that tick (no backlog when sped up).
"""

from __future__ import annotations

import calendar
import heapq
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .template import TemplateError

log = logging.getLogger("localaws.schedule")

_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


def rate_seconds(expression: str) -> float | None:
    match = _RATE.fullmatch(expression.strip())
    if not match:
        return None
    value, unit = int(match.group(1)), match.group(2).rstrip("s")
    if value <= 0 or (value == 1) != (match.group(2) == unit):
        raise TemplateError(f"{expression}: AWS wants rate(1 {unit}) / rate(N {unit}s), N > 0")
    return value * _UNIT_SECONDS[unit]


class Cron:
    """AWS cron(min hour dom month dow year), evaluated in UTC."""

    def __init__(self, expression: str):
        match = re.fullmatch(r"cron\((.*)\)", expression.strip())
        fields = match.group(1).split() if match else []
        if len(fields) != 6:
            raise TemplateError(f"{expression}: expected cron(min hour day month weekday year)")
        if re.search(r"[LW]", fields[2].upper()) or re.search(r"L|#", fields[4].upper()):
            raise NotImplementedError(f"{expression}: L, W and # are not supported locally")
        minute, hour, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise TemplateError(f"{expression}: exactly one of day-of-month and day-of-week "
                                "must be '?'")
        self.minutes = _cron_field(minute, 0, 59)
        self.hours = _cron_field(hour, 0, 23)
        self.doms = None if dom == "?" else _cron_field(dom, 1, 31)
        self.months = _cron_field(month, 1, 12, _MONTHS)
        self.dows = None if dow == "?" else _cron_field(dow, 1, 7, _DAYS)
        self.years = _cron_field(year, 1970, 2199)

    def next_after(self, after: datetime) -> datetime | None:
        start = (after + timedelta(minutes=1)).replace(second=0, microsecond=0)
        day = start.replace(hour=0, minute=0)
        for _ in range(366 * 5):
            aws_dow = (day.weekday() + 1) % 7 + 1  # Monday=0 -> 2, Sunday=6 -> 1
            if (day.year in self.years and day.month in self.months
                    and (self.doms is None or day.day in self.doms)
                    and (self.dows is None or aws_dow in self.dows)):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        candidate = day.replace(hour=h, minute=m)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        return None


def _cron_field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    def value(token: str) -> int:
        token = token.upper()
        number = names[token] if names and token in names else int(token)
        if not low <= number <= high:
            raise TemplateError(f"cron value {token} outside {low}-{high}")
        return number

    result: set[int] = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            first, last = (value(v) for v in base.split("-", 1))
        else:
            first = value(base)
            last = high if step else first
        result.update(range(first, last + 1, int(step) if step else 1))
    return result


@dataclass(order=True)
class _Job:
    due: float
    name: str = field(compare=False)
    rule_name: str = field(compare=False)
    rule_arn: str = field(compare=False)
    expression: str = field(compare=False)
    function_arn: str = field(compare=False)
    input: Any = field(compare=False, default=None)
    period: float | None = field(compare=False, default=None)
    cron: Cron | None = field(compare=False, default=None)
    running: bool = field(compare=False, default=False)


def scheduled_event(rule_arn: str, account_id: str, region: str) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class Scheduler:
    def __init__(self, invoke: Callable[[str, dict], tuple[str, bool]], speedup: float = 1.0):
        if speedup <= 0:
            raise TemplateError(f"LOCALAWS_SCHEDULE_SPEEDUP must be > 0, got {speedup}")
        self.invoke = invoke
        self.speedup = speedup
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="schedule")

    def add(self, name: str, rule_name: str, rule_arn: str, expression: str,
            function_arn: str, input_: Any = None) -> None:
        """Registers a schedule (validates it: a bad expression fails the start)."""
        period = rate_seconds(expression)
        cron = None
        if period is None:
            try:
                cron = Cron(expression)
            except NotImplementedError as exc:
                log.warning("%s: %s; it will not fire", name, exc)
                return
        if period is not None:
            period /= self.speedup
        job = _Job(0.0, name, rule_name, rule_arn, expression, function_arn, input_, period, cron)
        if not self._schedule(job, time.time()):
            log.warning("%s: %s never fires", name, expression)
            return
        with self._cond:
            heapq.heappush(self._jobs, job)
            self._cond.notify()
        log.info("schedule %s: %s -> %s%s", name, expression, function_arn.split(":")[-1],
                 f" (every {period:g} s)" if period is not None else "")

    def _schedule(self, job: _Job, now: float) -> bool:
        if job.period is not None:
            job.due = now + job.period
            return True
        assert job.cron is not None
        nxt = job.cron.next_after(datetime.fromtimestamp(now, timezone.utc))
        if nxt is None:
            return False
        job.due = nxt.timestamp()
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        with self._cond:
            while not self._stop:
                if not self._jobs:
                    self._cond.wait()
                    continue
                wait = self._jobs[0].due - time.time()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                job = heapq.heappop(self._jobs)
                if job.running:  # the previous run is still going: no local backlog
                    log.warning("schedule %s: previous invocation still running, skipped",
                                job.name)
                else:
                    job.running = True
                    self._pool.submit(self._fire, job)
                if self._schedule(job, max(job.due, time.time() - 1)):
                    heapq.heappush(self._jobs, job)

    def _fire(self, job: _Job) -> None:
        try:
            self._fire_once(job)
        finally:
            job.running = False

    def _fire_once(self, job: _Job) -> None:
        parts = job.rule_arn.split(":")
        state = _rule_state(job.rule_name, parts[4], parts[3])
        if state != "ENABLED":
            log.debug("schedule %s: rule %s, not fired", job.name, state or "deleted")
            return
        event = job.input if job.input is not None else \
            scheduled_event(job.rule_arn, parts[4], parts[3])
        try:
            _output, errored = self.invoke(job.function_arn, event)
        except Exception:
            log.exception("schedule %s: invocation failed", job.name)
            return
        log.info("schedule %s fired: %s", job.name, "ERROR" if errored else "ok")


def _rule_state(rule_name: str, account_id: str, region: str) -> str | None:
    from moto.events.models import events_backends

    try:
        return events_backends[account_id][region].describe_rule(rule_name, None).state
    except Exception:
        return None


def parse_input(text: Any, who: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError as exc:
        raise TemplateError(f"{who}: Input is not JSON: {exc}") from exc
