"""A Messages API of our own on 127.0.0.1, for the anthropic SDK to talk to in tests.

It answers POST /v1/messages from a script (status, body, headers, delay, a dropped
connection), or, with no script, with a message built by a reply function from the
request; it records what it saw and how many requests were in flight at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def message(text: str, model: str = "claude-sonnet-5-5", input_tokens: int = 1200, output_tokens: int = 800) -> dict:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


@dataclass
class Scripted:
    """One answer of the fake server."""

    status: int = 200
    body: object = None  # a dict is sent as JSON; None: a plain successful message
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


class FakeMessagesAPI:
    """Answers POST /v1/messages from a queue, and records what it saw."""

    def __init__(self, reply: Callable[[dict], object] | None = None) -> None:
        self.reply = reply  # body of an unscripted answer, from the request's body
        self.delay = 0.0  # seconds before answering, when the answer names none
        self.answered: list = []  # the bodies of the 200 answers sent (what the API would bill)
        self.queue: deque[Scripted] = deque()
        self.requests: list[dict] = []  # {"body": ..., "headers": ...} per request, in arrival order
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""
        self._lock = threading.Lock()

    def script(self, *answers: Scripted) -> None:
        self.queue.extend(answers)

    def arrive(self, body: dict, headers: dict) -> Scripted:
        with self._lock:
            self.requests.append({"body": body, "headers": headers})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.queue.popleft() if self.queue else Scripted()

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


def handler_for(api: FakeMessagesAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path.split("?")[0] != "/v1/messages":
                self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}}, {})
                return
            answer = api.arrive(body, {key.lower(): value for key, value in self.headers.items()})
            try:
                time.sleep(answer.delay or api.delay)
            finally:
                api.leave()
            if answer.drop:
                self.close_connection = True
                return
            if answer.body is not None:
                reply = answer.body
            elif api.reply is not None:
                reply = api.reply(body)
            else:
                reply = message("Hello", model=body.get("model", ""))
            if answer.status == 200:
                with api._lock:
                    api.answered.append(reply)
            self._send(answer.status, reply, answer.headers)

        def _send(self, status: int, body: object, headers: dict) -> None:
            data = json.dumps(body).encode() if not isinstance(body, (bytes, str)) else str(body).encode()
            try:
                self.send_response(status)
                if "content-type" not in headers:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", "req_test")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test): nothing to answer

        def log_message(self, *args) -> None:  # keep pytest's output clean
            pass

    return Handler




class LocalServer:
    """A FakeMessagesAPI served on a free port of 127.0.0.1 in a thread: `with LocalServer() as api`."""

    def __init__(self, api: FakeMessagesAPI | None = None):
        self.api = api or FakeMessagesAPI()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self.api))
        self.api.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeMessagesAPI:
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self.api

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
