"""Bring the projection and service tables to the latest migration (on start-up and on upgrade).

Two lines of migrations share one environment (app/migrations/env.py): the main line (`versions/`) for the
projections and the API's tables, and on SQLite the keys file's own line (`keys/`, see Settings.keys_url)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


Tree = Literal["views", "keys"]


def alembic_config(tree: Tree = "views") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(MIGRATIONS / ("versions" if tree == "views" else "keys")))
    config.attributes["tree"] = tree
    return config


def upgrade(engine: Engine, revision: str = "head", tree: Tree = "views") -> None:
    config = alembic_config(tree)
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
