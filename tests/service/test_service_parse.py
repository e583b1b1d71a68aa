"""`Botify.parse_event`'s fast path (a regex for the shape clients send) answers exactly as
the general json.loads path: the same values, or the same refusal."""
from __future__ import annotations

import itertools

import pytest

import service.botify as botify
from service.botify import RequestError, load

WS = ["", " ", "\t\n", "\x0c", "\xa0"]  # JSON's whitespace, and two characters that are not
TRACKS = ["0", "7", "199", "200", "01", "-1", "1.0", "1e2", "12345678901234567890", '"5"', "null"]
TIMES = ["0", "1", "0.5", "0.37", "1.0", "1.5", "0.", ".5", "00.5", "1e-05", "-0.0", "2", "NaN",
         "0.99999999999999999999", "1.0000000000000000001", '"0.5"']


class _NoMatch:
    def fullmatch(self, body: bytes) -> None:
        return None


def _outcome(b: botify.Botify, body: bytes) -> tuple:
    try:
        return ("ok", b.parse_event(body))
    except RequestError as e:
        return ("refused", e.status, str(e))


def _bodies() -> list[bytes]:
    out = []
    for track, time_, ws in itertools.product(TRACKS, TIMES, WS):
        out.append(f'{ws}{{"track":{ws}{track},{ws}"time": {time_}{ws}}}{ws}'.encode())
        out.append(f'{{"time": {time_}, "track": {track}}}'.encode())
    out += [b'{"track": 5, "time": 0.5, "x": 1}', b'{"track": 5, "track": 6, "time": 0.5}', b'{"track": 5',
            b'\xef\xbb\xbf{"track": 5, "time": 0.5}', b'{"track": 5, "time": 0.5}\xff']
    return out


def test_fast_path_equals_json_loads(world, monkeypatch):
    b = load(world, worker="parse")
    bodies = _bodies()
    fast = [_outcome(b, body) for body in bodies]
    monkeypatch.setattr(botify, "_EVENT", _NoMatch())
    general = [_outcome(b, body) for body in bodies]
    b.close()
    assert fast == general
    assert ("ok", (7, 0.37)) in fast and any(o[0] == "refused" and o[1] == 422 for o in fast)


@pytest.mark.parametrize("body", [b'{"track": 7, "time": 0.37}', b'{"track":7,"time":0.37}'])
def test_fast_path_taken_for_what_clients_send(body):
    assert botify._EVENT.fullmatch(body) is not None
