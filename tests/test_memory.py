"""A long-running `serve` keeps what it caches bounded by size, not by the number of
messages it has seen (scripts/soak.py measures RSS; this is the cause it found)."""

from __future__ import annotations

import gc
import tracemalloc

from mailflow.casework import duplicates


def test_the_places_cache_keeps_a_few_cases_text_not_thousands() -> None:
    """Each new case's text (10 KB here, up to 40 KB in real mail) is the cache's key: 600
    cases must not keep 6 MB of text alive."""
    duplicates.places.cache_clear()
    filler = "the residents are worried it has been weeks and nobody has replied " * 150
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(600):
            text = f"Pothole outside {i} Mill Road. {filler}{i}"
            assert "street:mill road" in duplicates.places(None, f"Pothole {i}", text)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        duplicates.places.cache_clear()
    assert grown < 4 * 1024 * 1024, f"{grown / 1024:.0f} KiB kept for 600 cases"
