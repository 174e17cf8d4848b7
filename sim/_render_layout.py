"""The synthetic scene's layout: parcels, buildings, crop zones, records.

Pure geometry and records, drawn from one seeded generator, in local metres (origin at the
world's south-west corner, x east, y north). ``sim.world`` shifts it to EPSG:32630 and
``sim._render_ortho`` paints it.

Layout, south to north: a back street, one row of town lots (Berkane), the asphalt road,
then the farm grid of the Triffa plain crossed by dirt tracks and a séguia.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import shapely
from shapely.affinity import scale, translate
from shapely.geometry import Point, Polygon, box

BACK_STREET_M = (0.0, 6.0)
LOTS_M = (6.0, 36.0)
ROAD_M = (36.0, 45.0)
ASPHALT_M = (37.0, 44.0)
TRACK_WIDTH_M = 5.0
CANAL_WIDTH_M = 1.6
LOT_WIDTH_M = 20.0
ORCHARD_TREE_SPACING_M = 4.8
ORCHARD_ROW_SPACING_M = 6.0

NEW_CASES_SMALL = (
    "permitted",
    "unpermitted",
    "unpermitted",
    "over_footprint",
    "expired_permit",
    "construction",
)
NEW_CASES_LARGE = NEW_CASES_SMALL + ("permitted", "unpermitted")
FARM_REQUIRED = ("orchard", "vineyard", "cereal", "greenhouse", "vegetables", "bare")
FARM_EXTRA = ("orchard", "cereal", "orchard", "vineyard", "cereal", "vegetables")
CROPS = ("orchard", "vineyard", "cereal", "vegetables")


@dataclass(frozen=True)
class Parcel:
    parcel_id: str
    commune: str
    land_use: str
    geometry: Polygon
    rows_along_x: bool = True


@dataclass(frozen=True)
class RoofDetails:
    """What sits on a flat roof: tanks and dishes (x, y, radius_m), a stair box, block walls."""

    tanks: tuple[tuple[float, float, float], ...] = ()
    dishes: tuple[tuple[float, float, float], ...] = ()
    stair: Polygon | None = None
    upper_walls: Polygon | None = None


@dataclass(frozen=True)
class Building:
    building_id: str
    parcel_id: str
    case: str
    roof: str
    height_m: float
    footprint: Polygon
    colour: tuple[float, float, float]
    in_epoch1: bool
    details: RoofDetails = field(default_factory=RoofDetails)


@dataclass(frozen=True)
class Zone:
    """A stressed or bare zone inside a crop parcel; ``ramp`` points to where stress is worst."""

    parcel_id: str
    health: str
    geometry: Polygon
    ramp: tuple[float, float] | None = None


@dataclass(frozen=True)
class Permit:
    permit_id: str
    parcel_id: str
    status: str
    issued: date
    expires: date
    permitted_footprint_m2: float


@dataclass(frozen=True)
class Site:
    """A works site: cleared ground, and per epoch what stands on it."""

    parcel_id: str
    ground: Polygon
    slab: Polygon
    walls: Polygon | None
    slab_in_epoch1: bool


@dataclass(frozen=True)
class Extension:
    """An annex built onto the back of a standing house between the epochs: ``annex`` is its
    own roof (painted like a building), ``case`` its permit situation as for a new house."""

    building_id: str
    parcel_id: str
    case: str
    roof: str
    """"same" (the house's roof material and colour) or "fresh" (a new concrete slab)."""
    annex: Building


@dataclass(frozen=True)
class Layout:
    width_m: float
    height_m: float
    parcels: tuple[Parcel, ...]
    buildings: tuple[Building, ...]
    zones: tuple[Zone, ...]
    greenhouses: tuple[Polygon, ...]
    greenhouse_parcels: tuple[str, ...]
    tracks: tuple[Polygon, ...]
    canal: Polygon
    street_trees: tuple[tuple[float, float, float], ...]
    sites: tuple[Site, ...]
    permits: tuple[Permit, ...]
    project_parcel: str
    extensions: tuple[Extension, ...] = ()


ROOF_COLOURS = {
    "grey": (188.0, 186.0, 180.0),
    "beige": (204.0, 188.0, 158.0),
    "white": (228.0, 226.0, 219.0),
    "ochre": (196.0, 170.0, 132.0),
    "tile": (160.0, 78.0, 56.0),
    "fresh": (172.0, 172.0, 168.0),
}


def _farm_grid(width_m: float, height_m: float) -> tuple[list[Polygon], list[Polygon], Polygon]:
    """Farm cells, the dirt tracks between them and the séguia beside the central track."""
    y0 = ROAD_M[1]
    cols = max(2, round(width_m / 125.0))
    rows = max(2, round((height_m - y0) / 110.0))
    xs = np.linspace(0.0, width_m, cols + 1)
    ys = np.linspace(y0, height_m, rows + 1)
    canal_col = cols // 2
    half = TRACK_WIDTH_M / 2
    tracks = [
        box(x - half, y0, x + half + (CANAL_WIDTH_M if i == canal_col else 0), height_m)
        for i, x in enumerate(xs[1:-1], start=1)
    ]
    tracks += [box(0.0, y - half, width_m, y + half) for y in ys[1:-1]]
    cx = xs[canal_col] + half
    canal = box(cx, y0, cx + CANAL_WIDTH_M, height_m)
    cells = []
    for j in range(rows):
        for i in range(cols):
            x_lo = xs[i] + (half + (CANAL_WIDTH_M if i == canal_col else 0) if i > 0 else 0)
            x_hi = xs[i + 1] - (half if i < cols - 1 else 0)
            y_lo = ys[j] + (half if j > 0 else 0.5)
            y_hi = ys[j + 1] - (half if j < rows - 1 else 0)
            cells.append(box(x_lo, y_lo, x_hi, y_hi))
    return cells, tracks, canal


def _split(cell: Polygon) -> list[Polygon]:
    x0, y0, x1, y1 = cell.bounds
    xm = (x0 + x1) / 2
    return [box(x0, y0, xm - 0.5, y1), box(xm + 0.5, y0, x1, y1)]


def _house(rng: np.random.Generator, lot: Polygon, area_m2: float | None) -> Polygon:
    """A house footprint at the road side of a lot: full width (row house) or detached."""
    x0, y0, x1, y1 = lot.bounds
    front = y1 - rng.uniform(0.0, 2.0)
    if area_m2 is None:
        gap = 0.0 if rng.random() < 0.6 else rng.uniform(1.0, 2.5)
        width = (x1 - x0) - 2 * gap
        depth = rng.uniform(13.0, 20.0)
    else:
        width = min((x1 - x0) - 2.0, max(8.0, np.sqrt(area_m2 * rng.uniform(0.9, 1.6))))
        depth = area_m2 / width
    left = x0 + rng.uniform(0.0, (x1 - x0) - width) if area_m2 is not None else x0 + gap
    return box(round(left, 2), round(front - depth, 2), round(left + width, 2), round(front, 2))


def _roof_details(rng: np.random.Generator, fp: Polygon, unfinished: bool) -> RoofDetails:
    x0, y0, x1, y1 = fp.bounds
    inner = fp.buffer(-1.0, join_style="mitre")
    ix0, iy0, ix1, iy1 = inner.bounds
    tanks = tuple(
        (
            float(rng.uniform(ix0 + 1, ix1 - 1)),
            float(rng.uniform(iy0 + 1, iy1 - 1)),
            float(rng.uniform(0.5, 0.75)),
        )
        for _ in range(int(rng.integers(0, 3)))
    )
    dishes = tuple(
        (float(rng.uniform(ix0 + 0.6, ix1 - 0.6)), float(rng.uniform(iy0 + 0.6, iy1 - 0.6)), 0.4)
        for _ in range(int(rng.integers(0, 2)))
    )
    sx = rng.uniform(ix0, ix1 - 3.0)
    stair = box(sx, iy1 - 3.0, sx + 2.6, iy1) if rng.random() < 0.7 else None
    upper = None
    if unfinished:
        ux1 = rng.uniform(x0 + 0.45 * (x1 - x0), x1)
        upper = box(x0, y0, ux1, y0 + rng.uniform(0.5, 0.9) * (y1 - y0))
        stair = None
    return RoofDetails(tanks=tanks, dishes=dishes, stair=stair, upper_walls=upper)


def _zones(rng: np.random.Generator, parcel: Parcel) -> list[Zone]:
    """Stressed zones (row gradients, patches) and bare patches of a crop parcel."""
    x0, y0, x1, y1 = parcel.geometry.bounds
    w, h = x1 - x0, y1 - y0
    zones: list[Zone] = []
    if parcel.land_use in ("orchard", "vineyard") or (
        parcel.land_use == "vegetables" and rng.random() < 0.5
    ):
        # Stress worst at the far end of the drip lines: a band of rows, graded along them.
        forward = rng.random() < 0.5
        if parcel.rows_along_x:
            a = rng.uniform(0.1, 0.5) * h
            b = a + rng.uniform(0.3, 0.45) * h
            start = x0 + rng.uniform(0.35, 0.55) * w
            geom = (
                box(start, y0 + a, x1, y0 + b)
                if forward
                else box(x0, y0 + a, x1 - (start - x0), y0 + b)
            )
            ramp = (1.0, 0.0) if forward else (-1.0, 0.0)
        else:
            a = rng.uniform(0.1, 0.5) * w
            b = a + rng.uniform(0.3, 0.45) * w
            start = y0 + rng.uniform(0.35, 0.55) * h
            geom = (
                box(x0 + a, start, x0 + b, y1)
                if forward
                else box(x0 + a, y0, x0 + b, y1 - (start - y0))
            )
            ramp = (0.0, 1.0) if forward else (0.0, -1.0)
        zones.append(Zone(parcel.parcel_id, "stressed", geom, ramp))
    if parcel.land_use == "cereal":
        zones.append(Zone(parcel.parcel_id, "stressed", _blob(rng, parcel.geometry, 0.22)))
    if parcel.land_use in ("orchard", "cereal") and rng.random() < 0.75:
        bare = (
            _blob(rng, parcel.geometry, 0.12)
            if parcel.land_use == "cereal"
            else _corner(rng, parcel)
        )
        zones.append(Zone(parcel.parcel_id, "bare", bare))
    return zones


def _blob(rng: np.random.Generator, within: Polygon, size: float) -> Polygon:
    x0, y0, x1, y1 = within.bounds
    r = size * min(x1 - x0, y1 - y0)
    cx, cy = rng.uniform(x0 + 1.5 * r, x1 - 1.5 * r), rng.uniform(y0 + 1.5 * r, y1 - 1.5 * r)
    parts = [
        Point(cx + dx, cy + dy).buffer(r * k, quad_segs=8)
        for dx, dy, k in zip(
            rng.normal(0, 0.4 * r, 4),
            rng.normal(0, 0.4 * r, 4),
            rng.uniform(0.5, 0.9, 4),
            strict=True,
        )
    ]
    blob = scale(shapely.union_all(parts), rng.uniform(0.8, 1.4), 1.0)
    return shapely.intersection(blob, within.buffer(-2.0)).simplify(0.2)


def _corner(rng: np.random.Generator, parcel: Parcel) -> Polygon:
    """A block of dead/removed trees against one side of an orchard."""
    x0, y0, x1, y1 = parcel.geometry.bounds
    w, h = rng.uniform(0.15, 0.25) * (x1 - x0), rng.uniform(0.15, 0.3) * (y1 - y0)
    cx = x0 if rng.random() < 0.5 else x1 - w
    cy = y0 + rng.uniform(0.1, 0.6) * (y1 - y0)
    return box(cx, cy, cx + w, cy + h)


def _greenhouses(rng: np.random.Generator, cell: Polygon) -> list[Polygon]:
    x0, y0, x1, y1 = cell.bounds
    along_x = (x1 - x0) >= (y1 - y0)
    span_lo, span_hi = (y0, y1) if along_x else (x0, x1)
    length_lo, length_hi = (x0 + 3, x1 - 3) if along_x else (y0 + 3, y1 - 3)
    out = []
    pos = span_lo + 3.0
    while pos + 8.0 <= span_hi - 3.0:
        a, b = length_lo + rng.uniform(0, 4), length_hi - rng.uniform(0, 4)
        out.append(box(a, pos, b, pos + 8.0) if along_x else box(pos, a, pos + 8.0, b))
        pos += 8.0 + rng.uniform(1.5, 3.0)
    return out


def _permit_for(
    rng: np.random.Generator, n: int, parcel_id: str, case: str, built_m2: float
) -> Permit | None:
    pid = f"PC-{2000 + n:05d}"
    if case == "existing":
        issued = date(int(rng.integers(2004, 2019)), int(rng.integers(1, 13)), 1)
        return Permit(
            pid,
            parcel_id,
            "completed",
            issued,
            date(issued.year + 3, issued.month, 1),
            round(built_m2 * rng.uniform(1.0, 1.15), 1),
        )
    if case in ("permitted", "construction", "vacant"):
        issued = date(2025, int(rng.integers(3, 13)), int(rng.integers(1, 28)))
        return Permit(
            pid,
            parcel_id,
            "active",
            issued,
            date(issued.year + 2, issued.month, 1),
            round(max(built_m2, 80.0) * rng.uniform(1.05, 1.3), 1),
        )
    if case == "over_footprint":
        issued = date(2025, int(rng.integers(3, 12)), int(rng.integers(1, 28)))
        return Permit(
            pid,
            parcel_id,
            "active",
            issued,
            date(issued.year + 2, issued.month, 1),
            round(built_m2 / rng.uniform(1.7, 2.2), 1),
        )
    if case == "expired_permit":
        issued = date(2021, int(rng.integers(1, 13)), int(rng.integers(1, 28)))
        return Permit(
            pid,
            parcel_id,
            "expired",
            issued,
            date(2024, issued.month, 1),
            round(built_m2 * rng.uniform(1.0, 1.2), 1),
        )
    return None


NEW_AREA_M2 = {
    "permitted": (100.0, 180.0),
    "unpermitted": (80.0, 200.0),
    "over_footprint": (180.0, 240.0),
    "expired_permit": (100.0, 200.0),
    "construction": (80.0, 140.0),
}


def make_layout(rng: np.random.Generator, width_m: float, height_m: float) -> Layout:
    """Lay out parcels, buildings, crop zones, greenhouses, sites and permits."""
    parcels: list[Parcel] = []
    buildings: list[Building] = []
    permits: list[Permit] = []
    sites: list[Site] = []

    n_lots = max(8, round(width_m / LOT_WIDTH_M))
    xs = np.linspace(0.0, width_m, n_lots + 1)
    new_cases = NEW_CASES_LARGE if n_lots >= 16 else NEW_CASES_SMALL
    lot_cases = list(new_cases) + (["vacant"] if n_lots >= 16 else [])
    lot_cases += ["existing"] * (n_lots - len(lot_cases))
    lot_cases = [lot_cases[i] for i in rng.permutation(n_lots)]
    for i, case in enumerate(lot_cases):
        pid = f"BRK-{i + 1:04d}"
        lot = box(xs[i] + 0.1, LOTS_M[0], xs[i + 1] - 0.1, LOTS_M[1])
        parcels.append(Parcel(pid, "Berkane", "built" if case != "vacant" else "bare", lot))
        footprint_area = (
            None if case == "existing" else rng.uniform(*NEW_AREA_M2.get(case, (90, 150)))
        )
        fp = _house(rng, lot, footprint_area)
        if case == "vacant":
            permit = _permit_for(rng, len(permits), pid, case, fp.area)
            permits.append(permit)  # type: ignore[arg-type]
            continue
        if case == "construction":
            ground = lot.buffer(-0.6, join_style="mitre")
            sites.append(Site(pid, ground, fp, None, slab_in_epoch1=False))
            roof, height, colour = "slab", 0.4, ROOF_COLOURS["fresh"]
        else:
            tile = case == "existing" and rng.random() < 0.15
            roof = "tile" if tile else "concrete"
            unfinished = not tile and rng.random() < (0.2 if case == "existing" else 0.4)
            roof = "unfinished" if unfinished else roof
            height = float(rng.choice([3.5, 6.5, 6.5, 9.5])) if case == "existing" else 3.5
            name = (
                "tile"
                if tile
                else (
                    "fresh"
                    if case != "existing"
                    else str(rng.choice(["grey", "beige", "white", "ochre"]))
                )
            )
            colour = tuple(float(c) for c in ROOF_COLOURS[name] + rng.normal(0, 5, 3))
        details = (
            _roof_details(rng, fp, roof == "unfinished")
            if roof in ("concrete", "unfinished")
            else RoofDetails()
        )
        buildings.append(
            Building(
                f"B-{len(buildings) + 1:04d}",
                pid,
                "permitted" if case == "construction" else case,
                roof,
                height,
                fp,
                colour,
                in_epoch1=case == "existing",
                details=details,
            )
        )
        permit = _permit_for(rng, len(permits), pid, case, fp.area)
        if permit is not None:
            permits.append(permit)

    cells, tracks, canal = _farm_grid(width_m, height_m)
    road_side = [i for i, c in enumerate(cells) if c.bounds[1] < ROAD_M[1] + 1.0]
    project_cell = int(rng.choice(road_side))
    farm_cells = [c for i, c in enumerate(cells) if i != project_cell]
    if len(cells) < 8:
        farm_cells = [half for c in farm_cells for half in _split(c)]
    uses = list(FARM_REQUIRED) + [
        FARM_EXTRA[i % len(FARM_EXTRA)] for i in range(max(0, len(farm_cells) - len(FARM_REQUIRED)))
    ]
    uses = [uses[i] for i in rng.permutation(len(uses))][: len(farm_cells)]
    zones: list[Zone] = []
    greenhouses: list[Polygon] = []
    greenhouse_parcels: list[str] = []
    project_pid = f"BRK-{len(parcels) + 1:04d}"
    project = cells[project_cell]
    parcels.append(Parcel(project_pid, "Berkane", "project", project))
    px0, py0, px1, py1 = project.bounds
    slab_w, slab_h = min(40.0, 0.55 * (px1 - px0)), min(14.0, 0.3 * (py1 - py0))
    sx, sy = px0 + 0.2 * (px1 - px0), py0 + 0.3 * (py1 - py0)
    slab = box(sx, sy, sx + slab_w, sy + slab_h)
    walls = box(sx, sy, sx + 0.55 * slab_w, sy + slab_h)
    sites.append(
        Site(
            project_pid, project.buffer(-1.5, join_style="mitre"), slab, walls, slab_in_epoch1=False
        )
    )
    buildings.append(
        Building(
            f"B-{len(buildings) + 1:04d}",
            project_pid,
            "project",
            "slab",
            3.0,
            slab,
            ROOF_COLOURS["fresh"],
            in_epoch1=False,
        )
    )

    for cell, use in zip(farm_cells, uses, strict=True):
        pid = f"BRK-{len(parcels) + 1:04d}"
        commune = "Sidi Slimane Echcharraa" if cell.centroid.x < width_m / 2 else "Madagh"
        parcel = Parcel(pid, commune, use, cell, rows_along_x=bool(rng.random() < 0.5))
        parcels.append(parcel)
        if use in CROPS:
            zones += _zones(rng, parcel)
        if use == "greenhouse":
            houses = _greenhouses(rng, cell)
            greenhouses += houses
            greenhouse_parcels += [pid] * len(houses)

    trees = tuple(
        (float(x), float(ROAD_M[0] - rng.uniform(0.3, 1.2)), float(rng.uniform(1.8, 3.0)))
        for x in np.arange(rng.uniform(4, 12), width_m - 3, 1)
        if rng.random() < 0.06
    )
    return Layout(
        width_m=width_m,
        height_m=height_m,
        parcels=tuple(parcels),
        buildings=tuple(buildings),
        zones=tuple(zones),
        greenhouses=tuple(greenhouses),
        greenhouse_parcels=tuple(greenhouse_parcels),
        tracks=tuple(tracks),
        canal=canal,
        street_trees=trees,
        sites=tuple(sites),
        permits=tuple(permits),
        project_parcel=project_pid,
    )


def health_zones(layout: Layout) -> list[tuple[str, str, Polygon]]:
    """(parcel_id, health, polygon) covering every crop or bare farm parcel exactly once."""
    out: list[tuple[str, str, Polygon]] = []
    for parcel in layout.parcels:
        if parcel.commune == "Berkane":
            continue
        if parcel.land_use == "bare":
            out.append((parcel.parcel_id, "bare", parcel.geometry))
            continue
        if parcel.land_use not in CROPS:
            continue
        mine = [z for z in layout.zones if z.parcel_id == parcel.parcel_id]
        bare = shapely.union_all([z.geometry for z in mine if z.health == "bare"])
        stressed = shapely.union_all([z.geometry for z in mine if z.health == "stressed"])
        stressed = shapely.difference(stressed, bare)
        healthy = shapely.difference(parcel.geometry, shapely.union(bare, stressed))
        for health, geom in (("healthy", healthy), ("stressed", stressed), ("bare", bare)):
            if not geom.is_empty and geom.area > 1.0:
                out.append((parcel.parcel_id, health, geom))
    return out


def orchard_planting(parcel: Parcel) -> np.ndarray:
    """Nominal (x, y) of every planting position of an orchard, as (N, 2).

    Rows run ``ORCHARD_ROW_SPACING_M`` apart, trees ``ORCHARD_TREE_SPACING_M`` apart along
    them; the renderer jitters each tree by ~0.1 m and leaves out dead or removed ones.
    """
    x0, y0, x1, y1 = parcel.geometry.bounds
    lo, hi = (x0, x1) if parcel.rows_along_x else (y0, y1)
    side_lo, side_hi = (y0, y1) if parcel.rows_along_x else (x0, x1)
    along = np.arange(lo + 2.5, hi - 1.5, ORCHARD_TREE_SPACING_M)
    across = np.arange(side_lo + 3.0, side_hi - 1.5, ORCHARD_ROW_SPACING_M)
    a, b = np.meshgrid(along, across)
    xs, ys = (a, b) if parcel.rows_along_x else (b, a)
    return np.column_stack([xs.ravel(), ys.ravel()])


def shift(geom: Polygon, left: float, bottom: float) -> Polygon:
    """A local-metre geometry moved to world coordinates."""
    return translate(geom, left, bottom)
