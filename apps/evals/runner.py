"""Runs an evaluation: every row through every variant, at most `concurrency` calls at once.

The run belongs to the server process, not to a browser: it lives in a thread with its own
event loop (as embeddings jobs do), so closing the page changes nothing, and Stop works
from any request (a flag in the database, plus an immediate cancel in this process).

- Rows are read in pages (ROW_PAGE at a time, keyset order), never all at once.
- Each cell is a streamed call through apps.proxy.services (a Run with prompt_version set
  and group = the evaluation's group); its tokens, cost and times come from that Run.
- Results and totals are written in batches (every FLUSH_SECONDS or FLUSH_CELLS cells),
  never per token. Stop cancels the cells in flight: each keeps the output received so far.
- A row that cannot be sent (a missing variable value) is that cell's error; an upstream
  error fails that cell; the other rows go on.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from apps.evals.checks import checks_apply
from apps.evals.models import Evaluation, EvaluationStatus, Result, ResultStatus, TestRow, Variant
from apps.evals.services import _worker, cell_request
from apps.prompts.variables import VariableError
from apps.proxy.errors import ProxyError
from apps.proxy.models import RunSource
from apps.proxy.services import RunStream, stream_start

logger = logging.getLogger(__name__)

ROW_PAGE = 200


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


# Evaluations running in this process: id -> (loop, task), so Stop can cancel at once.
_running: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task]] = {}
_lock = threading.Lock()
# Cells streaming right now: evaluation id -> {(row number, variant id): stream}. The page
# reads the text received so far from here (same process) while it polls.
_inflight: dict[int, dict[tuple[int, int], RunStream]] = {}


def inflight_text(evaluation_id: int) -> dict[tuple[int, int], str]:
    cells = dict(_inflight.get(evaluation_id) or {})
    return {key: stream.acc.text(0) for key, stream in cells.items()}


def spawn(*, evaluation_id: int) -> threading.Thread:
    thread = threading.Thread(target=_thread_main, args=(evaluation_id,), name=f"evaluation-{evaluation_id}", daemon=True)
    thread.start()
    return thread


def cancel(*, evaluation_id: int) -> bool:
    """Cancel the evaluation's task if this process runs it; False if it does not."""
    with _lock:
        found = _running.get(evaluation_id)
    if not found:
        return False
    loop, task = found
    try:
        loop.call_soon_threadsafe(_cancel_once, task)
    except RuntimeError:  # its loop just closed: it has finished
        return False
    return True


def _cancel_once(task: asyncio.Task) -> None:
    # A second cancel would interrupt the final writes of the first one.
    if not task.done() and not task.cancelling():
        task.cancel()


def is_running_here(evaluation_id: int) -> bool:
    with _lock:
        return evaluation_id in _running


def _thread_main(evaluation_id: int) -> None:
    try:
        asyncio.run(_registered(evaluation_id))
    except Exception as exc:
        logger.exception("evaluation %s crashed", evaluation_id)
        try:  # never leave it "running" in a process that is still alive
            Evaluation.objects.filter(pk=evaluation_id, status__in=(EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)).update(
                status=EvaluationStatus.FAILED, error=f"Playground failed: {type(exc).__name__}: {exc}", finished_at=timezone.now())
        except Exception:
            logger.exception("evaluation %s: could not record the failure", evaluation_id)
    finally:
        close_old_connections()


async def _registered(evaluation_id: int) -> None:
    task = asyncio.current_task()
    with _lock:
        _running[evaluation_id] = (asyncio.get_running_loop(), task)
    try:
        await execute(evaluation_id=evaluation_id)
    finally:
        with _lock:
            _running.pop(evaluation_id, None)


# -- progress kept in memory, written in batches ----------------------------------------------

@dataclass
class Totals:
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    passed: int = 0
    check_passes: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal | None = None
    total_ms: float = 0.0
    timed: int = 0

    def add(self, result: Result) -> None:
        self.done += 1
        if result.status == ResultStatus.SUCCEEDED:
            self.succeeded += 1
        elif result.status in (ResultStatus.FAILED, ResultStatus.ERROR):
            self.failed += 1
        if result.passed:
            self.passed += 1
        for index, outcome in enumerate(result.checks):
            if outcome.get("passed"):
                self.check_passes[index] += 1
        self.prompt_tokens += result.prompt_tokens or 0
        self.completion_tokens += result.completion_tokens or 0
        if result.cost is not None:
            self.cost = (self.cost or Decimal(0)) + result.cost
        if result.total_ms is not None and result.status == ResultStatus.SUCCEEDED:
            self.total_ms += result.total_ms
            self.timed += 1

    def fields(self) -> dict[str, Any]:
        return {
            "done": self.done, "succeeded": self.succeeded, "failed": self.failed, "passed": self.passed,
            "check_passes": list(self.check_passes), "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "cost": self.cost, "total_ms": self.total_ms, "timed": self.timed,
        }


def _load(evaluation_id: int) -> tuple[Evaluation, list[Variant]]:
    evaluation = Evaluation.objects.select_related("team", "created_by", "suite").get(pk=evaluation_id)
    variants = list(evaluation.variants.select_related("prompt_version__prompt", "provider").order_by("position"))
    Evaluation.objects.filter(pk=evaluation_id).update(status=EvaluationStatus.RUNNING, started_at=timezone.now(), worker=_worker())
    return evaluation, variants


def _rows_page(suite_id: int, after: tuple[int, int] | None, size: int) -> list[TestRow]:
    rows = TestRow.objects.filter(suite_id=suite_id)
    if after is not None:
        position, row_id = after
        rows = rows.filter(Q(position__gt=position) | Q(position=position, id__gt=row_id))
    return list(rows.order_by("position", "id")[:size])


def _flush(evaluation_id: int, results: list[Result], totals: dict[int, Totals]) -> bool:
    """Write a batch of cells and the totals; True when someone pressed Stop."""
    with transaction.atomic():
        if not Evaluation.objects.filter(pk=evaluation_id).exists():
            return True  # deleted (with its suite) while running: stop calling the model
        if results:
            # A row deleted while the evaluation ran keeps its cell (with the values it had).
            kept = set(TestRow.objects.filter(id__in={r.row_id for r in results}).values_list("id", flat=True))
            for result in results:
                if result.row_id not in kept:
                    result.row_id = None
            Result.objects.bulk_create(results)
        for variant_id, t in totals.items():
            Variant.objects.filter(pk=variant_id).update(**t.fields())
        Evaluation.objects.filter(pk=evaluation_id).update(done=sum(t.done for t in totals.values()))
    return Evaluation.objects.filter(pk=evaluation_id, cancel_requested=True).exists()


def _finish(evaluation_id: int, status: str, error: str) -> None:
    Evaluation.objects.filter(pk=evaluation_id).update(status=status, error=error, finished_at=timezone.now())


def _row_error(number: int, exc: VariableError) -> str:
    message = exc.message.split(": fill in")[0]
    if message.startswith("no value for"):
        return f"row {number}: {message}. Fill in that cell of the row (an empty value is fine)."
    return f"row {number}: {exc}"


# -- the run ----------------------------------------------------------------------------------

async def execute(*, evaluation_id: int) -> None:
    evaluation, variants = await database_sync_to_async(_load)(evaluation_id)
    checks = evaluation.checks or []
    totals = {v.pk: Totals(check_passes=[0] * len(checks)) for v in variants}
    buffer: list[Result] = []
    flush_cells = int(_setting("EVALS_FLUSH_CELLS", 100))
    flush_seconds = _setting("EVALS_FLUSH_SECONDS", 0.5)
    concurrency = max(1, min(evaluation.concurrency, 8))
    queue: asyncio.Queue = asyncio.Queue(maxsize=concurrency * 2)
    main = asyncio.current_task()

    def record(result: Result) -> None:
        totals[result.variant_id].add(result)
        buffer.append(result)

    writes: list[asyncio.Task] = []

    async def flush() -> bool:
        batch = buffer[:]
        buffer.clear()
        snapshot = {k: Totals(**{**t.__dict__, "check_passes": list(t.check_passes)}) for k, t in totals.items()}
        # Its own task, shielded: a Stop arriving mid-write must not drop the batch taken.
        write = asyncio.ensure_future(database_sync_to_async(_flush)(evaluation_id, batch, snapshot))
        writes.append(write)
        return await asyncio.shield(write)

    async def cell(number: int, row: TestRow, variant: Variant) -> None:
        result = Result(evaluation_id=evaluation_id, variant_id=variant.pk, row_id=row.pk, row_number=number, values=row.values)
        if variant.prompt_version is None or variant.provider is None:
            result.status = ResultStatus.ERROR
            result.error = f"row {number}: the {'prompt version' if variant.prompt_version is None else 'provider'} of this column was deleted."
            record(result)
            return
        try:
            kind, request = cell_request(version=variant.prompt_version, model=variant.model, params=variant.params, values=row.values)
        except VariableError as exc:
            result.status, result.error = ResultStatus.ERROR, _row_error(number, exc)
            record(result)
            return
        stream: RunStream | None = None
        live = _inflight.setdefault(evaluation_id, {})
        try:
            stream = await stream_start(
                team=evaluation.team, user=evaluation.created_by, provider=variant.provider, request=request, kind=kind,
                source=RunSource.EVAL, prompt_version_id=variant.prompt_version_id, group=evaluation.group,
            )
            live[(number, variant.pk)] = stream
            async with stream:
                async for _event in stream:
                    pass
            result.status = ResultStatus.SUCCEEDED
        except ProxyError as exc:
            result.status, result.error = ResultStatus.FAILED, exc.message
        except asyncio.CancelledError:
            result.status = ResultStatus.CANCELLED
            result.error = "Stopped while this row was running; the output received until then is kept."
            _fill(result, stream)
            record(result)
            raise
        except Exception as exc:  # a bug in one cell must not end the others
            logger.exception("evaluation %s row %s failed", evaluation_id, number)
            result.status, result.error = ResultStatus.FAILED, f"Playground failed: {type(exc).__name__}: {exc}"
        finally:
            live.pop((number, variant.pk), None)
        _fill(result, stream)
        if result.status == ResultStatus.SUCCEEDED and checks:
            result.checks = checks_apply(checks, output=result.output, values=row.values)
            result.passed = all(c["passed"] for c in result.checks)
        elif checks:
            result.passed = False
        record(result)
        if len(buffer) >= flush_cells:
            await flush()

    async def produce() -> None:
        number, after = 0, None
        while number < evaluation.row_count:
            page = await database_sync_to_async(_rows_page)(evaluation.suite_id, after, int(_setting("EVALS_ROW_PAGE", ROW_PAGE)))
            if not page:
                break
            for row in page:
                number += 1
                if number > evaluation.row_count:  # rows added after it started are not part of it
                    break
                for variant in variants:
                    await queue.put((number, row, variant))
            after = (page[-1].position, page[-1].pk)
        for _ in range(concurrency):
            await queue.put(None)

    async def work() -> None:
        while (item := await queue.get()) is not None:
            await cell(*item)

    async def watch() -> None:
        while True:
            await asyncio.sleep(flush_seconds)
            if await flush():
                _cancel_once(main)
                return

    tasks = [asyncio.create_task(produce()), *(asyncio.create_task(work()) for _ in range(concurrency))]
    watcher = asyncio.create_task(watch())
    status, error = EvaluationStatus.SUCCEEDED, ""
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        status = EvaluationStatus.CANCELLED
    except Exception as exc:
        logger.exception("evaluation %s failed", evaluation_id)
        status, error = EvaluationStatus.FAILED, f"Playground failed: {type(exc).__name__}: {exc}"
    finally:
        watcher.cancel()
        for task in tasks:
            task.cancel()
        # Let every cancelled cell record its partial output before the last write.
        await asyncio.gather(*tasks, watcher, return_exceptions=True)
        await asyncio.gather(*writes, return_exceptions=True)
        if status == EvaluationStatus.CANCELLED:
            done = sum(t.done for t in totals.values())
            error = f"Stopped after {done:,} of {evaluation.total:,} cells; finished cells and partial output are kept."
        await asyncio.shield(flush())
        await asyncio.shield(database_sync_to_async(_finish)(evaluation_id, status, error))
        _inflight.pop(evaluation_id, None)


def _fill(result: Result, stream: RunStream | None) -> None:
    """Output and numbers from the Run the proxy recorded."""
    if stream is None:
        return
    result.output = stream.acc.text(0)
    if not result.output:
        calls = stream.acc.tool_calls(0) if stream.acc.choices else []
        if calls:
            import json

            result.output = json.dumps([c["function"] for c in calls], ensure_ascii=False)
    run = stream.run
    result.run_id = run.pk
    result.prompt_tokens = run.prompt_tokens
    result.completion_tokens = run.completion_tokens
    result.cost = run.cost
    result.ttft_ms = run.ttft_ms
    result.total_ms = run.total_ms if run.total_ms is not None else stream.elapsed_ms
