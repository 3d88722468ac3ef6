"""An https upstream on loopback written by hand: a server certificate, optionally a client CA (mutual TLS)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from tests.kube.certs import KeyPair
from tests.rawhttp import answer


def tls_server_context(tmp_path: Path, leaf: KeyPair, name: str, client_ca: KeyPair | None = None) -> ssl.SSLContext:
    (tmp_path / f"{name}.pem").write_bytes(leaf.cert_pem)
    (tmp_path / f"{name}.key").write_bytes(leaf.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / f"{name}.pem", tmp_path / f"{name}.key")
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca.cert_pem.decode())
    return context


async def serve_tls(host: str, port: int, context: ssl.SSLContext, body: bytes) -> asyncio.Server:
    """Answers every request on every connection with `body`."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(answer(body, headers="Content-Type: application/json\r\n"))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(serve, host, port, ssl=context)
