"""Paint one epoch's orthophoto of a :class:`~sim._render_layout.Layout`.

Order matters and mirrors the physics: ground covers first, then every raised thing casts
its shadow from the epoch's sun, then raised things are painted over their shadows, then
sensor-like texture noise and haze, finished in row bands so that a large scene needs about
28 bytes a pixel at its peak. Persistent things (tree positions, crown sizes, roof
furniture) draw from per-object generators so both epochs agree; nuisances (cars, noise)
draw from the epoch's generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import shapely
from shapely.affinity import translate
from shapely.geometry import LineString, Polygon, box

from sim._render_layout import ASPHALT_M, BACK_STREET_M, ROAD_M, Building, Layout, Parcel
from sim._render_paint import Canvas, Colour, row_bands, smooth_noise


@dataclass(frozen=True)
class Season:
    """Sun and vegetation state of one capture date."""

    name: str
    sun_azimuth_deg: float
    sun_elevation_deg: float
    soil: Colour
    weeds: Colour
    weed_cover: float
    cereal: Colour
    cereal_stressed: Colour
    vine_leaves: bool
    fruit: bool
    canal_water: Colour
    gain: float
    haze: float

    def shadow_offset_m(self, height_m: float) -> tuple[float, float]:
        """Ground offset (dx east, dy north) of the shadow of a point ``height_m`` up."""
        length = height_m / math.tan(math.radians(self.sun_elevation_deg))
        az = math.radians(self.sun_azimuth_deg)
        return -math.sin(az) * length, -math.cos(az) * length


WINTER = dict(
    soil=(128.0, 88.0, 66.0),
    weeds=(92.0, 112.0, 58.0),
    weed_cover=0.35,
    cereal=(74.0, 116.0, 46.0),
    cereal_stressed=(146.0, 140.0, 74.0),
    vine_leaves=False,
    fruit=True,
    canal_water=(62.0, 82.0, 80.0),
    gain=0.93,
    haze=0.05,
)
SUMMER = dict(
    soil=(172.0, 130.0, 98.0),
    weeds=(178.0, 160.0, 112.0),
    weed_cover=0.2,
    cereal=(206.0, 182.0, 120.0),
    cereal_stressed=(190.0, 160.0, 118.0),
    vine_leaves=True,
    fruit=False,
    canal_water=(92.0, 100.0, 84.0),
    gain=1.04,
    haze=0.08,
)

HAZE_COLOUR = np.array((205.0, 205.0, 212.0), np.float32)
BLUR_SIGMA_PX = 0.6
BLUR_CONTEXT_ROWS = 8  # over the blur's 3-row radius: a band blurs as the whole image does
CROWN = (44.0, 72.0, 38.0)
CROWN_STRESSED = (128.0, 126.0, 58.0)
CAR_COLOURS = (
    (235, 235, 232),
    (190, 192, 195),
    (30, 32, 36),
    (150, 30, 28),
    (40, 60, 120),
    (120, 120, 118),
)


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _scale(c: Colour, k: float) -> Colour:
    return (c[0] * k, c[1] * k, c[2] * k)


def _sweep(geom: Polygon, offset: tuple[float, float]) -> Polygon:
    """The shadow of a prism standing on ``geom`` (its footprint swept by the sun offset)."""
    return shapely.convex_hull(shapely.union(geom, translate(geom, *offset)))


class EpochPainter:
    """Renders one epoch: ``paint()`` paints the canvas and returns the finished photo as
    uint8 RGB row bands (see :meth:`finish`)."""

    def __init__(
        self,
        layout: Layout,
        season: Season,
        gsd_m: float,
        seed: int,
        epoch_rng: np.random.Generator,
    ) -> None:
        self.layout = layout
        self.season = season
        self.seed = seed
        self.rng = epoch_rng
        self.canvas = Canvas(layout.width_m, layout.height_m, gsd_m)
        self.in_epoch2 = season.name == "epoch2"

    def persistent(self, *key: int) -> np.random.Generator:
        """A generator for a thing that looks the same in every epoch."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(2, *key)))

    # -- ground ------------------------------------------------------------------------------
    def _soil(self, colour: Colour, mottle: float = 0.08) -> Callable:
        base = np.array(colour, np.float32)
        noise_seed = int(self.persistent(9).integers(1 << 30))

        def shader(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            rng = np.random.default_rng(noise_seed + int(x[0, 0] * 7 + y[0, 0] * 13))
            m = 1.0 + mottle * smooth_noise(rng, x.shape, 30)
            return base * m[..., None]

        return shader

    def ground(self) -> None:
        c, s, lay = self.canvas, self.season, self.layout
        c.fill(box(0, 0, lay.width_m, lay.height_m), s.soil, rough=0.10)
        street = box(0, BACK_STREET_M[0], lay.width_m, BACK_STREET_M[1])
        c.fill(street, (150.0, 142.0, 130.0), rough=0.07)
        for y in (1.8, 4.2):
            c.line((0, y), (lay.width_m, y), (135.0, 128.0, 118.0), 0.5)
        c.fill(box(0, ROAD_M[0], lay.width_m, ROAD_M[1]), (186.0, 166.0, 138.0), rough=0.09)
        c.fill(box(0, ASPHALT_M[0], lay.width_m, ASPHALT_M[1]), (74.0, 74.0, 77.0), rough=0.05)
        for y in (38.4, 42.6):
            c.line((0, y), (lay.width_m, y), (66.0, 66.0, 69.0), 0.6)
        mid = (ASPHALT_M[0] + ASPHALT_M[1]) / 2
        for x in np.arange(1.0, lay.width_m, 9.0):
            c.fill(box(x, mid - 0.06, x + 4.0, mid + 0.06), (214.0, 212.0, 200.0), rough=0.04)
        for track in lay.tracks:
            self._track(track)
        x0, y0, x1, y1 = lay.canal.bounds
        c.fill(lay.canal, (172.0, 170.0, 162.0), rough=0.05)
        c.fill(box(x0 + 0.25, y0, x1 - 0.25, y1), s.canal_water, rough=0.03)
        for parcel in lay.parcels:
            self._parcel_ground(parcel)

    def _track(self, track: Polygon) -> None:
        c = self.canvas
        c.fill(track, (192.0, 170.0, 138.0), rough=0.09)
        x0, y0, x1, y1 = track.bounds
        along_x = (x1 - x0) > (y1 - y0)
        mid = ((y0 + y1) / 2) if along_x else ((x0 + x1) / 2)
        for off in (-0.9, 0.9):
            a, b = (
                ((x0, mid + off), (x1, mid + off))
                if along_x
                else ((mid + off, y0), (mid + off, y1))
            )
            c.line(a, b, (170.0, 150.0, 120.0), 0.4)

    def _parcel_ground(self, parcel: Parcel) -> None:
        use = parcel.land_use
        if parcel.commune == "Berkane" and use in ("built", "bare"):
            self._lot_ground(parcel)
        elif use == "cereal":
            self._cereal(parcel)
        elif use == "vegetables":
            self._vegetables(parcel)
        elif use in ("bare", "greenhouse"):
            self._ploughed(parcel, greenhouse=use == "greenhouse")
        elif use in ("orchard", "vineyard"):
            self._inter_rows(parcel)

    def _lot_ground(self, parcel: Parcel) -> None:
        """A courtyard behind a standing house, else vacant ground (disturbed once built on)."""
        rng = self.persistent(0, int(parcel.parcel_id[-4:]))
        tone = rng.uniform(0.92, 1.08)
        standing = {b.parcel_id: b for b in self.buildings()}
        built = parcel.parcel_id in standing and standing[parcel.parcel_id].in_epoch1
        x0, y0, x1, y1 = parcel.geometry.bounds
        if built:
            paved = rng.random() < 0.6
            court = (196.0, 186.0, 170.0) if paved else (166.0, 150.0, 126.0)
            self.canvas.fill(parcel.geometry, _scale(court, tone), rough=0.04 if paved else 0.09)
            wall = (212.0, 206.0, 196.0)
            self.canvas.fill(box(x0, y0, x1, y0 + 0.25), wall, rough=0.03)
            self.canvas.fill(box(x0, y0, x0 + 0.2, y1), wall, rough=0.03)
            return
        disturbed = parcel.parcel_id in standing
        earth = _mix(self.season.soil, (176.0, 164.0, 146.0), 0.6 if disturbed else 0.35)
        self.canvas.paint(parcel.geometry, self._soil(earth, 0.12), rough=0.14)
        for _ in range(int(rng.integers(2, 6))):
            px, py = rng.uniform(x0 + 1, x1 - 1), rng.uniform(y0 + 1, y1 - 1)
            colour = (150.0, 146.0, 138.0) if rng.random() < 0.5 else (96.0, 112.0, 62.0)
            if self.in_epoch2 and colour[1] > colour[0]:
                colour = (168.0, 150.0, 112.0)
            self.canvas.disc((px, py), rng.uniform(0.3, 1.1), colour)

    def stress_at(
        self, parcel_id: str, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stress (0..1) and bare flag at points, from the parcel's truth zones."""
        stress = np.zeros(x.shape, np.float32)
        bare = np.zeros(x.shape, bool)
        for zone in self.layout.zones:
            if zone.parcel_id != parcel_id:
                continue
            inside = shapely.contains_xy(zone.geometry, x, y)
            if zone.health == "bare":
                bare |= inside
                continue
            if zone.ramp is None:
                level = np.full(x.shape, 0.75, np.float32)
            else:
                zx0, zy0, zx1, zy1 = zone.geometry.bounds
                dx, dy = zone.ramp
                t = (x - zx0) / (zx1 - zx0) if dx else (y - zy0) / (zy1 - zy0)
                t = t if (dx > 0 or dy > 0) else 1.0 - t
                level = 0.45 + 0.55 * np.clip(t, 0, 1)
            stress = np.where(inside, np.maximum(stress, level), stress)
        return stress, bare

    def _cereal(self, parcel: Parcel) -> None:
        s = self.season
        rng = self.persistent(1, int(parcel.parcel_id[-4:]))
        noise_seed = int(rng.integers(1 << 30))

        def shader(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            stress, bare = self.stress_at(parcel.parcel_id, x, y)
            n = smooth_noise(np.random.default_rng(noise_seed), x.shape, 25)
            fine = smooth_noise(np.random.default_rng(noise_seed + 1), x.shape, 3)
            # Patchy, soft-edged stress: the truth polygon is where it is worst.
            soft = cv2.GaussianBlur(stress, (0, 0), 1.2 / self.canvas.gsd_m)
            stress = np.clip(soft * (0.85 + 0.25 * n), 0, 1)
            u = x if parcel.rows_along_x else y
            v = y if parcel.rows_along_x else x
            cover = np.clip(0.94 - 0.3 * stress + 0.06 * n + 0.12 * fine * stress, 0, 1)
            cover[bare] = np.clip(0.05 + 0.05 * fine[bare], 0, 1)
            crop = (
                np.array(s.cereal, np.float32) * (1 - stress[..., None])
                + np.array(s.cereal_stressed, np.float32) * stress[..., None]
            )
            if self.in_epoch2:
                swath = 1.0 + 0.05 * np.sign(np.sin(v * math.pi / 5.0))
                crop = crop * swath[..., None]
            else:
                tram = (np.abs(((v + 3.0) % 18.0) - 0.9) < 0.25) | (
                    np.abs(((v + 3.0) % 18.0) - 2.7) < 0.25
                )
                cover[tram] *= 0.3
            crop = crop * (1.0 + 0.04 * np.sin(u * 0.9 + v * 0.05))[..., None]
            soil = np.array(s.soil, np.float32)
            return soil * (1 - cover[..., None]) + crop * cover[..., None]

        self.canvas.paint(parcel.geometry, shader, rough=0.09)

    def _vegetables(self, parcel: Parcel) -> None:
        s = self.season
        rng = self.persistent(1, int(parcel.parcel_id[-4:]))
        noise_seed = int(rng.integers(1 << 30))
        mulch_every = int(rng.integers(3, 6))
        green = np.array(
            (70.0, 120.0, 52.0) if not self.in_epoch2 else (88.0, 128.0, 60.0), np.float32
        )

        def shader(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            stress, bare = self.stress_at(parcel.parcel_id, x, y)
            u = x if parcel.rows_along_x else y
            v = y if parcel.rows_along_x else x
            bed = np.floor(v / 1.6).astype(np.int32)
            in_bed = (v % 1.6) < 1.1
            plants = (np.sin(u * 2 * math.pi / 0.45) * np.sin((v % 1.6) * 2 * math.pi / 0.55)) > (
                0.1 + 0.6 * stress
            )
            n = smooth_noise(np.random.default_rng(noise_seed), x.shape, 6)
            plants &= n > -1.2 + 2.0 * stress
            soil = np.array(s.soil, np.float32) * 0.92
            out = np.broadcast_to(soil, x.shape + (3,)).copy()
            mulch = in_bed & (bed % mulch_every == 0)
            out[in_bed] = soil * 0.85
            out[mulch] = (42.0, 42.0, 44.0)
            leaf = (
                green * (1 - stress[..., None])
                + np.array(CROWN_STRESSED, np.float32) * stress[..., None]
            )
            grow = in_bed & plants & ~bare
            out[grow] = leaf[grow]
            return out

        self.canvas.paint(parcel.geometry, shader, rough=0.1)

    def _ploughed(self, parcel: Parcel, greenhouse: bool) -> None:
        soil = _mix(self.season.soil, (150, 130, 110), 0.25) if greenhouse else self.season.soil
        along_x = parcel.rows_along_x
        base = np.array(soil, np.float32)

        def shader(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            v = y if along_x else x
            furrow = 1.0 + 0.07 * np.sin(v * 2 * math.pi / 0.7) + 0.03 * np.sin(v * 0.4)
            return base * furrow[..., None]

        self.canvas.paint(parcel.geometry, shader, rough=0.13)

    def _inter_rows(self, parcel: Parcel) -> None:
        """Soil between orchard/vine rows: winter weeds, wet bands and drip lines."""
        s = self.season
        rng = self.persistent(1, int(parcel.parcel_id[-4:]))
        noise_seed = int(rng.integers(1 << 30))
        spacing = 6.0 if parcel.land_use == "orchard" else 2.8
        x0, y0, _, _ = parcel.geometry.bounds
        origin = (y0 if parcel.rows_along_x else x0) + spacing / 2

        def shader(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            _, bare = self.stress_at(parcel.parcel_id, x, y)
            v = (y if parcel.rows_along_x else x) - origin
            d = np.abs(((v + spacing / 2) % spacing) - spacing / 2)
            n = smooth_noise(np.random.default_rng(noise_seed), x.shape, 18)
            cover = np.clip(s.weed_cover + 0.25 * n, 0, 1) * np.clip(d / 1.5, 0, 1)
            cover[bare] *= 0.3
            soil = np.array(s.soil, np.float32)
            wet = np.where(d < 0.45, 0.82, 1.0).astype(np.float32)
            wet[bare] = 1.0
            out = soil * wet[..., None]
            out = out * (1 - cover[..., None]) + np.array(s.weeds, np.float32) * cover[..., None]
            drip = (d < 0.06) & ~bare
            out[drip] = (36.0, 34.0, 33.0)
            return out

        self.canvas.paint(parcel.geometry, shader, rough=0.12)

    # -- raised things -----------------------------------------------------------------------
    def trees(self) -> list[tuple[float, float, float, Colour, bool]]:
        """Orchard trees and street trees: (x, y, radius_m, crown colour, fruit)."""
        out = []
        for parcel in self.layout.parcels:
            if parcel.land_use != "orchard":
                continue
            rng = self.persistent(3, int(parcel.parcel_id[-4:]))
            x0, y0, x1, y1 = parcel.geometry.bounds
            along = (
                np.arange(x0 + 2.5, x1 - 1.5, 4.8)
                if parcel.rows_along_x
                else np.arange(y0 + 2.5, y1 - 1.5, 4.8)
            )
            across = (
                np.arange(y0 + 3.0, y1 - 1.5, 6.0)
                if parcel.rows_along_x
                else np.arange(x0 + 3.0, x1 - 1.5, 6.0)
            )
            a, b = np.meshgrid(along, across)
            xs, ys = (a, b) if parcel.rows_along_x else (b, a)
            xs = xs.ravel() + rng.normal(0, 0.12, xs.size)
            ys = ys.ravel() + rng.normal(0, 0.12, ys.size)
            radius = rng.uniform(1.5, 1.95, xs.size)
            jitter = rng.normal(0, 6, (xs.size, 3))
            dice = rng.random(xs.size)
            stress, bare = self.stress_at(parcel.parcel_id, xs, ys)
            for i in range(xs.size):
                if bare[i] or dice[i] < 0.02 + 0.4 * stress[i]:
                    continue
                r = radius[i] * (1 - 0.4 * stress[i])
                colour = _mix(CROWN, CROWN_STRESSED, float(0.85 * stress[i]))
                colour = tuple(float(v) for v in np.array(colour) + jitter[i])
                out.append(
                    (
                        float(xs[i]),
                        float(ys[i]),
                        float(r),
                        colour,
                        self.season.fruit and stress[i] < 0.6,
                    )
                )
        for x, y, r in self.layout.street_trees:
            out.append((x, y, r, (52.0, 74.0, 46.0), False))
        return out

    def vines(self) -> list[tuple[tuple[float, float], tuple[float, float], float]]:
        """Vine segments (start, end, stress) along the rows of every vineyard."""
        out = []
        for parcel in self.layout.parcels:
            if parcel.land_use != "vineyard":
                continue
            rng = self.persistent(4, int(parcel.parcel_id[-4:]))
            x0, y0, x1, y1 = parcel.geometry.bounds
            lo, hi = (x0 + 1.5, x1 - 1.5) if parcel.rows_along_x else (y0 + 1.5, y1 - 1.5)
            rows = np.arange(
                (y0 if parcel.rows_along_x else x0) + 1.4,
                (y1 if parcel.rows_along_x else x1) - 1.0,
                2.8,
            )
            starts = np.arange(lo, hi, 1.2)
            for r in rows:
                dice = rng.random(starts.size)
                px, py = (
                    (starts + 0.6, np.full(starts.size, r))
                    if parcel.rows_along_x
                    else (np.full(starts.size, r), starts + 0.6)
                )
                stress, bare = self.stress_at(parcel.parcel_id, px, py)
                for k, a in enumerate(starts):
                    if bare[k] or dice[k] < 0.02 + 0.35 * stress[k]:
                        continue
                    seg = ((a, r), (a + 1.2, r)) if parcel.rows_along_x else ((r, a), (r, a + 1.2))
                    out.append((seg[0], seg[1], float(stress[k])))
        return out

    def cars(self) -> list[Polygon]:
        lay = self.layout
        n = max(2, int(lay.width_m / 70))
        out = []
        for _ in range(n):
            x = self.rng.uniform(3, lay.width_m - 8)
            y = self.rng.choice([39.3, 41.7]) + self.rng.normal(0, 0.15)
            out.append(box(x, y - 0.9, x + 4.3, y + 0.9))
        for _ in range(max(1, n // 2)):
            x = self.rng.uniform(3, lay.width_m - 8)
            out.append(box(x, 3.2, x + 4.2, 5.0))
        return out

    def buildings(self) -> list[Building]:
        return [b for b in self.layout.buildings if b.in_epoch1 or self.in_epoch2]

    def annexes(self) -> list[Building]:
        """The roofs of the extensions built onto houses (standing in epoch 2 only)."""
        return [e.annex for e in self.layout.extensions] if self.in_epoch2 else []

    def cast_shadows(self, trees: list, vines: list, cars: list[Polygon]) -> None:
        c, s = self.canvas, self.season
        depth = 0.42 if s.name == "epoch1" else 0.5
        for b in self.buildings() + self.annexes():
            if b.roof == "slab":
                continue
            c.cast(_sweep(b.footprint, s.shadow_offset_m(b.height_m)), depth)
        for site in self.layout.sites:
            if site.walls is not None and self.in_epoch2:
                for wall in self._wall_segments(site.walls):
                    c.cast(_sweep(wall, s.shadow_offset_m(2.6)), depth)
        for gh in self.layout.greenhouses:
            c.cast(_sweep(gh.buffer(-1.0, join_style="mitre"), s.shadow_offset_m(3.0)), 0.55)
        for car in cars:
            c.cast(_sweep(car.buffer(-0.15), s.shadow_offset_m(1.2)), depth)
        el = math.radians(s.sun_elevation_deg)
        for x, y, r, _, _ in trees:
            dx, dy = s.shadow_offset_m(2.2 if r < 2.2 else 3.5)
            angle = math.degrees(math.atan2(-dy, dx))
            c.cast_disc((x + dx, y + dy), (r / math.sin(el) * 0.9, r * 0.95), angle, depth)
        vine_h = 1.5 if s.vine_leaves else 1.0
        width = 0.9 if s.vine_leaves else 0.15
        for a, b, stress in vines:
            dx, dy = s.shadow_offset_m(vine_h)
            seg = LineString([(a[0] + dx, a[1] + dy), (b[0] + dx, b[1] + dy)])
            c.cast(
                _sweep(
                    seg.buffer(width * (1 - 0.4 * stress) / 2, cap_style="flat"),
                    (-dx * 0.6, -dy * 0.6),
                ),
                0.6,
            )

    def _wall_segments(self, walls: Polygon) -> list[Polygon]:
        x0, y0, x1, y1 = walls.bounds
        t = 0.2
        segs = [
            box(x0, y0, x1, y0 + t),
            box(x0, y0, x0 + t, y1),
            box(x0, y1 - t, x0 + 0.6 * (x1 - x0), y1),
        ]
        segs += [box(x, y0, x + t, y0 + 0.6 * (y1 - y0)) for x in np.arange(x0 + 6.0, x1 - 1, 6.0)]
        return segs

    def paint_vines(self, vines: list) -> None:
        c = self.canvas
        for a, b, stress in vines:
            if self.season.vine_leaves:
                colour = _mix((58.0, 98.0, 44.0), CROWN_STRESSED, 0.8 * stress)
                seg = LineString([a, b]).buffer(0.55 * (1 - 0.4 * stress), cap_style="round")
                c.fill(seg, colour, rough=0.16)
            else:
                c.line(a, b, (92.0, 78.0, 64.0), 0.15)

    def paint_trees(self, trees: list) -> None:
        c, s = self.canvas, self.season
        dx, dy = s.shadow_offset_m(1.0)
        norm = math.hypot(dx, dy)
        tx, ty = -dx / norm, -dy / norm
        for i, (x, y, r, colour, fruit) in enumerate(trees):
            c.disc((x, y), r, _scale(colour, 0.8))
            c.disc((x + 0.2 * r * tx, y + 0.2 * r * ty), 0.78 * r, colour)
            c.disc((x + 0.45 * r * tx, y + 0.45 * r * ty), 0.35 * r, _scale(colour, 1.25))
            if fruit:
                rng = self.persistent(5, i)
                for fx, fy in rng.uniform(-0.65, 0.65, (8, 2)) * r:
                    c.disc((x + fx, y + fy), 0.06, (222.0, 128.0, 34.0))

    def paint_buildings(self) -> None:
        for b in self.buildings() + self.annexes():
            if b.roof == "tile":
                self._tile_roof(b)
            elif b.roof == "slab":
                continue
            else:
                self._flat_roof(b)

    def _flat_roof(self, b: Building) -> None:
        c, s = self.canvas, self.season
        rng = self.persistent(6, int(b.building_id[-4:]))
        c.fill(b.footprint, b.colour, rough=0.035)
        inner = b.footprint.buffer(-0.25, join_style="mitre")
        c.fill(shapely.difference(b.footprint, inner), _scale(b.colour, 1.07), rough=0.02)
        off = s.shadow_offset_m(0.9)
        c.darken(shapely.difference(inner, translate(inner, -off[0], -off[1])), 0.62)
        d = b.details
        if d.upper_walls is not None:
            self._unfinished(b, rng)
        if d.stair is not None:
            shadow = shapely.difference(_sweep(d.stair, s.shadow_offset_m(2.5)), d.stair)
            c.darken(shapely.intersection(shadow, inner), 0.55)
            c.fill(d.stair, _scale(b.colour, 0.96), rough=0.03)
            c.fill(shapely.difference(d.stair, d.stair.buffer(-0.15)), _scale(b.colour, 1.08))
        for x, y, r in d.tanks:
            ox, oy = s.shadow_offset_m(1.3)
            tank = shapely.Point(x, y).buffer(r)
            c.darken(shapely.intersection(_sweep(tank, (ox, oy)), inner), 0.6)
            white = rng.random() < 0.35
            c.disc((x, y), r, (214.0, 214.0, 208.0) if white else (34.0, 34.0, 38.0))
            c.disc(
                (
                    x - 0.25 * r * ox / max(abs(ox) + abs(oy), 1e-6),
                    y - 0.25 * r * oy / max(abs(ox) + abs(oy), 1e-6),
                ),
                0.4 * r,
                (236.0, 236.0, 230.0) if white else (70.0, 70.0, 76.0),
            )
        for x, y, r in d.dishes:
            c.disc((x, y), r, (226.0, 226.0, 222.0))
            c.disc((x, y), r * 0.3, (150.0, 150.0, 150.0))

    def _unfinished(self, b: Building, rng: np.random.Generator) -> None:
        """Block walls of an upper floor without roof, and rebar stubs on the columns."""
        c, s = self.canvas, self.season
        walls = b.details.upper_walls
        x0, y0, x1, y1 = walls.bounds  # type: ignore[union-attr]
        c.fill(walls, _scale(b.colour, 0.9), rough=0.07)
        segs = [box(x0, y0, x1, y0 + 0.2), box(x0, y0, x0 + 0.2, y1)]
        if rng.random() < 0.5:
            segs.append(box(x0, y1 - 0.2, x0 + 0.5 * (x1 - x0), y1))
        for seg in segs:
            c.darken(
                shapely.intersection(
                    shapely.difference(_sweep(seg, s.shadow_offset_m(1.8)), seg), b.footprint
                ),
                0.6,
            )
        for seg in segs:
            c.fill(seg, (152.0, 150.0, 144.0), rough=0.1)
        fx0, fy0, fx1, fy1 = b.footprint.bounds
        for x in np.linspace(fx0 + 0.3, fx1 - 0.3, max(2, round((fx1 - fx0) / 3.5) + 1)):
            for y in np.linspace(fy0 + 0.3, fy1 - 0.3, max(2, round((fy1 - fy0) / 3.5) + 1)):
                c.disc((x, y), 0.12, (70.0, 58.0, 48.0))
        if rng.random() < 0.6:
            px, py = (
                rng.uniform(x0 + 1, max(x0 + 1.1, x1 - 2)),
                rng.uniform(y0 + 1, max(y0 + 1.1, y1 - 2)),
            )
            c.fill(box(px, py, px + 1.2, py + 0.8), (160.0, 158.0, 150.0), rough=0.12)

    def _tile_roof(self, b: Building) -> None:
        c, s = self.canvas, self.season
        x0, y0, x1, y1 = b.footprint.bounds
        ridge_x = (x1 - x0) >= (y1 - y0)
        az, el = math.radians(s.sun_azimuth_deg), math.radians(s.sun_elevation_deg)
        base = np.array(b.colour, np.float32)

        def face(facing_deg: float) -> float:
            return 0.78 + 0.3 * math.cos(math.radians(facing_deg) - az) * math.cos(el)

        halves = (
            [(box(x0, y0, x1, (y0 + y1) / 2), 180.0), (box(x0, (y0 + y1) / 2, x1, y1), 0.0)]
            if ridge_x
            else [(box(x0, y0, (x0 + x1) / 2, y1), 270.0), (box((x0 + x1) / 2, y0, x1, y1), 90.0)]
        )
        for half, facing in halves:
            k = face(facing)

            def shader(x: np.ndarray, y: np.ndarray, k: float = k) -> np.ndarray:
                v = y if ridge_x else x
                u = x if ridge_x else y
                course = 1.0 - 0.08 * (np.sin(v * 2 * math.pi / 0.35) > 0.6)
                joint = 1.0 - 0.05 * (np.sin(u * 2 * math.pi / 0.22) > 0.85)
                return base * (k * course * joint)[..., None]

            c.paint(half, shader, rough=0.05)
        a, bb = (
            ((x0, (y0 + y1) / 2), (x1, (y0 + y1) / 2))
            if ridge_x
            else (((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1))
        )
        c.line(a, bb, _scale(b.colour, 0.8), 0.25)

    def paint_sites(self) -> None:
        """Works sites: cleared earth, tracks, trenches, piles; in epoch 2 slabs and walls."""
        c, s = self.canvas, self.season
        for k, site in enumerate(self.layout.sites):
            project = site.walls is not None
            if not project and not self.in_epoch2:
                continue
            rng = self.persistent(7, k)
            earth = _mix(s.soil, (196.0, 174.0, 140.0), 0.55)
            c.paint(site.ground, self._soil(earth, 0.1), rough=0.12)
            gx0, gy0, gx1, gy1 = site.ground.bounds
            for _ in range(4 if project else 2):
                pts = np.cumsum(rng.normal(0, 4.0, (6, 2)), axis=0) + [
                    rng.uniform(gx0 + 3, gx1 - 3),
                    rng.uniform(gy0 + 3, gy1 - 3),
                ]
                pts = np.clip(pts, [gx0 + 1, gy0 + 1], [gx1 - 1, gy1 - 1])
                for off in (-1.1, 1.1):
                    for p, q in zip(pts[:-1], pts[1:], strict=True):
                        c.line((p[0] + off, p[1]), (q[0] + off, q[1]), _scale(earth, 0.85), 0.5)
            for _ in range(3 if project else 1):
                px, py = rng.uniform(gx0 + 3, gx1 - 3), rng.uniform(gy0 + 3, gy1 - 3)
                rr = rng.uniform(1.0, 2.2)
                dx, dy = s.shadow_offset_m(0.8)
                c.cast_disc((px + dx, py + dy), (rr * 1.1, rr), 0, 0.6)
                c.disc(
                    (px, py),
                    rr,
                    (202.0, 186.0, 150.0) if rng.random() < 0.5 else (150.0, 148.0, 142.0),
                )
                c.disc((px + 0.2 * rr, py + 0.2 * rr), rr * 0.5, (214.0, 200.0, 166.0))
            sx0, sy0, sx1, sy1 = site.slab.bounds
            if not self.in_epoch2:
                for x in np.arange(sx0, sx1 + 0.1, 5.0):
                    c.line((x, sy0), (x, sy1), _scale(earth, 0.7), 0.6)
                for y in np.arange(sy0, sy1 + 0.1, 5.0):
                    c.line((sx0, y), (sx1, y), _scale(earth, 0.7), 0.6)
                continue
            slab = (194.0, 192.0, 186.0)
            c.fill(site.slab, slab, rough=0.05)
            for x in np.arange(sx0 + 0.3, sx1, 3.5):
                for y in np.arange(sy0 + 0.3, sy1, 3.5):
                    c.disc((x, y), 0.12, (72.0, 60.0, 50.0))

    def paint_site_walls(self) -> None:
        for site in self.layout.sites:
            if site.walls is not None and self.in_epoch2:
                for wall in self._wall_segments(site.walls):
                    self.canvas.fill(wall, (150.0, 148.0, 142.0), rough=0.1)

    def paint_cars(self, cars: list[Polygon]) -> None:
        for car in cars:
            colour = tuple(float(v) for v in CAR_COLOURS[int(self.rng.integers(len(CAR_COLOURS)))])
            self.canvas.fill(car, colour, rough=0.02)
            x0, y0, x1, y1 = car.bounds
            self.canvas.fill(box(x0 + 1.0, y0 + 0.2, x0 + 1.6, y1 - 0.2), (40.0, 45.0, 52.0))
            self.canvas.fill(box(x1 - 1.3, y0 + 0.25, x1 - 0.9, y1 - 0.25), (40.0, 45.0, 52.0))

    def paint_greenhouses(self) -> None:
        rng = self.persistent(8)
        for gh in self.layout.greenhouses:
            x0, y0, x1, y1 = gh.bounds
            along_x = (x1 - x0) >= (y1 - y0)
            dirt = rng.uniform(0.9, 1.0)

            def shader(
                x: np.ndarray, y: np.ndarray, gx=(x0, y0, x1, y1), d=dirt, along_x=along_x
            ) -> np.ndarray:
                lo, hi = (gx[1], gx[3]) if along_x else (gx[0], gx[2])
                u = x if along_x else y
                v = y if along_x else x
                t = (v - lo) / (hi - lo)
                arch = 0.84 + 0.16 * np.sin(np.clip(t, 0, 1) * math.pi)
                hoop = 1.0 - 0.06 * (np.abs((u % 3.0) - 1.5) < 0.08)
                k = (arch * hoop * d)[..., None]
                return np.array((230.0, 232.0, 228.0), np.float32) * k

            self.canvas.paint(gh, shader, rough=0.025)

    # -- finish ------------------------------------------------------------------------------
    def finish(self) -> Iterator[tuple[slice, np.ndarray]]:
        """The finished photo, north to south, as (rows, uint8 RGB band): a slight blur, then
        sensor texture, uneven light and haze from whole-image maps (:meth:`_gain_and_haze`)."""
        gain, haze = self._gain_and_haze()
        rgb = self.canvas.rgb
        height = rgb.shape[0]
        for rows in row_bands(height):
            top = max(rows.start - BLUR_CONTEXT_ROWS, 0)
            bottom = min(rows.stop + BLUR_CONTEXT_ROWS, height)
            blurred = cv2.GaussianBlur(rgb[top:bottom], (0, 0), BLUR_SIGMA_PX)
            band = blurred[rows.start - top : rows.stop - top]
            band *= gain[rows, :, None]
            band += (HAZE_COLOUR - band) * haze[rows, :, None]
            yield rows, np.clip(band + 0.5, 0, 255).astype(np.uint8)

    def _gain_and_haze(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel gain, (1 + rough (0.6 grain + 0.5 clumps + 0.35 patches)) (1 + 0.025 light)
        x season gain, and haze share, season haze x (1 + 0.4 noise): drawn from the epoch's
        generator in this order and computed in place (no full-size temporaries)."""
        c, s, rng = self.canvas, self.season, self.rng
        shape = c.rgb.shape[:2]
        gain = rng.standard_normal(shape, dtype=np.float32)  # the grain
        gain *= 0.6
        for cell_px, weight in ((5, 0.5), (40, 0.35)):  # clumps, patches
            noise = smooth_noise(rng, shape, cell_px)
            noise *= weight
            gain += noise
            del noise
        gain *= c.rough
        gain += 1.0
        light = smooth_noise(rng, shape, 600)
        light *= 0.025
        light += 1.0
        gain *= light
        del light
        gain *= s.gain
        haze = smooth_noise(rng, shape, 900)
        haze *= 0.4
        haze += 1.0
        haze *= s.haze
        return gain, haze

    def paint(self) -> Iterator[tuple[slice, np.ndarray]]:
        """Paint the scene; the photo is finished band by band as the result is iterated."""
        self.ground()
        trees, vines, cars = self.trees(), self.vines(), self.cars()
        self.paint_sites()
        self.cast_shadows(trees, vines, cars)
        self.canvas.apply_shade()
        self.paint_vines(vines)
        self.paint_greenhouses()
        self.paint_buildings()
        self.paint_site_walls()
        self.paint_cars(cars)
        self.paint_trees(trees)
        return self.finish()


def render(
    layout: Layout, season: Season, gsd_m: float, seed: int, epoch_rng: np.random.Generator
) -> np.ndarray:
    """The epoch's orthophoto as a (rows, cols, 3) uint8 RGB array, north up."""
    painter = EpochPainter(layout, season, gsd_m, seed, epoch_rng)
    rgb = np.empty((painter.canvas.height_px, painter.canvas.width_px, 3), np.uint8)
    for rows, band in painter.paint():
        rgb[rows] = band
    return rgb
