"""Load product model files (shipped and operator-added) into the product_models table."""

from __future__ import annotations

from pathlib import Path

import structlog
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from devices.catalog import ProductModel, builtin_models, load_model_file
from devices.errors import InvalidRequest, NotFound

log = structlog.get_logger(__name__)


def load_all_models(extra_dir: Path | None = None) -> dict[str, ProductModel]:
    """Shipped models plus every *.yaml in `extra_dir`; a bad file is a clear error."""
    models = dict(builtin_models())
    if extra_dir is None:
        return models
    if not extra_dir.is_dir():
        raise InvalidRequest(f"product model folder {extra_dir} does not exist")
    for path in sorted(extra_dir.glob("*.yaml")):
        try:
            model = load_model_file(path)
        except (ValidationError, ValueError, OSError) as exc:
            raise InvalidRequest(f"product model file {path.name} is not valid: {exc}") from exc
        models[model.id] = model
    return models


def sync_product_models(conn: Connection[DictRow], extra_dir: Path | None = None) -> list[str]:
    """Upsert every product model into the database; return the ids written."""
    models = load_all_models(extra_dir)
    with conn.transaction():
        for model in models.values():
            conn.execute(
                """
                INSERT INTO product_models (id, version, spec) VALUES (%s, %s, %s)
                ON CONFLICT (id) DO UPDATE
                SET version = EXCLUDED.version, spec = EXCLUDED.spec, updated_at = now()
                WHERE product_models.spec IS DISTINCT FROM EXCLUDED.spec
                """,
                (model.id, model.version, Jsonb(model.model_dump(mode="json"))),
            )
    log.info("devices.models_synced", count=len(models))
    return sorted(models)


def product_model(conn: Connection[DictRow], model_id: str) -> ProductModel:
    """A product model as stored in the database, or NotFound."""
    row = conn.execute("SELECT spec FROM product_models WHERE id = %s", (model_id,)).fetchone()
    if row is None:
        raise NotFound(f"unknown product model {model_id!r}")
    try:
        return ProductModel.model_validate(row["spec"])
    except ValidationError as exc:
        # A row written by hand or by an older version: the shipped model still describes it.
        builtin = builtin_models().get(model_id)
        if builtin is None:
            raise InvalidRequest(f"stored product model {model_id!r} is not valid") from exc
        log.warning("devices.stored_model_invalid", model_id=model_id)
        return builtin
