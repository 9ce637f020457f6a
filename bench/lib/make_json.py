#!/usr/bin/env python3
"""Write a JSON document of about SIZE bytes (default 20480) to OUT: an API-like list of records
with varied values (a fixed seed, so every run and every proxy gets the same bytes), compressible
as real API answers are (about 4-6x with gzip), not as a run of one byte would be.

Usage: make_json.py OUT [SIZE]"""
import json
import random
import sys

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def record(rng, i):
    first, last = rng.choice(WORDS).title(), rng.choice(WORDS).title()
    return {
        "id": 100000 + i,
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@example.com",
        "active": rng.random() < 0.8,
        "score": round(rng.uniform(0, 100), 3),
        "tags": rng.sample(WORDS, rng.randint(1, 4)),
        "created": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                   f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
        "address": {"street": f"{rng.randint(1, 300)} {rng.choice(WORDS).title()} Street",
                    "city": rng.choice(WORDS).title() + "ville", "zip": f"{rng.randint(0, 99999):05d}"},
    }


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    size = int(argv[2]) if len(argv) > 2 else 20480
    rng = random.Random(20480)
    items, i = [], 0
    while True:
        items.append(record(rng, i))
        i += 1
        text = json.dumps({"items": items, "count": len(items)}, separators=(",", ":"))
        if len(text) >= size:
            break
    with open(argv[1], "w") as f:
        f.write(text)


if __name__ == "__main__":
    main(sys.argv)
