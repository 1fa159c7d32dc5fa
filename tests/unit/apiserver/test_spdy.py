"""SPDY/3.1 framing (kemu.apiserver.spdy) as kubectl's port-forward tunnel uses it: header blocks compressed with
the SPDY/3 dictionary in one zlib stream per direction, frames split anywhere by WebSocket messages."""
from __future__ import annotations

import struct
import zlib

import pytest

from kemu.apiserver import spdy


def test_dictionary_is_the_spdy3_one():
    assert len(spdy.DICTIONARY) == 1423 and zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


def test_port_forward_streams_round_trip_byte_by_byte():
    client, server = spdy.Framer(), spdy.Framer()
    wire = (client.syn_stream(1, {"streamtype": "error", "port": "8080", "requestid": "0"})
            + client.syn_stream(3, {"streamtype": "data", "port": "8080", "requestid": "0"})
            + client.data(3, b"GET / HTTP/1.1\r\n\r\n") + client.data(1, fin=True) + client.ping(1)
            + client.rst_stream(3, spdy.CANCEL) + client.goaway(3))
    frames = []
    for i in range(len(wire)):          # one byte per WebSocket message: frames still come out whole
        frames += server.feed(wire[i:i + 1])
    assert [f.type for f in frames] == [spdy.SYN_STREAM, spdy.SYN_STREAM, spdy.DATA, spdy.DATA, spdy.PING,
                                        spdy.RST_STREAM, spdy.GOAWAY]
    error, data = frames[0], frames[1]
    assert (error.stream_id, error.header("streamtype"), error.header("port"), error.header("requestid")) == \
        (1, "error", "8080", "0")
    assert data.stream_id == 3 and data.header("streamtype") == "data"
    assert frames[2].data == b"GET / HTTP/1.1\r\n\r\n" and not frames[2].fin
    assert frames[3].stream_id == 1 and frames[3].fin and frames[3].data == b""
    assert frames[4].ping_id == 1 and frames[5].status == spdy.CANCEL and frames[6].stream_id == 3


def test_wire_format_of_control_and_data_frames():
    f = spdy.Framer()
    assert f.ping(7) == bytes.fromhex("80030006 00000004 00000007")
    assert f.rst_stream(5, spdy.CANCEL) == bytes.fromhex("80030003 00000008 00000005 00000005")
    assert spdy.Framer.data(3, b"hi", fin=True) == bytes.fromhex("00000003 01000002") + b"hi"
    reply = f.syn_reply(1)
    assert reply[:4] == bytes.fromhex("80030002") and reply[4] == 0
    assert struct.unpack("!I", reply[8:12])[0] == 1
    # the header block is a zlib stream with the SPDY/3 dictionary (FDICT set, DICTID = its Adler-32)
    block = reply[12:]
    assert block[1] & 0x20 and block[2:6] == bytes.fromhex("e3c6a7c2")
    assert zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(block) == b"\0\0\0\0"


def test_settings_and_window_update_parse():
    f = spdy.Framer()
    frames = spdy.Framer().feed(f.settings([(0, 7, 65536)]) + f.window_update(3, 1000))
    assert frames[0].type == spdy.SETTINGS and frames[0].settings == [(0, 7, 65536)]
    assert frames[1].type == spdy.WINDOW_UPDATE and (frames[1].stream_id, frames[1].delta) == (3, 1000)


def test_header_blocks_share_one_compression_context():
    client, server = spdy.Framer(), spdy.Framer()
    first = client.syn_stream(1, {"streamtype": "data", "port": "80", "requestid": "1"})
    second = client.syn_stream(3, {"streamtype": "data", "port": "80", "requestid": "1"})
    assert len(second) < len(first), "the second block refers back to the first"
    with pytest.raises(spdy.SPDYError):
        spdy.Framer().feed(second)       # without the first block, the stream does not decompress
    assert server.feed(first + second)[1].header("requestid") == "1"


def test_wrong_version_is_an_error():
    with pytest.raises(spdy.SPDYError, match="version 2"):
        spdy.Framer().feed(bytes.fromhex("80020006 00000004 00000001"))
