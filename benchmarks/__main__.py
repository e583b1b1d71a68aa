"""Run every benchmark module, or the ones named: `python -m benchmarks [sim service training]`."""
from __future__ import annotations

import importlib
import sys

MODULES = ("sim", "service", "coldstart", "training")


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or list(MODULES)
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(MODULES)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        if module.main([]) not in (0, None):
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
