"""The frame codec against the shared vectors (docs/protocol-vectors.json), byte by byte."""

import json
import pathlib
import struct

import pytest

from hotfn import protocol
from hotfn.protocol import frames
from hotfn.protocol import (
    CLOSED, NEED_DATA, FrameDecoder, FrameTooLarge, HandlerError, MalformedFrame, ProtocolError,
    Ready, Request, Response, decode_payload, encode_frame,
)

VECTORS = json.loads(
    (pathlib.Path(__file__).parent.parent / "docs" / "protocol-vectors.json").read_text()
)


def from_json(value):
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def as_map(frame):
    """A decoded frame as the vector's map, for comparison (as msgpack carries it: pairs are
    arrays, whether the encoder held them as tuples or lists)."""
    m = frames._to_map(frame)
    return frames.msgpack.unpackb(frames.msgpack.packb(m, use_bin_type=True), raw=False)


def expected_map(vector):
    m = from_json(vector["frame"])
    known = set(as_map(protocol.decode_payload(bytes.fromhex(vector["bytes"])[4:])))
    return {k: v for k, v in m.items() if k in known}


def feed_bytewise(decoder, data):
    frames = []
    for i in range(len(data)):
        decoder.receive_data(data[i:i + 1])
        while (f := decoder.next_frame()) is not NEED_DATA:
            frames.append(f)
    return frames


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_decodes_one_byte_at_a_time(vector):
    data = bytes.fromhex(vector["bytes"])
    decoder = FrameDecoder(VECTORS["max_frame_size"])
    frames = feed_bytewise(decoder, data)
    assert len(frames) == 1
    assert as_map(frames[0]) == expected_map(vector)
    decoder.receive_data(b"")
    assert decoder.next_frame() is CLOSED


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_encoder_round_trips_valid_vector(vector):
    frame = decode_payload(bytes.fromhex(vector["bytes"])[4:])
    wire = encode_frame(frame)
    assert decode_payload(wire[4:]) == frame
    assert struct.unpack(">I", wire[:4])[0] == len(wire) - 4


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_is_refused(vector):
    data = bytes.fromhex(vector["bytes"])
    decoder = FrameDecoder(VECTORS["max_frame_size"])
    with pytest.raises(ProtocolError) as info:
        feed_bytewise(decoder, data)
        decoder.receive_data(b"")
        decoder.next_frame()
    if vector["error"] == "oversized":
        assert isinstance(info.value, FrameTooLarge)
    else:
        assert isinstance(info.value, MalformedFrame)


def test_oversized_frame_is_refused_at_its_prefix_before_payload_arrives():
    decoder = FrameDecoder(max_frame_size=1024)
    decoder.receive_data(struct.pack(">I", 1025))
    with pytest.raises(FrameTooLarge):
        decoder.next_frame()
    assert len(decoder._buf) == 0  # nothing kept for it


def test_decoder_stays_broken_after_an_error():
    decoder = FrameDecoder()
    decoder.receive_data(struct.pack(">I", 0))
    with pytest.raises(MalformedFrame):
        decoder.next_frame()
    decoder.receive_data(encode_frame(Ready(1, "x")))
    with pytest.raises(MalformedFrame):
        decoder.next_frame()


def test_several_frames_in_one_chunk_and_a_split_across_chunks():
    frames = [Ready(1, "r"), Response("c1", 200, (("a", "b"),), b"x" * 1000),
              HandlerError("c2", "E", "m", "t")]
    data = b"".join(encode_frame(f) for f in frames)
    decoder = FrameDecoder()
    decoder.receive_data(data[:500])
    got = []
    while (f := decoder.next_frame()) is not NEED_DATA:
        got.append(f)
    decoder.receive_data(data[500:])
    while (f := decoder.next_frame()) is not NEED_DATA:
        got.append(f)
    assert got == frames


def test_five_mib_body_round_trips_and_encoder_enforces_the_limit():
    body = bytes(range(256)) * (5 * 1024 * 4)
    req = Request("c", "POST", "http://h/r/a/b", "/b", (), (), body, 0, "a", "/b", {})
    decoder = FrameDecoder()
    decoder.receive_data(encode_frame(req))
    assert decoder.next_frame() == req
    with pytest.raises(FrameTooLarge):
        encode_frame(req, max_frame_size=1024 * 1024)


def test_eof_inside_a_frame_is_malformed_and_between_frames_is_closed():
    wire = encode_frame(Ready(1, "x"))
    decoder = FrameDecoder()
    decoder.receive_data(wire[:-1])
    assert decoder.next_frame() is NEED_DATA
    decoder.receive_data(b"")
    with pytest.raises(MalformedFrame, match="ended inside"):
        decoder.next_frame()


def test_bool_is_not_an_int_field():
    payload = frames.msgpack.packb({"type": "ready", "version": True, "runtime": "x"})
    with pytest.raises(MalformedFrame, match="version"):
        decode_payload(payload)


def test_ready_concurrency_is_optional_and_absent_when_one():
    assert decode_payload(encode_frame(Ready(1, "x"))[4:]).concurrency == 1
    assert b"concurrency" not in encode_frame(Ready(1, "x"))  # byte-identical to before the key
    wire = encode_frame(Ready(1, "x", concurrency=16))
    decoder = FrameDecoder()
    assert feed_bytewise(decoder, wire) == [Ready(1, "x", 16)]


@pytest.mark.parametrize("value", [0, -1, protocol.MAX_CONCURRENCY + 1, 2**64 - 1, -(2**63), True,
                                   "16", 1.5, None, [16]])
def test_hostile_ready_concurrency_is_malformed(value):
    payload = frames.msgpack.packb({"type": "ready", "version": 1, "runtime": "x",
                                      "concurrency": value})
    with pytest.raises(MalformedFrame, match="concurrency"):
        decode_payload(payload)
