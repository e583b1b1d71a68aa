"""The built-in recommenders and their options as the documentation shows them, written from
their classes and `Options` dataclasses, so the docs cannot drift from the code.

    python -m service.recommenders.docs           # rewrite the marked blocks of the docs
    python -m service.recommenders.docs --check   # exit 1 when a block differs (a test runs it)
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from . import KINDS, RecommenderOptions
from .options import MISSING, allowed, hints

REPO = Path(__file__).resolve().parents[2]
END = "<!-- end of generated block -->"


def _first_line(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split("\n\n")[0].split())


def _fields(cls: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(getattr(cls, "Options", RecommenderOptions)))


def _default(f: dataclasses.Field) -> str:
    if f.default is MISSING:
        return "required"
    shown = "null" if f.default is None else f"`{f.default}`"
    return f"learned, else {shown}" if f.metadata.get("learned") else shown


def _from_version(f: dataclasses.Field) -> str:
    """The file beside the lists that fills the option when the config leaves it out."""
    if f.metadata.get("beside"):
        return f" (unset: `{f.metadata['beside']}` beside the i2i table)"
    return ""


def kinds_table() -> str:
    """Each kind, what it recommends and its options' names (service/README.md)."""
    rows = ["| kind | what it recommends | options |", "|---|---|---|"]
    for kind, cls in KINDS.items():
        names = ", ".join(f"`{f.name}`" for f in _fields(cls)) or "none"
        rows.append(f"| `{kind}` | {_first_line(cls)} | {names} |")
    return "\n".join(rows)


def options_table() -> str:
    """Every option of every kind: what it allows, its default, what it does (docs/architecture.md)."""
    rows = ["| kind | option | allowed | default | what it does |", "|---|---|---|---|---|"]
    for kind, cls in KINDS.items():
        options = getattr(cls, "Options", RecommenderOptions)
        types = hints(options)
        for f in _fields(cls):
            rows.append(f"| `{kind}` | `{f.name}` | {allowed(f.metadata, types[f.name])} | {_default(f)} | "
                        f"{f.metadata.get('doc', '')}{_from_version(f)} |")
    return "\n".join(rows)


# file -> (the line that opens its block, what the block holds)
BLOCKS = {
    REPO / "service" / "README.md": ("<!-- recommender kinds: python -m service.recommenders.docs -->", kinds_table),
    REPO / "docs" / "architecture.md": ("<!-- recommender options: python -m service.recommenders.docs -->",
                                        options_table),
}


def rewritten(text: str, begin: str, body: str) -> str:
    """`text` with the block after `begin` (up to END) replaced by `body`; ValueError if the
    file has no such block."""
    start = text.find(begin)
    end = text.find(END, start)
    if start < 0 or end < 0:
        raise ValueError(f"no block {begin!r} ... {END!r}")
    return text[:start] + begin + "\n" + body + "\n" + text[end:]


def main(argv: list[str]) -> int:
    stale = []
    for path, (begin, make) in BLOCKS.items():
        text = path.read_text()
        new = rewritten(text, begin, make())
        if new != text:
            stale.append(path)
            if "--check" not in argv:
                path.write_text(new)
    if stale and "--check" in argv:
        print(f"out of date with the recommenders' Options: {', '.join(map(str, stale))}; "
              "run python -m service.recommenders.docs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
