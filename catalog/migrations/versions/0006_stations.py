"""issue 16: stations, device leases, the station on spool copies, job claims and custody events

Revision ID: 0006_stations
Revises: 0005_bureau
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_stations"
down_revision = "0005_bureau"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.Column("dock_root", sa.Text(), nullable=True),
        sa.Column("spool_dir", sa.Text(), nullable=True),
        sa.Column("spool_free_bytes", sa.BigInteger(), nullable=True),
        sa.Column("docked", sa.JSON(), nullable=False),
        sa.Column("running_offloads", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "device_leases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("serial", sa.String(64), nullable=False, unique=True),
        sa.Column("station", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("taken_from", sa.String(64), nullable=True),
    )
    # Plain ALTER TABLE ADD COLUMN on SQLite too (batch mode only recreates a table when it must):
    # custody_events keeps its append-only triggers.
    with op.batch_alter_table("offload_items") as b:
        b.add_column(sa.Column("station", sa.String(64), nullable=True))
        b.create_index("ix_offload_items_station", ["station"])
    with op.batch_alter_table("jobs") as b:
        b.add_column(sa.Column("station", sa.String(64), nullable=True))
    with op.batch_alter_table("custody_events") as b:
        b.add_column(sa.Column("station", sa.String(64), nullable=True))
    op.create_index("ix_dock_sessions_station", "dock_sessions", ["station"])


def downgrade() -> None:
    op.drop_index("ix_dock_sessions_station", table_name="dock_sessions")
    with op.batch_alter_table("custody_events") as b:
        b.drop_column("station")
    with op.batch_alter_table("jobs") as b:
        b.drop_column("station")
    with op.batch_alter_table("offload_items") as b:
        b.drop_index("ix_offload_items_station")
        b.drop_column("station")
    op.drop_table("device_leases")
    op.drop_table("stations")
