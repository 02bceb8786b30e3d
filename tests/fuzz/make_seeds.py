#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ (docs/fuzzing.md). Deterministic: re-running it rewrites
the same files. Regression inputs for fixed bugs live next to the seeds as regress-*; this script leaves them alone."""
import base64
import hashlib
import hmac
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def j(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- fuzz_native_codec: one client frame per file
OFFER = {"description": {"type": "offer", "sdp": "v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}}
CANDIDATE = {"candidate": {"candidate": "candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host",
                           "sdpMid": "0", "sdpMLineIndex": 0}}
codec = {
    "join": {"v": 1, "type": "join", "id": 1, "room": "demo", "name": "Alice"},
    "join_state_token": {"v": 1, "type": "join", "id": 2, "room": "team.room-1_x", "name": "Zoë 🎧",
                         "token": "e30.e30.AA", "state": {"audioMuted": True, "videoOff": False,
                                                          "screenSharing": False}},
    "resume": {"v": 1, "type": "resume", "id": 3, "room": "demo", "peer": "p7KxQ2mZ", "resume": "k1cAbCdEfGhIjKlMnOpQrStU"},
    "leave": {"v": 1, "type": "leave", "id": 4},
    "signal_offer": {"v": 1, "type": "signal", "id": 5, "to": "pA9xYz", "data": OFFER},
    "signal_candidate": {"v": 1, "type": "signal", "to": "pA9xYz", "data": CANDIDATE},
    "message_to": {"v": 1, "type": "message", "to": "pA9xYz", "data": {"kind": "file-offer", "size": 1048576,
                                                                       "name": "a \"b\"\\c.txt"}},
    "message_broadcast": {"v": 1, "type": "message", "data": [1, -2.5e-3, True, None, "x", {"nested": [[]]}]},
    "chat": {"v": 1, "type": "chat", "id": 6, "text": "hello\nworld \u2603 \"quoted\" \\ \t"},
    "state": {"v": 1, "type": "state", "id": 7, "state": {"videoOff": True}},
    "ping": {"v": 1, "type": "ping"},
    "bad_version": {"v": 2, "type": "ping", "id": 8},
    "unknown_type": {"v": 1, "type": "dance", "id": 9},
    "bad_room": {"v": 1, "type": "join", "room": "../etc", "name": "x"},
}
for name, obj in codec.items():
    write("fuzz_native_codec", name, j(obj))
write("fuzz_native_codec", "not_json", '{"v":1,"type":"ping"')
write("fuzz_native_codec", "escapes", r'{"v":1,"type":"chat","text":"\ud83d\ude00 \u0000 \u001f \/","id":9223372036854775807}')
write("fuzz_native_codec", "big_id", '{"v":1,"type":"ping","id":18446744073709551615}')

# ---------------------------------------------------------------- fuzz_native_session: config byte + script lines
# config: bit0 auth, bits1-2 grace (0: 0 ms, 1: 1 ms, 2: 60 s), bit3 rate limit, bit4 small limits,
# bits5-6 sessions-2, bit7 ticking hub (1 ms).
# Line control byte: '0'.. text+drain, '@'.. text without drain, 'P'.. binary, '`'.. reconnect,
# 'p'..'w' slow consumer, 'x' 2 ms pass, 0x80+ hub shutdown.
# $P<k>/$R<k>: peer id / resume token of slot k; $T: a valid room token.


def cfg(auth=False, grace=0, rate=False, small=False, sessions=2, tick=False):
    assert 2 <= sessions <= 5
    return bytes([(1 if auth else 0) | (grace << 1) | (8 if rate else 0) | (16 if small else 0) |
                  ((sessions - 2) << 5) | (0x80 if tick else 0)])


def script(config, *lines):
    out = bytearray(config)
    for line in lines:
        out += b"\n" + (line.encode() if isinstance(line, str) else line)
    return bytes(out)


def msg(slot, obj, ctl="0"):
    return chr(ord(ctl) + slot) + j(obj)


SIG = lambda to, data, i=None: dict({"v": 1, "type": "signal", "to": to, "data": data}, **({"id": i} if i else {}))
session = {
    "relay": script(cfg(), msg(0, SIG("$P1", OFFER, 2)), msg(1, SIG("$P0", {"description": {"type": "answer",
                    "sdp": "v=0\r\n"}}, 2)), msg(0, SIG("$P1", CANDIDATE)),
                    msg(1, {"v": 1, "type": "chat", "id": 3, "text": "hi"}),
                    msg(0, {"v": 1, "type": "state", "id": 4, "state": {"audioMuted": True}}),
                    msg(1, {"v": 1, "type": "message", "id": 5, "data": {"x": 1}}),
                    msg(0, {"v": 1, "type": "message", "to": "$P1", "data": "direct"}),
                    msg(1, {"v": 1, "type": "ping", "id": 6}),
                    msg(0, {"v": 1, "type": "leave", "id": 7}),
                    msg(0, {"v": 1, "type": "join", "id": 8, "room": "fz", "name": "A again"})),
    "resume_after_drop": script(cfg(grace=2, sessions=3), "`",
                                msg(1, SIG("$P0", OFFER, 2)), msg(1, {"v": 1, "type": "chat", "text": "queued"}),
                                msg(2, {"v": 1, "type": "resume", "id": 9, "room": "fz", "peer": "$P0",
                                        "resume": "$R0"}),
                                msg(2, SIG("$P1", CANDIDATE, 10))),
    "resume_replaces": script(cfg(grace=2, sessions=3),
                              msg(2, {"v": 1, "type": "resume", "id": 1, "room": "fz", "peer": "$P0", "resume": "$R0"}),
                              msg(0, {"v": 1, "type": "ping"}), msg(2, {"v": 1, "type": "leave", "id": 2})),
    "resume_bad": script(cfg(grace=1, sessions=3), "`",
                         msg(2, {"v": 1, "type": "resume", "id": 1, "room": "fz", "peer": "$P0", "resume": "nope"}),
                         msg(2, {"v": 1, "type": "resume", "id": 2, "room": "nowhere", "peer": "x", "resume": "y"}),
                         msg(2, {"v": 1, "type": "resume", "id": 3, "room": "fz", "peer": "$P0", "resume": "$R0"})),
    # Pipelined requests (no drain between them); regress-stale-error-ends-join is the signal/leave/join variant.
    "pipelined": script(cfg(grace=2), msg(0, SIG("$P1", 1, 2), "@"), msg(1, {"v": 1, "type": "chat", "text": "x"}, "@"),
                        msg(0, {"v": 1, "type": "leave", "id": 3}, "@"), msg(1, SIG("$P0", 2, 4), "@"),
                        msg(0, {"v": 1, "type": "ping"})),
    "auth": script(cfg(auth=True, sessions=4),
                   msg(2, {"v": 1, "type": "join", "id": 1, "room": "fz", "name": "C"}),
                   msg(2, {"v": 1, "type": "join", "id": 2, "room": "fz", "token": "e30.e30.e30"}),
                   msg(2, {"v": 1, "type": "join", "id": 3, "room": "fz", "token": "$T"}),
                   msg(3, {"v": 1, "type": "join", "id": 4, "room": "other", "name": "D", "token": "$T"})),
    "small_limits": script(cfg(small=True, grace=2, sessions=5),
                           msg(2, {"v": 1, "type": "join", "id": 1, "room": "fz", "name": "C"}),
                           msg(3, {"v": 1, "type": "join", "id": 1, "room": "fz", "name": "D"}),
                           msg(3, {"v": 1, "type": "join", "id": 2, "room": "r2", "name": "D"}),
                           msg(4, {"v": 1, "type": "join", "id": 1, "room": "r3", "name": "E"}),
                           msg(4, {"v": 1, "type": "chat", "text": "x" * 600}), "a",
                           msg(0, {"v": 1, "type": "chat", "text": "1"}), msg(0, {"v": 1, "type": "chat", "text": "2"}),
                           msg(0, {"v": 1, "type": "chat", "text": "3"}), msg(0, {"v": 1, "type": "chat", "text": "4"})),
    # Grace 1 ms with a ticking hub: the dropped peer expires, the others see peer-left/disconnected, resume fails.
    "expiry": script(cfg(grace=1, tick=True, sessions=3), "`", msg(1, {"v": 1, "type": "chat", "text": "wait"}), "x",
                     msg(2, {"v": 1, "type": "resume", "id": 1, "room": "fz", "peer": "$P0", "resume": "$R0"})),
    "rate_limit": script(cfg(rate=True), *[msg(0, {"v": 1, "type": "ping", "id": i}) for i in range(8)]),
    "errors": script(cfg(sessions=3), "2not json", "2[1,2]", '2{"v":2,"type":"ping","id":1}',
                     '2{"v":1,"type":"chat","text":"x","id":2}', '2{"v":1,"type":"signal","id":3}',
                     '2{"v":1,"type":"ping","id":-1}', '2{"v":1,"type":"ping","id":1.5}', "R" + j({"v": 1, "type": "ping"}),
                     msg(0, {"v": 1, "type": "join", "id": 4, "room": "fz", "name": "A"}),
                     msg(0, SIG("$P0", 1, 5)), msg(0, {"v": 1, "type": "message", "to": "ghost", "data": 0, "id": 6})),
    "shutdown": script(cfg(grace=2), msg(0, {"v": 1, "type": "chat", "text": "bye all"}), b"\x80shutdown",
                       msg(1, {"v": 1, "type": "ping"})),
    "slow_consumer": script(cfg(grace=2), "q", msg(0, {"v": 1, "type": "chat", "text": "to a slow one"}),
                            msg(0, {"v": 1, "type": "message", "to": "$P1", "data": 1})),
    "detached_queue": script(cfg(grace=2, small=True, sessions=3), "a",
                             *[msg(0, {"v": 1, "type": "message", "data": {"n": i}}) for i in range(5)],
                             msg(2, {"v": 1, "type": "resume", "id": 1, "room": "fz", "peer": "$P1", "resume": "$R1"})),
}
for name, data in session.items():
    write("fuzz_native_session", name, data)

# ---------------------------------------------------------------- fuzz_http_request: chunk sizes + raw bytes


def http(raw, chunks=()):
    return bytes([len(chunks)] + list(chunks)) + (raw.encode() if isinstance(raw, str) else raw)


CRLF = "\r\n"
GET = lambda target, extra="": f"GET {target} HTTP/1.1{CRLF}Host: localhost:8443{CRLF}{extra}{CRLF}"
requests = {
    "index": http(GET("/")),
    "asset_split": http(GET("/app.js", "If-None-Match: \"1-2\"\r\n"), (1, 7, 30)),
    "websocket_upgrade": http(GET("/ws?room=demo&name=Alice%20B&token=e30.e30.e30",
                                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                                  "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                                  "Origin: https://example.com\r\n"), (16,)),
    "traversal": http(GET("/../../etc/passwd")),
    "traversal_encoded": http(GET("/%2e%2e/%2e%2e/etc/passwd")),
    "traversal_mixed": http(GET("/sub/..%2f..%2fsecret.txt")),
    "symlink_out": http(GET("/out/secret.txt")),
    "backslash_nul": http(GET("/sub%5c..%5csecret.txt") + GET("/index.html%00.js")),
    "pipelined": http(GET("/sub/") + GET("/style.css") + GET("/sub/a%20b.txt?x=1&&y=%zz"), (5, 40, 3)),
    "post_body": http(f"POST /api/rooms?name=demo HTTP/1.1{CRLF}Host: x{CRLF}Content-Type: application/json{CRLF}"
                      f"Content-Length: 15{CRLF}{CRLF}{{\"room\":\"demo\"}}"),
    "chunked": http(f"POST /api HTTP/1.1{CRLF}Host: x{CRLF}Transfer-Encoding: chunked{CRLF}{CRLF}"
                    f"5{CRLF}hello{CRLF}0{CRLF}{CRLF}", (2, 9)),
    "head_query": http(f"HEAD /index.html?room=a+b&token=%41%42 HTTP/1.0{CRLF}{CRLF}"),
    "bad_request": http("GARBAGE\r\n\r\n"),
    "absolute_target": http(GET("http://evil.example/../../etc/passwd")),
}
for name, data in requests.items():
    write("fuzz_http_request", name, data)

# ---------------------------------------------------------------- fuzz_jwt: raw tokens


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(header, payload, secret=b"fuzz-secret"):
    si = b64(j(header).encode()) + "." + b64(j(payload).encode())
    return si + "." + b64(hmac.new(secret, si.encode(), hashlib.sha256).digest())


jwts = {
    "valid_demo": token({"alg": "HS256", "typ": "JWT"}, {"room": "demo", "sub": "alice", "exp": 4102444800}),
    "valid_star": token({"alg": "HS256", "typ": "JWT"}, {"room": "*", "sub": "bob", "exp": 4102444800, "iat": 1}),
    "expired": token({"alg": "HS256"}, {"room": "demo", "sub": "c", "exp": 1}),
    "wrong_room": token({"alg": "HS256"}, {"room": "other", "sub": "d", "exp": 4102444800}),
    "alg_none": b64(b'{"alg":"none"}') + "." + b64(b'{"room":"demo","exp":4102444800}') + ".",
    "bad_signature": token({"alg": "HS256"}, {"room": "demo", "exp": 4102444800}, b"another-secret"),
    "exp_double": token({"alg": "HS256"}, {"room": "demo", "exp": 4.1e9}),
    "exp_negative": token({"alg": "HS256"}, {"room": "demo", "exp": -1.5, "iat": "x"}),
    "not_object": b64(b"[]") + "." + b64(b"[]") + ".AAAA",
    "two_parts": "eyJhbGciOiJIUzI1NiJ9.e30",
    "four_parts": "a.b.c.d",
    "bad_base64": "eyJhbGciOiJIUzI1NiJ9.e30=.@@@",
    "padded": b64(b'{"alg":"HS256"}') + "==." + b64(b"{}") + "=.AA==",
}
for name, data in jwts.items():
    write("fuzz_jwt", name, data)

# ---------------------------------------------------------------- fuzz_engineio: one text/binary frame or polling body
RS = "\x1e"
engineio = {
    "open": "0" + j({"sid": "lv_VI97HAXpY6yYWAAAC", "upgrades": ["websocket"], "pingInterval": 25000,
                     "pingTimeout": 20000, "maxPayload": 1000000}),
    "ping_probe": "2probe",
    "pong": "3",
    "message_event": '42["join-room","demo"]',
    "upgrade": "5",
    "noop": "6",
    "payload_text": RS.join(["4hello", "2", '42["offer",{"to":"x","offer":{"type":"offer","sdp":"v=0\\r\\n"}}]', "1"]),
    "payload_binary": "4hello" + RS + "b" + base64.b64encode(bytes([1, 2, 3, 4])).decode(),
    "payload_binary_event": RS.join(['451-["upload",{"_placeholder":true,"num":0}]',
                                     "b" + base64.b64encode(bytes(range(0, 256, 7))).decode()]),
    "payload_unpadded": "bAQIDBA" + RS + "b" + RS + "6",
    "payload_empty_part": "4a" + RS + RS + "4b",
    "payload_bad_base64": "bAQ-D_==",
    "raw_binary": bytes([0, 1, 0x1e, 0xff, 0x34]),
}
for name, data in engineio.items():
    write("fuzz_engineio", name, data)

# ---------------------------------------------------------------- fuzz_socketio: packet text [\n attachment]...
PH = lambda n: {"_placeholder": True, "num": n}
socketio = {
    "connect": "0",
    "connect_auth": "0" + j({"token": "e30.e30.e30"}),
    "connect_nsp": "0/admin," + j({"token": "t"}),
    "connect_reply": "0" + j({"sid": "x7KpQ2mZ9aBcDeFgHiJk"}),
    "disconnect": "1",
    "disconnect_nsp": "1/admin,",
    "event": "2" + j(["join-room", "demo"]),
    "event_ack": "213" + j(["event", {"a": 1}]),
    "event_nsp_ack": "2/chat,7" + j(["msg", "hi", None, True, -2.5e-3, 12345678901234567890]),
    "offer": "2" + j(["offer", {"to": "abc", "offer": {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"}}]),
    "ack": "313" + j(["ok", {"n": 1}]),
    "ack_empty": "30[]",
    "connect_error": "4" + j({"message": "Not authorized"}),
    "connect_error_text": '4/admin,"refused"',
    "binary_event": "51-" + j(["event", PH(0)]) + "\n" + "\x00\x01\x02\xff",
    "binary_event_two": "52-/up,9" + j(["file", PH(0), PH(1)]) + "\nfirst\nsecond",
    "binary_ack": "61-3" + j([PH(0)]) + "\nbytes",
    "binary_missing": "52-" + j(["e", PH(0), PH(1)]) + "\nonly one",
    "binary_too_big": "51-" + j(["e", PH(0)]) + "\n" + "x" * 100,
    "max_ack_id": '29007199254740991["e"]',
    "bad_ack_id": '29007199254740992["e"]',
    "nonfinite": '2["e",1e400]',
    "trailing": '2["e"]x',
    "nsp_no_comma": "0/admin",
}
for name, data in socketio.items():
    write("fuzz_socketio", name, data)


# ---------------------------------------------------------------- fuzz_ws_frame: [limit/64, read size] + client frames
def ws_frame(first, payload, key=b"\x12\x34\x56\x78"):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n <= 0xFFFF:
        head = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


ws = {
    "text": b"\x10\x07" + ws_frame(0x81, j({"v": 1, "type": "join", "id": 1, "room": "demo", "name": "Zoë"})),
    "binary_16bit": b"\x10\x3f" + ws_frame(0x82, bytes(range(256)) * 2),
    "fragments_ping": b"\x10\x03" + ws_frame(0x01, "frag") + ws_frame(0x89, "p") + ws_frame(0x80, "ment"),
    "close": b"\x10\x05" + ws_frame(0x81, "hi") + ws_frame(0x88, b"\x03\xe9bye") + ws_frame(0x81, "late"),
    "too_big": b"\x01\x09" + ws_frame(0x81, "x" * 200),
    "bad_utf8": b"\x10\x02" + ws_frame(0x81, b"\xc0\xaf"),
    "unmasked": b"\x10\x02" + b"\x81\x02hi",
    "pong_empty_close": b"\x10\x01" + ws_frame(0x8A, "") + ws_frame(0x88, ""),
}
for name, data in ws.items():
    write("fuzz_ws_frame", name, data)

# ---------------------------------------------------------------- fuzz_ice: config byte + steps (see fuzz_ice.cpp)
# Steps: 0x00|addr<<2 raw STUN (length byte + bytes); 0x01 check (flags byte, address byte); 0x02 time (byte × 250 ms);
# 0x03 restart (|0x04: the peer's new ufrag known). Check flags: bits 0-1 credentials (0 current, 1 previous, 2 wrong
# local ufrag, 3 wrong remote ufrag), 4 wrong key, 8 no PRIORITY, 16 no ICE-CONTROLLING, 32 ICE-CONTROLLED,
# 64 USE-CANDIDATE, 128 no MESSAGE-INTEGRITY.
RFC5769_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff80290008932ff9"
    "b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf")
ice = {
    # A browser's checks: nominate from one address, keep consent, move to another, lose consent.
    "connect_move_expire": bytes([0x08, 0x01, 0x40, 0x00, 0x01, 0x00, 0x00, 0x02, 40, 0x01, 0x40, 0x05,
                                  0x02, 0xff, 0x02, 0x30]),
    # Every refusal: wrong key, wrong ufrags, missing attributes, role conflict.
    "refusals": bytes([0x08, 0x01, 0x44, 0x00, 0x01, 0x42, 0x00, 0x01, 0x43, 0x00, 0x01, 0x48, 0x00, 0x01, 0xc0, 0x00,
                       0x01, 0x50, 0x00, 0x01, 0x60, 0x00]),
    # A restart: checks with the old credentials, then the new ones from a new address.
    "restart": bytes([0x0b, 0x01, 0x40, 0x02, 0x07, 0x01, 0x41, 0x02, 0x01, 0x40, 0x09, 0x01, 0x41, 0x02]),
    # Never connected: the connect deadline.
    "never": bytes([0x01, 0x01, 0x44, 0x03, 0x02, 0x80, 0x02, 0x80]),
    # Many addresses: the path bound.
    "many_paths": bytes([0x00]) + b"".join(bytes([0x01, 0x00, a]) for a in range(16)) + bytes([0x01, 0x40, 0x03]),
    # Raw bytes: the RFC 5769 sample request (ICE-CONTROLLED, unknown ufrag) and a truncated one.
    "raw_rfc5769": bytes([0x00, 0x00, len(RFC5769_REQUEST)]) + RFC5769_REQUEST + bytes([0x04, 20]) + RFC5769_REQUEST[:20],
}
for name, data in ice.items():
    write("fuzz_ice", name, data)

# ---------------------------------------------------------------- fuzz_rtp: one RTP packet per file
# Laid out as Chromium sends them (tests/unit/rtp/vectors.hpp): audio extmap 1 audio level, 3 transport-cc, 4 mid;
# video adds 10 rid and 11 repaired rid.
def h(text):
    return bytes.fromhex(text.replace(" ", ""))


rtp = {
    "chromium_opus": h("906f1234 00003a98 11223344 bede0002 10ab 310567 4030 00 fcfffe"),
    "chromium_vp8_rid": h("90e0ffff 01020304 a1b2c3d4 bede0003 310001 4031 a068 22aabbcc 00 90e00a0b"),
    "chromium_rtx": h("90610007 01020304 0badf00d bede0002 310002 4031 b068 00 ffff 90e00a0b"),
    "two_byte_ext": h("90000001 00000002 00000003 10000003 1403616263 00 0500 c80109 00 aa"),
    "csrcs_padding": h("a2080001 00000002 00000003 0000aaaa 0000bbbb dddddd 000003"),
    "padding_probe": h("a0000001 00000002 00000003 00000004"),
    "one_byte_stop": h("90000001 00000002 00000003 bede0002 10aa f0 3102 ffffff"),
    "full_size_vp8": h("90e00001 00000002 00000003 bede0002 310002 4031 a071 00") + bytes(range(256)) * 4 + bytes(156),
    "bare": h("80000001 00000002 00000003"),
}
for name, data in rtp.items():
    write("fuzz_rtp", name, data)

# ---------------------------------------------------------------- fuzz_rtcp: one RTCP datagram per file
rtcp = {
    "chromium_rr_sdes": h("81c90007 00000001 11223344 05fffffe 00011234 00000020 3a983a98 00008000"
                          "81ca0006 00000001 0110 4142434445464748494a4b4c4d4e4f50 0000"),
    "sr_sdes_bye": h("81c8000c a1b2c3d4 e8e1d3a5 80000000 00015f90 00000064 0000ea60"
                     "00000011 05fffffe 00011234 00000020 3a983a98 00008000"
                     "81ca0005 a1b2c3d4 0109 6b616977612d736675 0000000000"
                     "81cb0003 a1b2c3d4 04676f6e 65000000"),
    "feedback_rsize": h("81cd0004 00000001 a1b2c3d4 0064 8011 00c8 0001"
                        "81ce0002 00000001 a1b2c3d4"
                        "84ce0004 00000001 00000000 a1b2c3d4 07000000"
                        "8fce0005 00000001 00000000 52454d42 010a1234 a1b2c3d4"
                        "8fcd0005 00000001 a1b2c3d4 0001 0002 fffffe 05 20020000"),
    "nack_wrap": h("81cd0003 00000001 a1b2c3d4 fffe 0007"),
    "padded_bye": h("a1cb0002 11223344 00000004"),
    "truncated": h("81c90007 00000001 1122"),
    # transport-cc with a two-bit and a one-bit status vector, a large negative delta, a sequence wrap.
    "tcc_vectors": h("8fcd0007 00000001 a1b2c3d4 fffe 000a 000010 00 d850 a800 04 fff8 c8 01 00 ff 00"),
    # transport-cc whose last delta is cut by the padding.
    "tcc_cut": h("afcd0005 00000001 a1b2c3d4 0001 0001 000000 00 4001 01 01"),
}
for name, data in rtcp.items():
    write("fuzz_rtcp", name, data)

# SDP: every captured browser description (tests/unit/sdp/vectors/), and small ones for the corners of the grammar.
VECTORS = os.path.join(HERE, "..", "unit", "sdp", "vectors")
for name in sorted(os.listdir(VECTORS)):
    if name.endswith(".sdp"):
        with open(os.path.join(VECTORS, name), "rb") as f:
            write("fuzz_sdp", name[:-4], f.read())
sdp_head = "v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nt=0 0\n"
sdp = {
    "minimal_lf": sdp_head,
    "session_lines": sdp_head.replace("t=0 0\n", "i=x\nb=AS:1\nt=0 0\nr=1 2 3\nk=clear:x\n")
    + "a=ice-lite\na=group:BUNDLE a b\na=fingerprint:sha-256 00:11\na=setup:active\na=ice-ufrag:u\na=ice-pwd:p\n"
    "a=extmap:1/sendonly urn:x attr\na=zz:1\n",
    "media_corners": sdp_head + "a=group:BUNDLE a\nm=video 9/2 UDP/TLS/RTP/SAVPF 96 97 0\nc=IN IP6 ::1\na=mid:a\n"
    "a=rtcp-mux\na=rtcp-fb:* nack\na=fmtp:97 apt=96\na=rtpmap:96 VP8/90000\na=rtpmap:97 rtx/90000\n"
    "a=rid:1 recv pt=96;max-width=640\na=simulcast:recv 1,~2;3 send 4\na=ssrc-group:SIM 1 2 3\n"
    "a=ssrc:1 foo\na=candidate:1 2 TCP 3 ::1 9 typ relay raddr ::2 rport 4 tcptype so x y\na=end-of-candidates\n"
    "a=bundle-only\nm=application 0 UDP/DTLS/SCTP webrtc-datachannel\na=sctp-port:5000\na=max-message-size:0\n",
    "bad_rtpmap": sdp_head + "m=audio 9 RTP/AVP 0\na=rtpmap:999 x/1\n",
}
for name, data in sdp.items():
    write("fuzz_sdp", name, data)

# ---------------------------------------------------------------- fuzz_tcp_framing: [max/8, buffer, pieces] + stream
def frame(payload):
    return len(payload).to_bytes(2, "big") + payload


STUN_BINDING = h("0001 0000 2112a442 000102030405060708090a0b")
tcp = {
    "stun_then_dtls": bytes([255, 0, 1]) + frame(STUN_BINDING) + frame(h("16fefd") + bytes(40)),
    "media_burst": bytes([200, 1, 50]) + b"".join(frame(h("80 60") + bytes([i]) * 198) for i in range(6)),
    "empty_frames": bytes([1, 2, 7]) + frame(b"") + frame(b"x") + frame(b"") + frame(b"yz"),
    "too_large": bytes([2, 0, 3]) + frame(b"ok") + bytes([0xFF, 0xFF]) + bytes(30),
    "partial_tail": bytes([100, 3, 9]) + frame(b"whole") + bytes([0x01, 0x00]) + b"cut",
}
for name, data in tcp.items():
    write("fuzz_tcp_framing", name, data)

if __name__ == "__main__" and "-q" not in sys.argv:
    for t in sorted(os.listdir(CORPUS)):
        print(t, len(os.listdir(os.path.join(CORPUS, t))))
