"""Exercises the streams of a generated Python client (micro_client.py, on the path) against a
running gateway: python3 check_streams.py <gateway url> <token>. Prints one JSON object of
results by label; python.test.ts checks them. The last part drives the WebSocket frame layer
with hostile bytes from a socket pair."""
import json, socket, struct, sys
from micro_client import (MicroClient, MicroError, MicroConnectionError, MicroProtocolError, MicroStream,
                          StreamClosedError, StreamEnded, MessageTooLarge, _WebSocket, _mask)

results = {}
def out(label, value):
    results[label] = value

def catch(fn):
    try:
        return ["ok", fn()]
    except MicroError as e:
        return ["MicroError", e.code, e.detail]
    except MicroProtocolError as e:
        return ["MicroProtocolError", e.code, str(e)]
    except MicroConnectionError as e:
        return ["MicroConnectionError", str(e)]
    except (StreamClosedError, StreamEnded, MessageTooLarge, ValueError) as e:
        return [type(e).__name__, str(e)]

url, token = sys.argv[1], sys.argv[2]
c = MicroClient(url, token=token)
anon = MicroClient(url)

# server streams: server-sent events (the generated method) and a WebSocket
out("sse", [m["index"] for m in c.greeter_stream(name="S", count=3)])
out("ws", [m["index"] for m in c.stream("greeter", "Stream", {"name": "W", "count": 3})])
out("sse_any", [m["message"] for m in c.stream_sse("greeter", "Stream", {"name": "Q", "count": 1})])
for m in c.greeter_stream(name="early", count=1000):
    break
out("sse_after_break", len(list(c.greeter_stream(name="x", count=2))))
out("sse_invalid", catch(lambda: list(c.greeter_stream(name="x", count=5000))))
out("sse_anonymous", catch(lambda: list(anon.greeter_stream(name="x", count=1))))
out("sse_nested", catch(lambda: list(c.stream_sse("greeter", "Stream", {"name": {"a": 1}, "count": 1}))))
out("ws_anonymous", catch(lambda: list(anon.stream("greeter", "Stream", {"name": "x", "count": 1}))))
out("ws_unknown", catch(lambda: c.open_stream("greeter", "Nope")))

# client streams
out("sum", c.greeter_sum([{"x": 1}, {"x": 2.5}]))
out("sum_generator", c.greeter_sum({"x": i} for i in range(1000)))
out("sum_none", c.greeter_sum([]))
out("sum_invalid", catch(lambda: c.greeter_sum([{"x": "nope"}])))

# bidi: answers while sending; a large message goes in fragments, a large answer comes back
with c.greeter_chat() as chat:
    chat.send({"text": "a"})
    first = chat.recv()
    chat.send({"text": "y" * 300000})
    big = chat.recv()
    chat.end()
    chat.end()
    out("chat", [first, len(big["text"]), list(chat)])
    out("chat_send_after_end", catch(lambda: chat.send({"text": "late"})))
    out("chat_recv_after_end", catch(lambda: chat.recv()))

# an error mid-stream: the answers before it, then MicroError; sends after it raise it again
chat = c.greeter_chat()
chat.send({"text": "one"})
chat.send({"text": "two", "fail": True})
out("chat_error", [chat.recv(), catch(lambda: chat.recv()), catch(lambda: chat.send({"text": "three"}))])

# oversized: refused here (the stream goes on), or by the gateway (1009)
with c.greeter_chat() as chat:
    out("too_large", catch(lambda: chat.send({"text": "z" * 1048577})))
    out("end_as_request", catch(lambda: chat.send({"end": True})))
    chat.send({"text": "still"})
    out("after_too_large", chat.recv())
unchecked = MicroClient(url, token=token, max_message=10**9)
with unchecked.greeter_chat() as chat:
    # the gateway closes with 1009 as soon as it reads the frame's length; when it resets the
    # connection while this is still sending, send() raises MicroConnectionError and recv() still
    # reads the close frame that came first
    try:
        chat.send({"text": "z" * 1500000})
    except MicroConnectionError:
        pass
    out("gateway_1009", catch(lambda: chat.recv()))

# close cancels the call on the service
chat = c.greeter_chat()
chat.send({"text": "py-cancel"})
chat.recv()
chat.close()
out("closed_send", catch(lambda: chat.send({"text": "x"})))

# the frame layer against hostile and odd bytes from a stand-in peer (a socket pair)
def frame(opcode, payload, fin=True, masked=False, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([(0x80 if masked else 0) | n])
    elif n < 65536:
        head += bytes([(0x80 if masked else 0) | 126]) + struct.pack("!H", n)
    else:
        head += bytes([(0x80 if masked else 0) | 127]) + struct.pack("!Q", n)
    if masked:
        head += b"abcd"
        payload = _mask(payload, b"abcd")
    return head + payload

def read_frame(sock):
    b0, b1 = sock.recv(2, socket.MSG_WAITALL)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))[0]
    elif n == 127:
        n = struct.unpack("!Q", sock.recv(8, socket.MSG_WAITALL))[0]
    key = sock.recv(4, socket.MSG_WAITALL) if b1 & 0x80 else b""
    data = sock.recv(n, socket.MSG_WAITALL) if n else b""
    return b0 & 0x0F, bool(b1 & 0x80), _mask(data, key) if key else data

def peer(*frames, max_message=1048576):
    a, b = socket.socketpair()
    b.sendall(b"".join(frames))
    return _WebSocket(a, max_message), b

ws, server = peer(frame(0x1, b'{"par', fin=False), frame(0x9, b"hi"), frame(0x0, b't":1}'))
msg = ws.recv_message()
pong = read_frame(server)
out("fragments_and_ping", [msg, pong[0], pong[1], pong[2].decode()])
ws.send_text("x" * 70000)
f1, f2 = read_frame(server), read_frame(server)
out("fragmented_send", [f1[0], f1[1], len(f1[2]), f2[0], len(f2[2])])
for label, frames, limit in [
    ("masked_from_server", [frame(0x1, b"{}", masked=True)], 1048576),
    ("huge_length", [frame(0x1, b"", length=2**62)], 1048576),
    ("over_max_message", [frame(0x1, b"x" * 200)], 100),
    ("binary", [frame(0x2, b"\x00\x01")], 1048576),
    ("bad_utf8", [frame(0x1, b"\xff\xfe")], 1048576),
    ("stray_continuation", [frame(0x0, b"x")], 1048576),
    ("long_control", [frame(0x9, b"p" * 126)], 1048576),
]:
    ws, server = peer(*frames, max_message=limit)
    r = catch(lambda: ws.recv_message())
    sent = read_frame(server)
    out(label, [r[0], r[1], sent[0], struct.unpack("!H", sent[2][:2])[0]])
ws, server = peer(frame(0x8, struct.pack("!H", 1001) + b"bye"))
r = ws.recv_message()
echo = read_frame(server)
out("peer_close", [r, ws.close_code, ws.close_reason, echo[0], struct.unpack("!H", echo[2][:2])[0]])
ws, server = peer(frame(0x1, b'{"i":1}'))
server.close()
s = MicroStream(ws, "ws://stand-in/v1/x/Y", "x", 1048576)
out("dropped", [s.recv(), catch(lambda: s.recv())[0]])

# a gateway that closes with 1009 and resets the connection while a large message is still being
# sent (TCP, unread bytes on close: a reset): send() raises MicroConnectionError, recv() the 1009
listener = socket.create_server(("127.0.0.1", 0))
a = socket.create_connection(listener.getsockname())
b, _ = listener.accept()
listener.close()
a.sendall(b"\x81")  # the start of a frame, left unread
b.sendall(frame(0x8, struct.pack("!H", 1009) + b"too big"))
b.close()
s = MicroStream(_WebSocket(a, 1048576), "ws://stand-in/v1/x/Y", "x", 10**9)
sent = catch(lambda: [s.send({"text": "z" * 1000000}) for _ in range(64)])
got = catch(lambda: s.recv())
out("reset_while_sending", [sent[0], got[0], got[1]])

print(json.dumps(results))
