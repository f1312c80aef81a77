"""Docker's multiplexed attach stream, byte by byte."""

import struct

import pytest

from hotfn.drivers.docker.demux import Demultiplexer, DemuxError


def chunk(stream, data):
    return struct.pack(">BxxxI", stream, len(data)) + data


def run(data, step):
    demux = Demultiplexer()
    out, err = b"", b""
    for i in range(0, len(data), step):
        o, e = demux.feed(data[i:i + step])
        out += o
        err += e
    return out, err, demux.at_eof()


WIRE = chunk(1, b"hello ") + chunk(2, b"log line\n") + chunk(1, b"") + chunk(1, bytes(range(256))) + chunk(2, b"x")


@pytest.mark.parametrize("step", [1, 2, 7, 8, 9, 64, len(WIRE)])
def test_demux_any_split(step):
    out, err, at_eof = run(WIRE, step)
    assert out == b"hello " + bytes(range(256))
    assert err == b"log line\nx"
    assert at_eof


def test_demux_hands_out_partial_chunks_at_once():
    demux = Demultiplexer()
    big = chunk(1, b"a" * 100)
    assert demux.feed(big[:58]) == (b"a" * 50, b"")
    assert not demux.at_eof()
    assert demux.feed(big[58:]) == (b"a" * 50, b"")
    assert demux.at_eof()


@pytest.mark.parametrize("header", [b"\x03\0\0\0\0\0\0\x01", b"\x01\0\x01\0\0\0\0\x01"])
def test_demux_rejects_bad_headers(header):
    demux = Demultiplexer()
    with pytest.raises(DemuxError):
        demux.feed(header + b"x")
    with pytest.raises(DemuxError):
        demux.feed(b"more")
