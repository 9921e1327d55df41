"""The read side: views of the record (listings, index figures, the audit log) in their own small world.

Projections consume only `domain.published.EventRecord`s and write with SQLAlchemy Core (rows in bulk through the
same connection's driver, `projections.bulk`); they do not know whether
records come from the store's notification log or from a stream.

- `projections.store.ViewStore` — the database of the views; `projections.tables` — its tables.
- `projections.index.IndexProjection` ("index") and `projections.audit.AuditProjection` ("audit").
- `projections.runner.ProjectionRunner` — applies new records, tracks positions, waits for them.
- `projections.queries` — the read functions; `projections.diffusion` — replication metrics, lineage and the
  yearly summary, as of a business date.
"""

from projections.audit import AuditProjection
from projections.index import IndexProjection
from projections.runner import ProjectionRunner
from projections.store import ViewStore
from projections.tracking import Projection


def all_projections() -> list[Projection]:
    """A fresh instance of every projection this service keeps."""
    return [IndexProjection(), AuditProjection()]


__all__ = [
    "AuditProjection",
    "IndexProjection",
    "Projection",
    "ProjectionRunner",
    "ViewStore",
    "all_projections",
]
