"""``memtui serve``: the dashboard in a web browser, through textual-serve.

textual-serve runs a command once per browser connection, as a subprocess
whose screen it streams over a WebSocket. That command is this same memtui's
dashboard (``python -m memtui --db PATH``, the Python running this server), so
each browser tab gets the real app, with its own engine on the database, as
``memtui --db PATH`` in a terminal would; closing the tab quits it the way
``q`` does.

The page has no login of its own, so two things are checked on every request
beyond what textual-serve does: the Host header must name this machine unless
the server was started ``--public`` (a web page elsewhere cannot reach
127.0.0.1:8000 by re-pointing its own name at it: DNS rebinding), and the
WebSocket that drives the app must come from a page of this same server (its
Origin), so another site open in the browser cannot type into the dashboard.

A database URL's password never appears on the served command line (a process
listing shows it to every local user), in the page, or in what this prints: a
URL reaches the dashboards through ``$MEMTUI_DB`` in their environment.
"""
from __future__ import annotations

import ipaddress
import os
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

from textual_serve.server import Server

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def is_loopback(host: str) -> bool:
    """``host`` names this machine only: localhost, 127.0.0.0/8, ::1."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False


def served_command(db: Path | str, config: str | None = None) -> tuple[str, dict[str, str]]:
    """The shell command textual-serve runs per connection, and what its environment must add.

    A path goes on the command line as an absolute ``--db``; a URL (it may hold a password) goes
    in ``$MEMTUI_DB``, which the dashboard reads when no ``--db`` is given."""
    parts = [sys.executable, "-m", "memtui"]
    env: dict[str, str] = {}
    if isinstance(db, Path):
        parts += ["--db", str(db.resolve())]
    else:
        env["MEMTUI_DB"] = db
    if config is not None:
        parts += ["--config", str(Path(config).expanduser().resolve())]
    return shlex.join(parts), env


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class DashboardServer(Server):
    """textual-serve's server, with a title, a startup line that shows no password, and the
    Host and Origin checks described above."""

    def __init__(self, command: str, *, host: str, port: int, label: str, public: bool):
        super().__init__(command, host=host, port=port, title="memtui")
        self.label = label
        self.public = public
        self.sockets: set = set()  # the browsers connected now, each driving one dashboard

    async def on_startup(self, app) -> None:
        print(f"memtui: serving the dashboard of {self.label} at {url_for(self.host, self.port)} "
              "(ctrl-c stops it)", file=sys.stderr, flush=True)

    def _host_allowed(self, request) -> bool:
        if self.public:
            return True
        try:
            name = urlsplit(f"//{request.host}").hostname or ""
        except ValueError:
            return False
        return is_loopback(name)

    def _same_origin(self, request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:  # not a browser (browsers always send Origin on a WebSocket)
            return True
        try:
            return urlsplit(origin).netloc.lower() == request.host.lower()
        except ValueError:
            return False

    async def handle_index(self, request):
        from aiohttp import web

        if not self._host_allowed(request):
            raise web.HTTPForbidden(text="memtui serve: this address is for this machine only\n")
        # The page's WebSocket and static URLs: the address the browser used (textual-serve would
        # write the bound address, and 0.0.0.0 is no address a browser elsewhere can reach).
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def handle_websocket(self, request):
        """textual-serve's own handler, plus the checks, and a record of the socket so that
        stopping the server quits every dashboard (each stops its engine) instead of orphaning it."""
        import asyncio

        from aiohttp import web
        from textual_serve.app_service import AppService
        from textual_serve.server import log, to_int

        if not (self._host_allowed(request) and self._same_origin(request)):
            raise web.HTTPForbidden(text="memtui serve: not from this dashboard's page\n")
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        app_service = None
        self.sockets.add(websocket)
        try:
            await websocket.prepare(request)
            app_service = AppService(self.command, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                                     close=websocket.close, download_manager=self.download_manager,
                                     debug=self.debug)
            await app_service.start(width, height)
            await self._process_messages(websocket, app_service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:
            log.exception(error)
        finally:
            self.sockets.discard(websocket)
            if app_service is not None:
                await app_service.stop()  # asks the dashboard to quit, and waits for it
        return websocket

    async def on_shutdown(self, app) -> None:
        from aiohttp import WSCloseCode

        for websocket in list(self.sockets):
            await websocket.close(code=WSCloseCode.GOING_AWAY, message=b"memtui serve stopped")


def serve(db: Path | str, *, label: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          config: str | None = None, public: bool = False) -> int:
    """Serve the dashboard until ctrl-c or SIGTERM."""
    command, env = served_command(db, config)
    os.environ.update(env)  # textual-serve gives each dashboard a copy of this environment
    DashboardServer(command, host=host, port=port, label=label, public=public).serve()
    return 0
