"""Optional PostGIS output: an epoch's published GeoPackage copied into a PostgreSQL schema of
its own, with the same layers, feature ids and QGIS default styles.

One schema per epoch (``raqib_epoch1``, ``raqib_2026_07_10``) holds tables named like the
GeoPackage's layers, so a QGIS user browsing the connection finds each epoch as the GeoPackage
shows it. The styles go where QGIS looks for them, ``public.layer_styles``. A schema is replaced
in one transaction: readers see the previous publication or the new one, never half of one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from core.errors import InputError
from core.settings import without_password
from gis.publish import GEOMETRY_COLUMN, STYLES_TABLE

SETTING = "[publish] postgis_url"
"""How errors name the setting they come from."""
FEATURE_ID = "fid"
"""Primary key of every table: the GeoPackage's feature id."""
CONNECT_TIMEOUT_S = 10
QGIS_STYLES_DDL = (
    "CREATE TABLE IF NOT EXISTS public.layer_styles (id SERIAL PRIMARY KEY, "
    "f_table_catalog varchar, f_table_schema varchar, f_table_name varchar, "
    "f_geometry_column varchar, styleName text, styleQML xml, styleSLD xml, "
    "useAsDefault boolean, description text, owner varchar(63) DEFAULT CURRENT_USER, "
    "ui xml, update_time timestamp DEFAULT CURRENT_TIMESTAMP, type varchar)"
)
"""The table QGIS itself creates to save styles in a PostgreSQL database."""


def epoch_schema(epoch: str, prefix: str = "raqib_") -> str:
    """The schema of ``epoch``: ``prefix`` + the epoch lower-cased, characters other than
    ``a-z0-9_`` as ``_`` (no quoting needed in SQL), at most PostgreSQL's 63 bytes."""
    return (prefix + re.sub(r"[^a-z0-9_]", "_", epoch.lower()))[:63]


def published_layers(geopackage: Path) -> dict[str, pd.DataFrame]:
    """Every layer and table of a published GeoPackage but its styles, indexed by feature id."""
    names = [str(name) for name in pyogrio.list_layers(geopackage)[:, 0]]
    return {
        name: pyogrio.read_dataframe(geopackage, layer=name, fid_as_index=True)
        for name in names
        if name != STYLES_TABLE
    }


def publish_postgis(geopackage: Path, url: str, schema: str, *, comment: str = "") -> list[str]:
    """Replace ``schema`` of the database at ``url`` with the layers of ``geopackage`` (its
    default styles into ``public.layer_styles``); returns the tables written.

    InputError naming the setting when the database cannot be reached or has no PostGIS.
    """
    layers = published_layers(geopackage)
    geometry_types = {
        name: pyogrio.read_info(geopackage, layer=name)["geometry_type"] for name in layers
    }
    styles = _styles(geopackage)
    engine = create_engine(_driver_url(url), connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.begin() as conn:
            _require_postgis(conn, url)
            _replace_schema(conn, schema, comment)
            for name, frame in layers.items():
                _write_table(conn, schema, name, frame, geometry_types[name])
            _write_styles(conn, schema, styles)
    except SQLAlchemyError as exc:
        problem = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise InputError(SETTING, f"{without_password(url)}: {problem}") from exc
    finally:
        engine.dispose()
    return list(layers)


def _driver_url(url: str) -> URL:
    """``url`` for SQLAlchemy with the psycopg (3) driver, whatever its scheme said."""
    try:
        return make_url(url).set(drivername="postgresql+psycopg")
    except ArgumentError as exc:
        raise InputError(SETTING, f"{without_password(url)}: {exc}") from exc


def _require_postgis(conn: Connection, url: str) -> None:
    installed = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'"))
    if installed.first() is None:
        raise InputError(
            SETTING,
            f"{without_password(url)}: the database has no PostGIS "
            "(run CREATE EXTENSION postgis; as its owner)",
        )


def _quoted(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _replace_schema(conn: Connection, schema: str, comment: str) -> None:
    quoted = _quoted(conn, schema)
    conn.execute(text(f"DROP SCHEMA IF EXISTS {quoted} CASCADE"))
    conn.execute(text(f"CREATE SCHEMA {quoted}"))
    if comment:  # COMMENT takes no bind parameter: a literal, quotes doubled
        literal = "'" + comment.replace("'", "''") + "'"
        conn.execute(text(f"COMMENT ON SCHEMA {quoted} IS {literal}"))


def _write_table(
    conn: Connection, schema: str, name: str, frame: pd.DataFrame, geometry_type: str | None
) -> None:
    """One layer as a table keyed by its feature id; geometry (with a spatial index and the
    layer's SRID) in ``geom`` as in the GeoPackage. An empty layer keeps the GeoPackage's
    geometry type (QGIS applies a style only to a layer of the style's geometry)."""
    frame = frame.rename_axis(FEATURE_ID).reset_index()
    table = f"{_quoted(conn, schema)}.{_quoted(conn, name)}"
    if isinstance(frame, gpd.GeoDataFrame):
        frame.rename_geometry(GEOMETRY_COLUMN).to_postgis(name, conn, schema=schema)
        if frame.empty and geometry_type and geometry_type != "Unknown" and frame.crs:
            srid = frame.crs.to_epsg() or 0
            conn.execute(
                text(
                    f"ALTER TABLE {table} ALTER COLUMN {GEOMETRY_COLUMN} "
                    f"TYPE geometry({geometry_type}, {srid})"
                )
            )
    else:
        pd.DataFrame(frame).to_sql(name, conn, schema=schema, index=False)
    conn.execute(text(f"ALTER TABLE {table} ADD PRIMARY KEY ({FEATURE_ID})"))


def _styles(geopackage: Path) -> pd.DataFrame:
    """The GeoPackage's default styles (``layer_styles``), none when it has no such table."""
    if STYLES_TABLE not in pyogrio.list_layers(geopackage)[:, 0]:
        return pd.DataFrame()
    rows = pyogrio.read_dataframe(geopackage, layer=STYLES_TABLE, read_geometry=False)
    return rows[rows["useAsDefault"].astype(bool)]


def _write_styles(conn: Connection, schema: str, styles: pd.DataFrame) -> None:
    """The layers' default styles in ``public.layer_styles``, for this database and schema
    (replacing those of an earlier publication of the schema)."""
    conn.execute(text(QGIS_STYLES_DDL))
    catalog = conn.execute(text("SELECT current_database()")).scalar_one()
    conn.execute(
        text("DELETE FROM public.layer_styles WHERE f_table_catalog = :c AND f_table_schema = :s"),
        {"c": catalog, "s": schema},
    )
    for row in _rows(styles):
        conn.execute(
            text(
                "INSERT INTO public.layer_styles (f_table_catalog, f_table_schema, "
                "f_table_name, f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, "
                "description, owner) VALUES (:catalog, :schema, :table, :geometry, :name, "
                "XMLPARSE(DOCUMENT :qml), NULL, TRUE, :description, :owner)"
            ),
            {"catalog": catalog, "schema": schema, **row},
        )


def _rows(styles: pd.DataFrame) -> list[Mapping[str, str]]:
    return [
        {
            "table": row.f_table_name,
            "geometry": row.f_geometry_column or GEOMETRY_COLUMN,
            "name": row.styleName,
            "qml": row.styleQML,
            "description": row.description,
            "owner": row.owner,
        }
        for row in styles.itertuples()
    ]
