"""Bearer tokens (api.md "Authentication"): issued by `puja tokens create`, stored only as SHA-256 hashes; a
token's name is its subject, recorded as `actor` on every event it causes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.memory import ShortMemory
from app.storage import api_tokens
from domain import regions
from domain.enums import Role

TOKEN_PREFIX = "puja_"
BOOTSTRAP_SUBJECT = "bootstrap-admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    regions: tuple[str, ...] = field(default_factory=tuple)

    def acts_for(self, region: str) -> bool:
        """An admin acts for every region; an operator for its regions (a province covers its kabupaten
        and kota)."""
        if self.role == Role.ADMIN:
            return True
        return self.role == Role.OPERATOR and any(regions.covers(s, region) for s in self.regions)


class TokenError(ValueError):
    pass


class TokenStore:
    """Tokens by hash. What a token resolves to is remembered for `remember_for` seconds, so that a revocation
    made by another process takes effect within that time (at once in this process)."""

    def __init__(
        self, engine: Engine, bootstrap_admin_token: str | None = None, remember_for: float = 2.0
    ) -> None:
        self.engine = engine
        self._bootstrap_hash = hash_token(bootstrap_admin_token) if bootstrap_admin_token else None
        self._remembered: ShortMemory[str, Principal] = ShortMemory(remember_for)

    def create(self, name: str, role: str, region_codes: list[str] | tuple[str, ...] = ()) -> str:
        """Issue a token and return it; only its hash is kept."""
        name = name.strip()
        if not name:
            raise TokenError("A token needs a name (its subject).")
        try:
            role = Role(role).value
        except ValueError:
            raise TokenError(f"Unknown role '{role}'; one of {', '.join(r.value for r in Role)}.") from None
        codes = list(dict.fromkeys(region_codes))
        for code in codes:
            problem = regions.code_problem(code)
            if problem:
                raise TokenError(problem)
        if role == Role.OPERATOR and not codes:
            raise TokenError("An operator token needs at least one --region.")
        if role != Role.OPERATOR and codes:
            raise TokenError("Only operator tokens are scoped to regions.")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(api_tokens).values(
                        name=name,
                        token_hash=hash_token(token),
                        role=role,
                        regions=codes,
                        created_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            raise TokenError(f"A token named '{name}' exists already.") from None
        return token

    def authenticate(self, token: str) -> Principal | None:
        digest = hash_token(token)
        if self._bootstrap_hash and hmac.compare_digest(digest, self._bootstrap_hash):
            return Principal(BOOTSTRAP_SUBJECT, Role.ADMIN.value)
        return self._remembered.get(digest, self._look_up)

    def _look_up(self, digest: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_tokens).where(api_tokens.c.token_hash == digest, api_tokens.c.revoked_at.is_(None))
            ).first()
        if row is None:
            return None
        return Principal(row.name, row.role, tuple(row.regions or ()))

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.name)).all()
        return [
            {
                "name": r.name,
                "role": r.role,
                "regions": list(r.regions or ()),
                "created_at": r.created_at.isoformat() if r.created_at else None,
                "revoked": r.revoked_at is not None,
            }
            for r in rows
        ]

    def revoke(self, name: str) -> bool:
        self._remembered.clear()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(api_tokens)
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return bool(result.rowcount)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(api_tokens.c.name)).all())
