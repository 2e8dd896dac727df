"""Compressed responses: the encoding each client gets, bodies that decode to the same answer,
small bodies left alone, and the response cache keeping each encoding as it is sent."""

from __future__ import annotations

import gzip
from typing import Any

import brotli
import pytest
import zstandard

from gateway import compression
from gateway.compression import choose_encoding
from gateway.sample_upstream import SampleUpstream

from .conftest import DEMO_AUTH, asgi_client, in_process_gateway, post

pytestmark = pytest.mark.anyio

BIG = {"query": "{ jobs(first: 50) { nodes { jobId metadata { jobTitle status created } } } }"}
SMALL = {"query": "{ jobs(first: 1) { nodes { jobId } } }"}
OFFERED = ("zstd", "br", "gzip")


@pytest.mark.parametrize(
    ("accept_encoding", "chosen"),
    [
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip, deflate, br", "br"),
        ("gzip, deflate", "gzip"),
        ("br;q=0, gzip;q=0.5", "gzip"),
        ("*", "zstd"),
        ("*, zstd;q=0", "br"),
        ("identity", None),
        ("deflate", None),
        ("", None),
        ("gzip;q=nonsense", None),
    ],
)
def test_the_first_offered_encoding_the_client_accepts_is_chosen(
    accept_encoding: str, chosen: str | None
) -> None:
    """The gateway's order of preference wins among the encodings the client accepts
    (q above 0, `*` for the unnamed); none accepted means no compression."""
    assert choose_encoding(accept_encoding, OFFERED) == chosen


DECODERS = {
    "zstd": lambda raw: zstandard.ZstdDecompressor().decompressobj().decompress(raw),
    "br": brotli.decompress,
    "gzip": gzip.decompress,
}


@pytest.mark.parametrize("encoding", ["zstd", "br", "gzip"])
async def test_each_encoding_decodes_to_the_same_answer(encoding: str) -> None:
    """A large answer arrives in the encoding asked for, several times smaller, and decodes
    (with the encoding's own library, not the client's) to exactly the uncompressed answer;
    Vary says it depends."""
    app = in_process_gateway(SampleUpstream().app(), cache_ttl=0)
    plain = await post(app, BIG, **{"accept-encoding": "identity"})
    async with (
        asgi_client(app) as client,
        client.stream(
            "POST", "/graphql", json=BIG, headers={**DEMO_AUTH, "accept-encoding": encoding}
        ) as packed,
    ):
        raw = b"".join([chunk async for chunk in packed.aiter_raw()])
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == encoding
    assert packed.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) == len(raw)
    assert DECODERS[encoding](raw) == plain.content
    assert len(raw) * 3 < len(plain.content)


async def test_small_answers_and_switched_off_compression_are_sent_as_they_are() -> None:
    """Below GATEWAY_COMPRESSION_MIN_BYTES nothing is compressed; with
    GATEWAY_COMPRESSION=none nothing is, and no Vary is sent."""
    app = in_process_gateway(SampleUpstream().app())
    small = await post(app, SMALL, **{"accept-encoding": "gzip"})
    switched_off = in_process_gateway(SampleUpstream().app(), compression="none")
    off = await post(switched_off, BIG, **{"accept-encoding": "gzip"})
    assert "content-encoding" not in small.headers
    assert small.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in off.headers
    assert "vary" not in off.headers


async def test_a_response_cache_hit_is_not_compressed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The response cache keeps an answer as it was sent: a repeated query in the same
    encoding costs no compression; another encoding is kept as its own entry."""
    calls: list[str] = []
    for name, compress in list(compression.COMPRESSORS.items()):

        def counting(body: bytes, name: str = name, compress: Any = compress) -> bytes:
            calls.append(name)
            return compress(body)  # type: ignore[no-any-return]

        monkeypatch.setitem(compression.COMPRESSORS, name, counting)
    app = in_process_gateway(SampleUpstream().app())
    encodings = ("gzip", "gzip", "br", "br", "gzip")
    answers = [await post(app, BIG, **{"accept-encoding": encoding}) for encoding in encodings]
    assert calls == ["gzip", "br"]
    assert [answer.headers["content-encoding"] for answer in answers] == [
        "gzip",
        "gzip",
        "br",
        "br",
        "gzip",
    ]
    assert all(answer.json() == answers[0].json() for answer in answers)


async def test_a_batch_is_compressed_as_a_whole() -> None:
    """A batch's array is encoded once, and decodes to the answers in order."""
    app = in_process_gateway(SampleUpstream().app())
    response = await post(app, [BIG, SMALL], **{"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    big, small = response.json()
    assert len(big["data"]["jobs"]["nodes"]) == 50
    assert len(small["data"]["jobs"]["nodes"]) == 1


async def test_long_accept_headers_are_answered_but_not_kept() -> None:
    """An Accept-Encoding (or Accept) of 8 KB still negotiates, without entering the
    process-wide memo of short header values, so callers cannot fill it with large ones."""
    filler = ", ".join(f"x-{index};q=0.1" for index in range(800))
    app = in_process_gateway(SampleUpstream().app())
    before = compression._choose_encoding.cache_info().currsize
    response = await post(app, BIG, **{"accept-encoding": f"{filler}, gzip", "accept": filler})
    assert len(filler) > 8000
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-type"] == "application/json"
    assert compression._choose_encoding.cache_info().currsize == before
