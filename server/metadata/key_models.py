"""Models for archive key escrow and key-level policy (migration 0003).

Imported at the end of ``server.metadata.models`` so ``Base.metadata`` always
holds these tables too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.metadata.models import Base, UTCDateTime


class OrgKeyPair(Base):
    """An organization's X25519 escrow key pair; the private half encrypted at rest."""

    __tablename__ = "org_key_pairs"

    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    private_key_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OrgKeyPolicy(Base):
    """The weakest archive key level an organization allows."""

    __tablename__ = "org_key_policies"

    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    required_level: Mapped[str] = mapped_column(String(10))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ArchiveKey(Base):
    """An archive's key level and public key fingerprint; at "standard", the escrowed key."""

    __tablename__ = "archive_keys"

    archive_id: Mapped[str] = mapped_column(ForeignKey("archives.id"), primary_key=True)
    level: Mapped[str] = mapped_column(String(10))
    archive_key_id: Mapped[str] = mapped_column(String(32))
    escrow: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeviceKey(Base):
    """A device's X25519 public key, to which the server seals the escrowed key."""

    __tablename__ = "device_keys"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
