"""How the Redis store's script calls are written and their replies read: pure, tested without I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import hiredis

from lockgate.proxy.quota.lease import MARKER_TTL, ROOM, Lease, lease_seconds, life_ms, return_arguments
from lockgate.proxy.quota.plan import Group, GroupResult, Refusal
from lockgate.proxy.quota.redis_batch import MONTH_GRACE, PREFIX, group_keys, limit
from lockgate.proxy.quota.window import TOO_LARGE, WindowState

REASONS = {1: "requests", 2: "tokens", 3: "budget"}


def bulk_strings(values: Iterable[Any]) -> bytes:
    """RESP bulk strings, as hiredis packs command arguments."""
    out = []
    for v in values:
        raw = v if isinstance(v, bytes) else str(v).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def limits_arguments(groups: Sequence[Group]) -> list[Any]:
    """RESERVE's arguments that describe `groups`: per group its unit, windows' limits and budgets'."""
    out: list[Any] = [len(groups)]
    for g in groups:
        out += [int(g.unit == "cost"), len(g.windows)]
        for w in g.windows:
            out += [limit(w.rpm), limit(w.tpm)]
        out.append(len(g.budgets))
        for b in g.budgets:
            out += [b.field, limit(b.limit)]
    return out


def lease_marker(groups: Sequence[Group], lid: str) -> str:
    """The key whose deletion makes a lease's RETURN apply once."""
    return f"{PREFIX}:{{{groups[0].tag if groups else ''}}}:lease:{lid}"


def lease_command(sha: str, groups: Sequence[Group], lease: Lease, window: float) -> bytes:
    """LEASE (lua_lease.py) of `lease` over `groups`, packed."""
    keys = [*group_keys(groups, lease.month), lease_marker(groups, lease.lid)]
    return hiredis.pack_command((
        "EVALSHA", sha, len(keys), *keys, int(window * 1000), lease.lid, lease.size, lease.tokens, lease.spend, ROOM,
        int(lease.month_end) + MONTH_GRACE, MARKER_TTL, life_ms(lease_seconds(window)), *limits_arguments(groups)))


def return_command(sha: str, groups: Sequence[Group], lease: Lease, window: float) -> bytes:
    """RETURN (lua_lease.py) of `lease` as used so far, packed."""
    keys = [*group_keys(groups, lease.month), lease_marker(groups, lease.lid)]
    return hiredis.pack_command((
        "EVALSHA", sha, len(keys), *keys, int(window * 1000), lease.lid, lease.size, lease.tokens, lease.spend,
        lease.used_spend, int(lease.month_end) + MONTH_GRACE, *return_arguments(lease), *limits_arguments(groups)))


def reserve_results(groups: Sequence[Group], reply: list[int]) -> list[GroupResult]:
    """Per group: its window states and month counters, or the refusal (the other groups then hold nothing)."""
    if reply[0] == 0:
        _, refused, reason, wait_ms, index = reply
        group = groups[refused - 1]
        name = group.budgets[index - 1].field if reason == 3 else group.windows[index - 1].name
        refusal = Refusal(REASONS[reason], TOO_LARGE if wait_ms < 0 else wait_ms / 1000, name)  # type: ignore[arg-type]
        return [GroupResult(refusal if g is group else None) for g in groups]
    results = []
    at = 1
    for g in groups:
        states = []
        for w in g.windows:
            count, total, reset = reply[at: at + 3]
            states.append(WindowState(w.rpm, w.tpm, count, total, reset / 1000, reset / 1000))
            at += 3
        used = reply[at: at + len(g.budgets)]
        at += len(g.budgets)
        results.append(GroupResult(None, tuple(states), {b.field: int(u) for b, u in zip(g.budgets, used)}))
    return results


def text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
