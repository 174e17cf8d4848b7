"""Extensions built between the epochs: annexes on the back of houses that stood in epoch 1.

Drawn from their own seeded generator after the layout is made, so the layout, every other
building and the first epoch's photos stay exactly as they are without them. Each annex is a
room or more (3-8 m wide along the back wall, 5-10 m deep into the courtyard), roofed like
the house or with a fresh concrete slab, and has a permit situation (``case``) as a new house
has; the permit records are edited to match it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
from shapely.geometry import box

from sim._render_layout import (
    LOT_WIDTH_M,
    LOTS_M,
    ROOF_COLOURS,
    Building,
    Extension,
    Layout,
    Permit,
)

EXTENSION_CASES = ("unpermitted", "over_footprint", "expired_permit", "permitted")
EXTENSIONS_LARGE, EXTENSIONS_SMALL = 3, 1
WIDTH_M = (3.0, 8.0)
DEPTH_M = (5.0, 10.0)
MIN_ANNEX_M2 = 30.0
PASSAGE_M = 2.0
"""Courtyard left between an annex and the lot's back wall."""
BUILT_FROM, BUILT_DAYS = date(2025, 10, 1), 270  # permits granted before the summer capture
LATE_FROM, LATE_DAYS = date(2026, 8, 1), 120  # granted only after it: not yet valid then


def plant_extensions(layout: Layout, rng: np.random.Generator) -> Layout:
    """``layout`` with a few of its standing houses extended in epoch 2 (three in a town of
    16 lots or more, else one), each with its own case, and the permits to match."""
    count = EXTENSIONS_LARGE if round(layout.width_m / LOT_WIDTH_M) >= 16 else EXTENSIONS_SMALL
    houses = [
        b
        for b in layout.buildings
        if b.case == "existing" and _court_m(b) >= DEPTH_M[0] + PASSAGE_M
    ]
    count = min(count, len(houses))
    if count == 0:
        return layout
    chosen = [houses[i] for i in sorted(rng.choice(len(houses), count, replace=False))]
    cases = [str(c) for c in rng.permutation(EXTENSION_CASES)[:count]]
    if "over_footprint" in cases:  # on the smallest house its annex weighs the most
        k = cases.index("over_footprint")
        smallest = min(range(count), key=lambda i: chosen[i].footprint.area)
        chosen[k], chosen[smallest] = chosen[smallest], chosen[k]
    extensions = [_extend(rng, house, case) for house, case in zip(chosen, cases, strict=True)]
    permits = list(layout.permits)
    for n, (house, extension) in enumerate(zip(chosen, extensions, strict=True)):
        permits = _with_permit(rng, permits, len(layout.permits) + n, house, extension)
    return replace(layout, extensions=tuple(extensions), permits=tuple(permits))


def _court_m(house: Building) -> float:
    """Depth of the courtyard behind a house (the lots' houses stand at the road side)."""
    return house.footprint.bounds[1] - LOTS_M[0]


def _extend(rng: np.random.Generator, house: Building, case: str) -> Extension:
    x0, y0, x1, _ = house.footprint.bounds
    deepest = min(DEPTH_M[1], _court_m(house) - PASSAGE_M)
    if case == "over_footprint":  # as large as the courtyard allows
        depth, width = deepest, min(rng.uniform(6.0, WIDTH_M[1]), x1 - x0)
    else:
        depth = rng.uniform(DEPTH_M[0], deepest)
        width = rng.uniform(max(WIDTH_M[0], MIN_ANNEX_M2 / depth), WIDTH_M[1])
    left = round(rng.uniform(x0, x1 - width), 2)
    footprint = box(left, round(y0 - depth, 2), round(left + width, 2), y0)
    same = bool(rng.random() < 0.5)
    if same:
        roof, colour = ("tile" if house.roof == "tile" else "concrete"), house.colour
    else:
        fresh = ROOF_COLOURS["fresh"] + rng.normal(0, 5, 3)
        roof, colour = "concrete", (float(fresh[0]), float(fresh[1]), float(fresh[2]))
    height = 3.5 if same and house.height_m == 3.5 else float(rng.choice([3.0, 3.5]))
    annex = Building(
        house.building_id, house.parcel_id, case, roof, height, footprint, colour, False
    )
    return Extension(house.building_id, house.parcel_id, case, "same" if same else "fresh", annex)


def _with_permit(
    rng: np.random.Generator, permits: list[Permit], n: int, house: Building, ext: Extension
) -> list[Permit]:
    """``permits`` edited for an extension's case: ``unpermitted`` drops the house's record
    (nothing on file for the parcel), the others add a permit for the works beside the
    house's completed one: valid and large enough (``permitted``), valid but exceeded by more
    than a third (``over_footprint``), granted only after the capture (``expired_permit``)."""
    if ext.case == "unpermitted":
        return [p for p in permits if p.parcel_id != ext.parcel_id]
    built_m2 = house.footprint.area + ext.annex.footprint.area
    if ext.case == "over_footprint":
        allowed_m2 = min(house.footprint.area * rng.uniform(1.0, 1.05), built_m2 / 1.35)
    else:
        allowed_m2 = built_m2 * rng.uniform(1.05, 1.25)
    start, days = (
        (LATE_FROM, LATE_DAYS) if ext.case == "expired_permit" else (BUILT_FROM, BUILT_DAYS)
    )
    issued = start + timedelta(days=int(rng.integers(0, days)))
    permit = Permit(
        f"PC-{2000 + n:05d}",
        ext.parcel_id,
        "active",
        issued,
        date(issued.year + 2, issued.month, 1),
        round(allowed_m2, 1),
    )
    return [*permits, permit]
