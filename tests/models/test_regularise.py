import shapely
from rasterio import features as rio_features
from rasterio.transform import from_origin
from shapely import affinity
from shapely.geometry import Point, box, shape

from models.regularise import regularise_footprint


def _pixelated(polygon, pixel_m=0.1):
    """``polygon`` as a classifier's blob: traced from a ``pixel_m`` raster (stair-stepped)."""
    minx, miny, maxx, maxy = polygon.bounds
    transform = from_origin(minx - 1, maxy + 1, pixel_m, pixel_m)
    out_shape = (int((maxy - miny + 2) / pixel_m), int((maxx - minx + 2) / pixel_m))
    mask = rio_features.rasterize(
        [(polygon, 1)], out_shape=out_shape, transform=transform, dtype="uint8"
    )
    return shapely.union_all(
        [shape(g) for g, _ in rio_features.shapes(mask, mask=mask > 0, transform=transform)]
    )


def _iou(a, b):
    return a.intersection(b).area / a.union(b).area


def test_an_l_shaped_house_becomes_six_right_angled_corners():
    house = affinity.rotate(box(0, 0, 12, 5).union(box(0, 0, 5, 10)), 27, origin=(0, 0))
    blob = _pixelated(house)
    assert len(blob.exterior.coords) > 100
    footprint = regularise_footprint(blob)
    assert len(footprint.exterior.coords) == 7  # six corners, closed
    assert _iou(footprint, house) > 0.95
    corners = list(footprint.exterior.coords)[:-1]
    for i in range(6):  # every corner a right angle
        (ax, ay), (bx, by), (cx, cy) = corners[i - 1], corners[i], corners[(i + 1) % 6]
        dot = (ax - bx) * (cx - bx) + (ay - by) * (cy - by)
        assert abs(dot) < 1e-6 * max(1.0, abs(ax - bx) * abs(cx - bx) + abs(ay - by) * abs(cy - by))


def test_a_nearly_full_rectangle_is_its_rectangle():
    slab = affinity.rotate(box(0, 0, 10, 6).difference(box(9.5, 5.5, 10, 6)), -12)
    footprint = regularise_footprint(_pixelated(slab))
    assert len(footprint.exterior.coords) == 5
    assert _iou(footprint, slab) > 0.95


def test_a_round_structure_is_not_squared():
    tank = Point(0, 0).buffer(6)
    footprint = regularise_footprint(_pixelated(tank))
    assert len(footprint.exterior.coords) > 8
    assert _iou(footprint, tank) > 0.95
