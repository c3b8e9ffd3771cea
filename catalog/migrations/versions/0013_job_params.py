"""web redactions as catalog jobs: jobs.params

A redaction requested in the web app is a `redact` job (catalog/jobs.py) whose parameters
(the plan, the reason, who asked, from where) are kept with it, so a restarted server finishes
it and redactions run one at a time instead of one ffmpeg per request.

Revision ID: 0013_job_params
Revises: 0012_search
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_job_params"
down_revision = "0012_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("params")
