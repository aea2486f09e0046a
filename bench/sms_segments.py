"""Every catalog message in every language, as an SMS: encoding and segments before folding, after folding,
and the parts it is split into above the budget. `python bench/sms_segments.py [--all]`."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.channels.sms_encoding import fold, size, split  # noqa: E402
from bot.core import catalog  # noqa: E402

BUDGET = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--all", action="store_true", help="one line per message, not only the totals")
    args = parser.parse_args()
    print(f"| locale | messages | UCS-2 before | UCS-2 after | > 1 segment before | > 1 after | max before | "
          f"max after | split (> {BUDGET}) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for locale in catalog.LOCALES:
        rows = list(catalog.render_all(locale))
        before = [size(r.text) for r in rows]
        after = [size(fold(r.text)) for r in rows]
        splits = Counter(len(split(fold(r.text), BUDGET)) for r in rows)
        print(f"| {locale} | {len(rows)} | {sum(s.encoding == 'UCS-2' for s in before)} | "
              f"{sum(s.encoding == 'UCS-2' for s in after)} | {sum(s.segments > 1 for s in before)} | "
              f"{sum(s.segments > 1 for s in after)} | {max(s.segments for s in before)} | "
              f"{max(s.segments for s in after)} | {sum(n for k, n in splits.items() if k > 1)} |")
        if args.all:
            for r, b, a in zip(rows, before, after, strict=True):
                print(f"  {b.encoding:5} {b.segments} -> {a.encoding:5} {a.segments}  {r.msgid[:70]!r}")


if __name__ == "__main__":
    main()
