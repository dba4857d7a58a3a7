"""Running a sandbox app: loopback only, an OS-chosen port, and a ready file that says where it is."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import uvicorn

LOOPBACK = "127.0.0.1"


def serve(app, *, port: int = 0, ready_file: str | None = None, extra: dict | None = None) -> None:
    """Serve ``app`` on 127.0.0.1 until interrupted.

    The socket is bound here (port 0 lets the OS pick a free one) so the URL is known before uvicorn
    starts; the ready file is written once the server accepts connections.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(2048)
    url = f"http://{LOOPBACK}:{sock.getsockname()[1]}"

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30)
    server = uvicorn.Server(config)

    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        if ready_file:
            tmp = Path(f"{ready_file}.tmp")
            tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), **(extra or {})}))
            tmp.replace(ready_file)
        print(f"listening on {url}", flush=True)

    server.startup = startup
    server.run(sockets=[sock])
