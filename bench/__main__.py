"""`python -m bench [NAME ...]`: run every benchmark module (or the named ones) in turn."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def modules() -> list[str]:
    """The benchmark modules: every `bench/<name>.py` except this runner."""
    return sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )


def main(argv: list[str]) -> int:
    """Run the named benchmarks (default: all); each gets no arguments, so its defaults apply."""
    names = argv or modules()
    unknown = sorted(set(names) - set(modules()))
    if unknown:
        sys.stderr.write(f"unknown benchmark(s): {', '.join(unknown)}; have {modules()}\n")
        return 2
    for name in names:
        sys.stdout.write(f"\n## bench/{name}.py\n\n")
        sys.stdout.flush()
        importlib.import_module(f"bench.{name}").main([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
