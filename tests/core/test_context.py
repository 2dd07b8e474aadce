from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from activity_audit import context
from activity_audit.context import audit_context, bind, context_fields, get_scope


def test_empty_scope_outside_any_context() -> None:
    assert context_fields() == {
        "user_id": None, "user_info": {}, "request_id": None, "trace_id": None, "extra": {},
    }


def test_context_manager_sets_and_resets() -> None:
    with audit_context(actor="cron", request_id="r-1", job="import"):
        fields = context_fields()
        assert fields["user_id"] == "cron"
        assert fields["request_id"] == "r-1"
        assert fields["extra"] == {"job": "import"}
    assert get_scope().actor is None
    assert get_scope().request_id is None


def test_nested_contexts_merge_and_inner_wins() -> None:
    with audit_context(actor="outer", a=1, b=1):
        with audit_context(b=2, c=3):
            assert context_fields()["user_id"] == "outer"
            assert context_fields()["extra"] == {"a": 1, "b": 2, "c": 3}
        with audit_context(actor="inner"):
            assert context_fields()["user_id"] == "inner"
        assert context_fields()["extra"] == {"a": 1, "b": 1}


def test_reset_even_when_the_block_raises() -> None:
    with pytest.raises(KeyError), audit_context(actor="x"):
        raise KeyError("boom")
    assert get_scope().actor is None


def test_decorator_sync_and_reentrant() -> None:
    seen: list[Any] = []

    @audit_context(actor="task")
    def job(depth: int) -> str:
        seen.append(context_fields()["user_id"])
        if depth:
            job(depth - 1)
        return "done"

    assert job(2) == "done"
    assert seen == ["task", "task", "task"]
    assert get_scope().actor is None


def test_decorator_async() -> None:
    @audit_context(actor="async-task", step=1)
    async def job() -> dict[str, Any]:
        await asyncio.sleep(0)
        return context_fields()

    fields = asyncio.run(job())
    assert fields["user_id"] == "async-task"
    assert fields["extra"] == {"step": 1}


def test_async_with() -> None:
    async def main() -> Any:
        async with audit_context(actor="a"):
            return context_fields()["user_id"]

    assert asyncio.run(main()) == "a"


def test_threads_do_not_share_scope() -> None:
    results: dict[int, Any] = {}
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        with audit_context(actor=f"user-{n}"):
            barrier.wait()
            results[n] = context_fields()["user_id"]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: f"user-{n}" for n in range(8)}


def test_late_actor_resolver_is_called_when_event_is_built() -> None:
    holder: dict[str, Any] = {"user": None}
    with bind(actor_resolver=lambda: holder["user"]):
        assert context_fields()["user_id"] is None
        holder["user"] = "late-user"
        assert context_fields()["user_id"] == "late-user"


def test_failing_resolver_gives_no_actor_not_an_exception() -> None:
    def broken() -> Any:
        raise RuntimeError("auth backend down")

    with bind(actor_resolver=broken):
        assert context_fields()["user_id"] is None


def test_end_hooks_run_once_for_the_outermost_scope() -> None:
    ended: list[Any] = []

    def hook(scope: context.AuditScope) -> None:
        ended.append(scope.extra.get("name"))

    context.add_scope_end_hook(hook)
    try:
        with audit_context(name="outer"), audit_context(name="inner"):
            assert ended == []
        assert ended == ["outer"]
    finally:
        context._end_hooks.remove(hook)


def test_state_shared_with_nested_scopes() -> None:
    with audit_context(actor="a") as outer, audit_context() as inner:
        assert inner.state is outer.state is not None


def test_one_instance_shared_by_threads_and_tasks() -> None:
    shared = audit_context(actor="system")
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            with shared:
                barrier.wait()
                assert context_fields()["user_id"] == "system"
            assert get_scope().actor is None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    async def task(n: int) -> Any:
        async with shared:
            await asyncio.sleep(0.001 * (3 - n))
            inside = context_fields()["user_id"]
        return inside, get_scope().actor

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(task(n) for n in range(3))))

    assert asyncio.run(main()) == [("system", None)] * 3


def test_extra_is_json_native() -> None:
    import datetime as dt
    from decimal import Decimal

    with audit_context(when=dt.date(2025, 1, 2), amount=Decimal("1.10")):
        assert context_fields()["extra"] == {"when": "2025-01-02", "amount": "1.10"}


def test_extra_bound_directly_is_json_native() -> None:
    import datetime as dt

    with bind(extra={"when": dt.date(2025, 1, 2)}), bind(extra={"n": (1, 2)}):
        assert context_fields()["extra"] == {"when": "2025-01-02", "n": [1, 2]}


def test_user_info_of_a_custom_describer_is_made_json_native() -> None:
    from decimal import Decimal

    saved = context._describer, context._describer_native
    context.set_actor_describer(lambda actor: ("7", {"limit": Decimal("1.50")}))
    try:
        with audit_context(actor="someone"):
            assert context_fields()["user_info"] == {"limit": "1.50"}
    finally:
        context.set_actor_describer(saved[0], native=saved[1])
