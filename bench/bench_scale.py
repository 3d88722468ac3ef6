"""Configuration at scale, standalone: 10,000 ApiKeys (each with its Secret) and 500 models in files.

Generates the manifests (a provider per 50 models, keys and their Secrets in
files of 100, as a GitOps repository would hold them), then measures, each as
a separate `lockgate` process as a user runs it:

1. `lockgate render -f DIR` (wall clock, start-up included);
2. `lockgate run -f DIR`: from start to /readyz answering 200, and its RSS;
3. under steady load with one key, a new file with one more key and its
   Secret: from the write until the new key is answered 200, the failed
   requests of the steady load meanwhile (none allowed), and the RSS after.

Loopback only; a small OpenAI-shaped upstream in this process answers.

    .venv/bin/python bench/bench_scale.py [--keys 10000] [--models 500] [--edits 3]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCKGATE = str(Path(sys.executable).parent / "lockgate")
MODELS_PER_PROVIDER = 50
KEYS_PER_FILE = 100
GOALS = {"render": 1.5, "ready": 3.0, "edit": 1.0, "rss": 120.0}


def key_of(i: int) -> str:
    return f"lg-scale-{i:06d}-0123456789abcdef"


def write_manifests(root: Path, keys: int, models: int, upstream_port: int) -> None:
    providers = []
    for p in range(0, models, MODELS_PER_PROVIDER):
        names = range(p, min(models, p + MODELS_PER_PROVIDER))
        providers.append(
            "apiVersion: lockgate.io/v1alpha1\nkind: ModelProvider\nmetadata:\n"
            f"  name: up-{p // MODELS_PER_PROVIDER}\n  namespace: scale\nspec:\n  type: openai-compatible\n"
            f"  endpoint: http://127.0.0.1:{upstream_port}/v1\n  models:\n"
            + "".join(f"    - name: m{m}\n      upstreamModel: m{m}\n" for m in names))
    (root / "providers.yaml").write_text("---\n".join(providers))
    for f in range(0, keys, KEYS_PER_FILE):
        (root / f"keys-{f // KEYS_PER_FILE:04d}.yaml").write_text(
            "---\n".join(key_documents(i) for i in range(f, min(keys, f + KEYS_PER_FILE))))


def key_documents(i: int) -> str:
    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: k{i}\n  namespace: scale\n"
            f"stringData:\n  api-key: {key_of(i)}\n---\n"
            f"apiVersion: lockgate.io/v1alpha1\nkind: ApiKey\nmetadata:\n  name: k{i}\n  namespace: scale\n"
            f"spec:\n  consumer: c{i % 100}\n  secretName: k{i}\n  limits:\n    rpm: 1000000\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_upstream(port: int) -> None:
    """A small OpenAI-shaped upstream on its own thread and loop."""
    from aiohttp import web

    answer = json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": "m0",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()

    async def chat(_: web.Request) -> web.Response:
        return web.Response(body=answer, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def status(conn: http.client.HTTPConnection, key: str, model: str = "m0") -> int:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status


def ready(admin_port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=1)
        conn.request("GET", "/readyz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


class SteadyLoad:
    """One client sending requests with a known key back to back, counting what failed."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key
        self.sent = self.failed = 0
        self.slowest = 0.0  # seconds: the longest request (a reload that stalls the event loop shows here)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                code = status(conn, self.key)
                self.slowest = max(self.slowest, time.perf_counter() - started)
            except (OSError, http.client.HTTPException):
                code = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self.sent += 1
            self.failed += code != 200

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--edits", type=int, default=3, help="keys added one after the other under load")
    args = parser.parse_args()
    upstream_port = free_port()
    serve_upstream(upstream_port)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="lockgate-scale-") as tmp:
        root, state = Path(tmp) / "manifests", Path(tmp) / "state"
        root.mkdir()
        write_manifests(root, args.keys, args.models, upstream_port)
        started, cpu = time.perf_counter(), children_cpu()
        rendered = subprocess.run([LOCKGATE, "render", "-f", str(root)], capture_output=True)
        results["render"] = time.perf_counter() - started
        results["render cpu"] = children_cpu() - cpu
        if rendered.returncode != 0:
            print(rendered.stderr.decode()[-2000:], file=sys.stderr)
            return 1
        port, admin = free_port(), free_port()
        started = time.perf_counter()
        proc = subprocess.Popen([LOCKGATE, "run", "-f", str(root), "--port", str(port), "--admin-port", str(admin),
                                 "--state-dir", str(state), "--log-level", "WARNING"],
                                stdout=subprocess.DEVNULL)  # the access log
        try:
            while not ready(admin):
                if proc.poll() is not None or time.perf_counter() - started > 60:
                    print("lockgate run did not become ready", file=sys.stderr)
                    return 1
                time.sleep(0.01)
            results["ready"] = time.perf_counter() - started
            results["ready cpu"] = cpu_seconds(proc.pid)
            results["rss ready"] = rss_mb(proc.pid)
            edits: list[float] = []
            edit_cpu: list[float] = []  # the proxy's CPU meanwhile, steady load included
            with SteadyLoad(port, key_of(0)) as load:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                for e in range(args.edits):
                    i = args.keys + e
                    started, cpu = time.perf_counter(), cpu_seconds(proc.pid)
                    (root / f"new-{e}.yaml").write_text(key_documents(i))
                    while status(conn, key_of(i)) != 200:
                        if time.perf_counter() - started > 60:
                            print("the new key was not enforced within 60 s", file=sys.stderr)
                            return 1
                        time.sleep(0.005)
                    edits.append(time.perf_counter() - started)
                    edit_cpu.append(cpu_seconds(proc.pid) - cpu)
                time.sleep(0.2)
            results["edit"] = max(edits)
            results["edit cpu"] = max(edit_cpu)
            results["rss"] = max(rss_mb(proc.pid), results["rss ready"])
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"{args.keys:,} ApiKeys with Secrets, {args.models} models (standalone, files of {KEYS_PER_FILE} keys)")
    print("  (wall clock; in brackets the process' CPU time, which a busy shared host inflates less)")
    print(f"  lockgate render            {results['render']:7.2f} s [{results['render cpu']:.2f} s cpu]"
          f"   (goal < {GOALS['render']} s)")
    print(f"  lockgate run ready         {results['ready']:7.2f} s [{results['ready cpu']:.2f} s cpu]"
          f"   (goal < {GOALS['ready']} s), RSS {results['rss ready']:.0f} MB")
    print(f"  edit -> new key enforced   {results['edit']:7.2f} s [{results['edit cpu']:.2f} s cpu]"
          f"   (slowest of {args.edits}; goal < {GOALS['edit']} s)")
    print(f"  RSS after the edits        {results['rss']:7.0f} MB  (goal < {GOALS['rss']:.0f} MB)")
    print(f"  steady load during edits   {load.sent} requests, {load.failed} failed (goal 0),"
          f" slowest {load.slowest * 1000:.0f} ms")
    missed = [name for name in ("render", "ready", "edit", "rss") if results[name] >= GOALS[name]]
    if load.failed:
        missed.append("failed requests")
    if missed:
        print(f"  goal MISSED: {', '.join(missed)}")
        return 1
    print("  goal MET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
