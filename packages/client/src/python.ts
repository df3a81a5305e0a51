// A Python 3 client generated from the gateway's OpenAPI document: one module, the
// standard library only, one method per endpoint: calls with urllib.request, server streams
// as server-sent events (urllib) or on a WebSocket, client and bidi streams on a WebSocket
// (a small RFC 6455 client on socket/ssl). Pure string work: no Node API, so it runs in
// browsers too.

interface Schema {
  type?: string | string[];
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  anyOf?: Schema[];
  oneOf?: Schema[];
}

interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Schema }> }>;
  /** a stream's kind: `server`, `client` or `bidi` */
  'x-micro-stream'?: string;
  /** a stream's message schemas */
  'x-micro-messages'?: { request?: Schema; response?: Schema };
  /** a server stream that is also served as server-sent events (a flat request) */
  'x-micro-sse'?: boolean;
}

export interface OpenApiDocument {
  openapi?: string;
  info?: { title?: string; version?: string };
  paths?: Record<string, Record<string, Operation>>;
}

const KEYWORDS = new Set(
  ('False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda ' +
    'nonlocal not or pass raise return try while with yield self match case type').split(' '),
);

/** `ListServices` → `list_services`, `HTTPThing` → `http_thing`, `a-b.c` → `a_b_c`. */
export function snakeCase(s: string): string {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .replace(/_+/g, '_')
    .toLowerCase();
}

/** A Python identifier for a name: snake case, never a keyword, never starting with a digit. */
function identifier(name: string): string {
  let id = snakeCase(name) || 'x';
  if (/^[0-9]/.test(id)) id = `_${id}`;
  if (KEYWORDS.has(id) || id.startsWith('_unset')) id = `${id}_`;
  return id;
}

/** A Python string literal (JSON's escapes are Python's, and `\u2028` is fine in Python). */
function pyString(s: string): string {
  return JSON.stringify(s);
}

/** Text safe inside a `"""` docstring. */
function docText(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"""/g, '\\"\\"\\"').replace(/\r\n?/g, '\n');
}

function pyType(s: Schema | undefined): string {
  if (!s) return 'Any';
  const t = Array.isArray(s.type) ? s.type.filter((x) => x !== 'null') : s.type;
  const one = Array.isArray(t) ? (t.length === 1 ? t[0] : undefined) : t;
  const nullable = Array.isArray(s.type) && s.type.includes('null');
  const base = (() => {
    switch (one) {
      case 'string':
        return 'str';
      case 'integer':
        return 'int';
      case 'number':
        return 'float';
      case 'boolean':
        return 'bool';
      case 'array':
        return `list[${pyType(s.items)}]`;
      case 'object':
        return 'dict[str, Any]';
      default:
        return 'Any';
    }
  })();
  return nullable && base !== 'Any' ? `${base} | None` : base;
}

function jsonSchemaOf(op: Operation): Schema | undefined {
  return op.requestBody?.content?.['application/json']?.schema;
}

// String.raw: the Python text as written (its "\r\n" stay escapes); it has no backtick and no "${".
const PRELUDE = String.raw`
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
import struct
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterable, Iterator, Optional, Union


class MicroError(Exception):
    """An error of the Micro API gateway: {"id", "code", "detail", "status"}."""

    def __init__(self, id: str, code: int, detail: str, status: str):
        super().__init__(f"{code} {status}: {detail} ({id})")
        self.id = id
        self.code = code
        self.detail = detail
        self.status = status


class MicroConnectionError(ConnectionError):
    """The gateway could not be reached (refused, DNS, TLS, timeout), or a stream's connection dropped; names the URL."""

    def __init__(self, url: str, reason: Any):
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason


class MicroProtocolError(Exception):
    """A stream closed abnormally (code: the WebSocket close code, e.g. 1001 going away, 1009 too big), or bytes that are not the protocol."""

    def __init__(self, message: str, code: Optional[int] = None, reason: str = ""):
        super().__init__(message)
        self.code = code
        self.reason = reason


class StreamEnded(EOFError):
    """recv() on a stream that is over: the service is done (iterating stops there), or close() was called."""


class StreamClosedError(Exception):
    """send() or end() on a stream after end() or close(), or once the service is done."""


class MessageTooLarge(ValueError):
    """A stream message over max_message bytes: not sent, the stream goes on."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_END = '{"end":true}'


def _mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 masking, as one XOR of two big integers (a byte loop would be slow for large messages)."""
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


class _WebSocket:
    """A small RFC 6455 client endpoint on a connected socket: masked frames out, large messages
    sent in fragments, fragmented messages read back, pings answered, the closing handshake."""

    def __init__(self, sock: Any, max_message: int, buffered: bytes = b"", fragment: int = 65536):
        self.sock = sock
        self.max_message = max_message
        self.fragment = fragment
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.close_sent = False
        self._buf = bytearray(buffered)
        self._frame_lock = threading.Lock()  # one frame at a time (a pong may go between fragments)
        self._message_lock = threading.Lock()  # one message at a time

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("the connection closed without a closing handshake")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def write_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        n = len(payload)
        header = bytearray([(0x80 if fin else 0) | opcode])
        if n < 126:
            header.append(0x80 | n)
        elif n < 65536:
            header.append(0x80 | 126)
            header += struct.pack("!H", n)
        else:
            header.append(0x80 | 127)
            header += struct.pack("!Q", n)
        key = os.urandom(4)
        header += key
        with self._frame_lock:
            self.sock.sendall(bytes(header) + _mask(payload, key))

    def send_text(self, text: str) -> None:
        data = text.encode("utf-8")
        with self._message_lock:
            if len(data) <= self.fragment:
                self.write_frame(_TEXT, data)
                return
            for i in range(0, len(data), self.fragment):
                self.write_frame(_TEXT if i == 0 else _CONT, data[i:i + self.fragment], fin=i + self.fragment >= len(data))

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        if self.close_sent:
            return
        self.close_sent = True
        try:
            self.write_frame(_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:123])
        except OSError:
            pass

    def shutdown(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def fail(self, code: int, why: str) -> MicroProtocolError:
        self.send_close(code, why)
        self.shutdown()
        return MicroProtocolError(f"{why} (closed with {code})", code, why)

    def recv_message(self) -> Optional[str]:
        """The next text message; None once the peer has closed (close_code and close_reason say how)."""
        parts = []
        size = 0
        kind: Optional[int] = None
        while True:
            b0, b1 = self._read(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            if b0 & 0x70:
                raise self.fail(1002, "a frame with reserved bits set")
            if b1 & 0x80:
                raise self.fail(1002, "a masked frame from the server")
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            if opcode >= 0x8:
                if n > 125 or not fin:
                    raise self.fail(1002, "a control frame fragmented or over 125 bytes")
                payload = self._read(n)
                if opcode == _PING:
                    try:
                        self.write_frame(_PONG, payload)
                    except OSError:
                        pass
                elif opcode == _CLOSE:
                    if n == 1:
                        raise self.fail(1002, "a close frame of one byte")
                    self.close_code = struct.unpack("!H", payload[:2])[0] if n >= 2 else 1005
                    self.close_reason = payload[2:].decode("utf-8", "replace")
                    # the closing handshake: the same code back (1000 when there was none)
                    self.send_close(self.close_code if n >= 2 else 1000)
                    self.shutdown()
                    return None
                elif opcode != _PONG:
                    raise self.fail(1002, f"an unknown control opcode {opcode}")
                continue
            if opcode == _CONT:
                if kind is None:
                    raise self.fail(1002, "a continuation frame outside a message")
            elif opcode in (_TEXT, _BINARY):
                if kind is not None:
                    raise self.fail(1002, "a new message inside a fragmented one")
                kind = opcode
            else:
                raise self.fail(1002, f"an unknown opcode {opcode}")
            size += n
            # checked before reading: a hostile length never allocates
            if size > self.max_message:
                raise self.fail(1009, f"a message over {self.max_message} bytes")
            parts.append(self._read(n))
            if fin:
                if kind == _BINARY:
                    raise self.fail(1003, "a binary message (the gateway sends JSON text)")
                try:
                    return b"".join(parts).decode("utf-8")
                except UnicodeDecodeError:
                    raise self.fail(1007, "a message that is not UTF-8") from None


class MicroStream:
    """A stream on a WebSocket: send() requests, end() them, recv() (or iterate) the responses.

    close() (or leaving a with block) cancels the call. Read what the gateway sends: it pings
    every 30 s, and a stream that answers none (reading nothing for a minute) is dropped.
    """

    def __init__(self, ws: _WebSocket, url: str, service: str, max_message: int):
        self._ws = ws
        self.url = url
        self.service = service
        self.max_message = max_message
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self._ended = False
        self._done = False
        self._error: Optional[BaseException] = None
        self._closed = False

    def _finish(self, error: Optional[BaseException]) -> None:
        if self._done:
            return
        self._done = True
        self._error = error
        if not self._ws.close_sent:
            self._ws.send_close(1000)
        self._ws.shutdown()

    def _check(self) -> None:
        if self._done:
            if self._error is not None:
                raise self._error
            raise StreamClosedError(f"{self.url}: the stream was closed" if self._closed else f"{self.url}: the stream is over")

    def _send(self, text: str) -> None:
        try:
            self._ws.send_text(text)
        except OSError as e:
            # what the gateway said before it went (a close code) is read by recv()
            raise MicroConnectionError(self.url, e) from None

    def send(self, request: Any) -> None:
        """One request (a dict): one JSON text message.

        MicroConnectionError when the connection drops while sending; the gateway may have closed
        the stream first (1009 for a message over its limit) and recv() then raises what it said."""
        if self._ended:
            raise StreamClosedError(f"{self.url}: send after end()")
        self._check()
        text = json.dumps(request, separators=(",", ":"))
        if text == _END:
            raise ValueError('{"end": true} cannot be sent as a request (it ends the requests): call end()')
        size = len(text.encode("utf-8"))
        if size > self.max_message:
            raise MessageTooLarge(f"{self.url}: a request of {size} bytes is over max_message ({self.max_message}); the gateway closes a stream past its own limit")
        self._send(text)

    def end(self) -> None:
        """{"end": true}: no more requests (a second end() does nothing)."""
        if self._ended:
            return
        self._check()
        self._ended = True
        self._send(_END)

    def recv(self) -> Any:
        """The next response; StreamEnded once the service is done; MicroError for its error."""
        self._check_readable()
        try:
            text = self._ws.recv_message()
        except MicroProtocolError as e:
            self._finish(e)
            raise
        except OSError as e:
            err = MicroConnectionError(self.url, e)
            self._finish(err)
            raise err from None
        if text is None:
            code, reason = self._ws.close_code, self._ws.close_reason
            self.close_code, self.close_reason = code, reason
            if code == 1000:
                self._finish(None)
                raise StreamEnded(f"{self.url}: the stream is over")
            if code is not None and 4400 <= code < 4600:
                err: BaseException = MicroError(self.service, code - 4000, reason or f"closed with {code}", reason or "Error")
            else:
                err = MicroProtocolError(f"{self.url}: closed with code {code}" + (f": {reason}" if reason else ""), code, reason)
            self._finish(err)
            raise err
        try:
            msg = json.loads(text)
        except ValueError:
            err = self._ws.fail(1003, "a message that is not JSON")
            self._finish(err)
            raise err from None
        if isinstance(msg, dict) and len(msg) == 1 and isinstance(msg.get("error"), dict):
            e = msg["error"]
            if isinstance(e.get("code"), int) and isinstance(e.get("detail"), str):
                err = MicroError(str(e.get("id", self.service)), e["code"], e["detail"], str(e.get("status", "Error")))
                self._finish(err)
                raise err
        return msg

    def _check_readable(self) -> None:
        if self._done:
            if self._error is not None:
                raise self._error
            raise StreamEnded(f"{self.url}: the stream is over")

    def close(self) -> None:
        """Cancels the call (the service's ctx.signal fires); sends and recv() raise after it."""
        if not self._done:
            self._finish(None)
            self._closed = True

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self.recv()
        except StreamEnded:
            raise StopIteration from None

    def __enter__(self) -> "MicroStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class MicroClient:
    """A client of the Micro API gateway.

    url: the gateway, e.g. "http://127.0.0.1:8080"
    token: an access token or API key, or a function returning one
    namespace: sent as Micro-Namespace (admins of micro only)
    timeout: seconds a call may take; for streams, seconds to connect and each wait for
        server-sent events (the gateway sends a keep-alive every 15 s)
    max_message: the largest stream message, bytes, each way (the gateway's default limit)
    """

    def __init__(self, url: str, token: Union[str, Callable[[], str], None] = None, namespace: Optional[str] = None, timeout: float = 30, max_message: int = 1048576):
        self.url = url.rstrip("/")
        self.token = token
        self.namespace = namespace
        self.timeout = timeout
        self.max_message = max_message

    @staticmethod
    def _path(service: str, endpoint: str) -> str:
        return "/v1/" + urllib.parse.quote(service, safe="") + "/" + "/".join(urllib.parse.quote(p, safe="") for p in endpoint.split("."))

    def _headers(self, accept: str) -> dict:
        headers = {"Accept": accept}
        token = self.token() if callable(self.token) else self.token
        if token:
            headers["Authorization"] = "Bearer " + token
        if self.namespace:
            headers["Micro-Namespace"] = self.namespace
        for v in headers.values():
            if "\r" in v or "\n" in v:
                raise ValueError("a token or namespace with a line break")
        return headers

    def call(self, service: str, endpoint: str, request: Optional[dict] = None) -> Any:
        """Calls any endpoint: POST /v1/{service}/{endpoint} ("Handler.Method" → Handler/Method)."""
        return self._post(self._path(service, endpoint), service, request or {})

    def _open(self, req: urllib.request.Request, service: str, url: str) -> Any:
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            try:
                err = json.loads(text)
            except ValueError:
                err = None
            if isinstance(err, dict) and isinstance(err.get("code"), int) and isinstance(err.get("detail"), str):
                raise MicroError(str(err.get("id", service)), err["code"], err["detail"], str(err.get("status", e.reason))) from None
            raise MicroError(service, e.code, text[:500] or str(e.reason), str(e.reason)) from None
        except urllib.error.URLError as e:
            raise MicroConnectionError(url, e.reason) from None
        except socket.timeout as e:
            raise MicroConnectionError(url, "timed out after %s s" % self.timeout) from e

    def _post(self, path: str, service: str, body: dict) -> Any:
        url = self.url + path
        headers = self._headers("application/json")
        headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
        with self._open(req, service, url) as res:
            try:
                text = res.read().decode("utf-8")
            except socket.timeout as e:
                raise MicroConnectionError(url, "timed out after %s s" % self.timeout) from e
            return json.loads(text) if text else None

    def open_stream(self, service: str, endpoint: str) -> MicroStream:
        """Opens a stream of any kind on a WebSocket (GET /v1/{service}/{endpoint}, upgraded)."""
        return self._ws_open(self._path(service, endpoint), service)

    def stream(self, service: str, endpoint: str, request: Optional[dict] = None) -> Iterator[Any]:
        """A server stream on a WebSocket: the request, then each response (stopping early cancels it)."""
        return self._ws_server_stream(self._path(service, endpoint), service, request or {})

    def stream_sse(self, service: str, endpoint: str, request: Optional[dict] = None) -> Iterator[Any]:
        """A server stream as server-sent events: a POST of the request as JSON with Accept: text/event-stream (any server stream)."""
        return self._sse(self._path(service, endpoint), service, request or {})

    def _ws_server_stream(self, path: str, service: str, request: dict) -> Iterator[Any]:
        with self._ws_open(path, service) as s:
            s.send(request)
            yield from s

    def _client_stream(self, path: str, service: str, requests: Iterable[Any]) -> Any:
        with self._ws_open(path, service) as s:
            for r in requests:
                s.send(r)
            s.end()
            try:
                return s.recv()
            except StreamEnded:
                raise MicroProtocolError(f"{s.url}: the stream ended without a response") from None

    def _ws_open(self, path: str, service: str) -> MicroStream:
        url = self.url + path
        u = urllib.parse.urlsplit(url)
        secure = u.scheme == "https"
        host = u.hostname or "localhost"
        port = u.port or (443 if secure else 80)
        headers = self._headers("application/json")
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        lines = [
            f"GET {u.path} HTTP/1.1",
            f"Host: {u.netloc.rpartition('@')[2]}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: micro",
        ] + [f"{k}: {v}" for k, v in headers.items()]
        try:
            sock = socket.create_connection((host, port), timeout=self.timeout)
        except OSError as e:
            raise MicroConnectionError(url, e) from None
        try:
            if secure:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            buf = b""
            while b"\r\n\r\n" not in buf:
                if len(buf) > 65536:
                    raise MicroProtocolError(f"{url}: the answer to the upgrade has over 64 KiB of headers")
                chunk = sock.recv(65536)
                if not chunk:
                    raise MicroConnectionError(url, "the connection closed during the upgrade")
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            parts = status_line.split(" ", 2)
            status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
            answer = {}
            for line in header_lines:
                k, _, v = line.partition(":")
                answer[k.strip().lower()] = v.strip()
            if status != 101:
                # refused before the upgrade: the gateway's JSON error (401, 403, 404, 429, ...)
                length = min(int(answer.get("content-length", "0") or 0), 1048576)
                while len(rest) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                text = rest[:length].decode("utf-8", "replace")
                try:
                    err = json.loads(text)
                except ValueError:
                    err = None
                reason = parts[2] if len(parts) > 2 else "Error"
                if isinstance(err, dict) and isinstance(err.get("code"), int) and isinstance(err.get("detail"), str):
                    raise MicroError(str(err.get("id", service)), err["code"], err["detail"], str(err.get("status", reason)))
                raise MicroError(service, status, text[:500] or reason, reason)
            accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode("ascii")).digest()).decode("ascii")
            if answer.get("upgrade", "").lower() != "websocket" or answer.get("sec-websocket-accept") != accept:
                raise MicroProtocolError(f"{url}: the answer to the upgrade is not a WebSocket handshake")
            # the stream has no deadline: a recv() waits for the service
            sock.settimeout(None)
            return MicroStream(_WebSocket(sock, self.max_message, rest), url, service, self.max_message)
        except OSError as e:
            sock.close()
            if isinstance(e, MicroConnectionError):
                raise
            raise MicroConnectionError(url, "timed out after %s s" % self.timeout if isinstance(e, socket.timeout) else e) from None
        except BaseException:
            sock.close()
            raise

    def _sse(self, path: str, service: str, request: dict) -> Iterator[Any]:
        # a POST, not a GET with query parameters: the gateway answers GET for read-only
        # endpoints only, and a JSON body takes any request, nested ones too
        url = self.url + path
        headers = self._headers("text/event-stream")
        headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=json.dumps(request).encode("utf-8"), headers=headers, method="POST")
        res = self._open(req, service, url)
        try:
            event, data = "message", []
            while True:
                line = res.readline(self.max_message + 16)
                if not line:
                    raise MicroConnectionError(url, "the stream ended before its end event")
                if not line.endswith(b"\n"):
                    raise MicroProtocolError(f"{url}: an event line over max_message ({self.max_message} bytes)")
                text = line.decode("utf-8").rstrip("\r\n")
                if text == "":
                    if data:
                        if event == "end":
                            return
                        try:
                            value = json.loads("\n".join(data))
                        except ValueError:
                            raise MicroProtocolError(f"{url}: an event that is not JSON") from None
                        if event == "error":
                            e = value if isinstance(value, dict) else {}
                            raise MicroError(str(e.get("id", service)), int(e.get("code", 500)), str(e.get("detail", value)), str(e.get("status", "Error")))
                        yield value
                    event, data = "message", []
                elif not text.startswith(":"):
                    field, _, value_text = text.partition(":")
                    value_text = value_text[1:] if value_text.startswith(" ") else value_text
                    if field == "data":
                        data.append(value_text)
                    elif field == "event":
                        event = value_text
        except MicroConnectionError:
            raise
        except (OSError, http.client.HTTPException) as e:
            raise MicroConnectionError(url, "timed out after %s s" % self.timeout if isinstance(e, socket.timeout) else e) from None
        finally:
            res.close()
`;

/**
 * The Python module of a gateway's OpenAPI document: `MicroClient(url, token=None,
 * namespace=None, timeout=30, max_message=1 MiB)` with one method per endpoint
 * (`greeter.Greeter.Hello` → `greeter_greeter_hello`), keyword arguments from the request
 * schema's properties, `MicroError(id, code, detail, status)` on errors. Server streams
 * return an iterator (server-sent events when the gateway serves them so, else a
 * WebSocket), client streams take an iterable of requests and return the response, bidi
 * streams return a `MicroStream` (send, end, recv, iterate, close). `call`, `stream`,
 * `stream_sse` and `open_stream` reach anything by name.
 */
export function pythonClient(openapi: OpenApiDocument): string {
  const out: string[] = [];
  const title = openapi.info?.title ?? 'Micro API';
  out.push(`"""${docText(`${title}: a client generated from the gateway's OpenAPI document (${openapi.openapi ?? '3.1'}).`)}\n\nStandard library only. Regenerate it when the services change.\n"""`);
  out.push(PRELUDE.trimEnd());
  const used = new Set(['call', 'stream', 'stream_sse', 'open_stream', 'url', 'token', 'namespace', 'timeout', 'max_message']);
  const paths = Object.entries(openapi.paths ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [path, item] of paths) {
    const streamOp = item.get?.['x-micro-stream'] ? item.get : undefined;
    const op = item.post && !item.post['x-micro-stream'] ? item.post : streamOp;
    if (!op) continue;
    const kind = op === streamOp ? String(op['x-micro-stream']) : 'unary';
    if (!['unary', 'server', 'client', 'bidi'].includes(kind)) continue;
    const m = /^\/v1\/([^/]+)\/(.+)$/.exec(path);
    if (!m) continue;
    const service = decodeURIComponent(m[1] as string);
    const endpoint = (m[2] as string).split('/').map(decodeURIComponent).join('.');
    let name = identifier(op.operationId ?? `${service}.${endpoint}`);
    if (used.has(name)) {
      let i = 2;
      while (used.has(`${name}_${i}`)) i++;
      name = `${name}_${i}`;
    }
    used.add(name);

    const schema = kind === 'unary' ? jsonSchemaOf(op) : op['x-micro-messages']?.request;
    const respSchema = kind === 'unary' ? op.responses?.['200']?.content?.['application/json']?.schema : op['x-micro-messages']?.response;
    const props = Object.entries(schema?.properties ?? {});
    const required = new Set(schema?.required ?? []);
    const fieldDocs = props.map(([prop, ps]) => `    ${prop} (${pyType(ps)}${required.has(prop) ? '' : ', optional'})${ps.description ? `: ${ps.description}` : ''}`);
    const summary = op.summary ?? `${service} ${endpoint}`;
    const returns = respSchema?.properties ? `a dict with ${Object.keys(respSchema.properties).join(', ')}` : 'the response';
    const doc = [`${summary}`, ''];
    const body: string[] = [];
    let sig: string;
    let ret: string;

    if (kind === 'unary' || kind === 'server') {
      // keyword-only arguments from the request's fields
      const args: string[] = [];
      const argDocs: string[] = [];
      const taken = new Set(['self', 'extra']);
      body.push('        body: dict = {}');
      for (const [prop, ps] of props) {
        let arg = /^[A-Za-z_][A-Za-z0-9_]*$/.test(prop) && !KEYWORDS.has(prop) ? prop : identifier(prop);
        while (taken.has(arg)) arg = `${arg}_`;
        taken.add(arg);
        const t = pyType(ps);
        if (required.has(prop)) {
          args.push(`${arg}: ${t}`);
          body.push(`        body[${pyString(prop)}] = ${arg}`);
        } else {
          args.push(`${arg}: ${t} = UNSET`);
          body.push(`        if ${arg} is not UNSET:\n            body[${pyString(prop)}] = ${arg}`);
        }
        argDocs.push(`    ${arg} (${t}${required.has(prop) ? '' : ', optional'})${ps.description ? `: ${ps.description}` : ''}`);
      }
      body.push('        body.update(extra)');
      sig = ['self', ...(args.length ? ['*', ...args] : []), '**extra: Any'].join(', ');
      if (kind === 'unary') {
        doc.push(`POST ${path}`);
        ret = pyType(respSchema);
        body.push(`        return self._post(${pyString(path)}, ${pyString(service)}, body)`);
      } else {
        const sse = op['x-micro-sse'] === true;
        doc.push(sse ? `A server stream: GET ${path} as server-sent events.` : `A server stream on a WebSocket: ${path}.`);
        ret = `Iterator[${pyType(respSchema)}]`;
        body.push(`        return self.${sse ? '_sse' : '_ws_server_stream'}(${pyString(path)}, ${pyString(service)}, body)`);
      }
      if (op.description && op.description !== summary && kind === 'unary') doc.push('', op.description);
      if (argDocs.length) doc.push('', 'Args:', ...argDocs);
      doc.push('', kind === 'unary' ? `Returns: ${returns}` : `Yields: ${returns} per response (stopping early cancels the stream)`);
    } else if (kind === 'client') {
      sig = `self, requests: Iterable[${pyType(schema)}]`;
      ret = pyType(respSchema);
      doc.push(`A client stream on a WebSocket: ${path}. Sends each request, then {"end": true}.`);
      doc.push('', 'Args:', '    requests: the requests, each a dict with:', ...fieldDocs.map((d) => `    ${d}`));
      doc.push('', `Returns: ${returns}`);
      body.push(`        return self._client_stream(${pyString(path)}, ${pyString(service)}, requests)`);
    } else {
      sig = 'self';
      ret = 'MicroStream';
      doc.push(`A bidi stream on a WebSocket: ${path}.`, '', 'Returns a MicroStream: send(request), end(), recv() or iterate the responses, close() (or with ... as s:).');
      if (fieldDocs.length) doc.push('', 'Each request: a dict with:', ...fieldDocs);
      doc.push('', `Each response: ${returns}`);
      body.push(`        return self._ws_open(${pyString(path)}, ${pyString(service)})`);
    }
    doc.push('', 'Raises: MicroError on an error of the gateway or the service.');
    out.push('');
    out.push(`    def ${name}(${sig}) -> ${ret}:`);
    out.push(`        """${docText(doc.join('\n')).split('\n').join('\n        ').replace(/[ ]+\n/g, '\n')}\n        """`);
    out.push(...body);
  }
  return out.join('\n') + '\n';
}
