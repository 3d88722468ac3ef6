"""Runs an Argo CD health script the way Argo CD does: Lua 5.1, `obj` global,
base and table libraries only (no string, math or io)."""

from __future__ import annotations

from typing import Any

from lupa import lua51

# Globals Argo CD gives a health script when useOpenLibs is off.
ALLOWED = ("assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring", "type",
           "unpack", "table")


def run_health(script: str, obj: dict[str, Any]) -> dict[str, Any]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    env = lua.table_from({name: lua.globals()[name] for name in ALLOWED})
    env["obj"] = lua.table_from(obj, recursive=True)
    loaded = lua.globals().loadstring(script, "health.lua")
    if isinstance(loaded, tuple):  # (nil, message) on a syntax error
        raise SyntaxError(loaded[1])
    chunk = loaded
    lua.globals().setfenv(chunk, env)
    result = chunk()
    return dict(result.items()) if result is not None else {}
