"""zone kinds and official codes (issue 16)

A zone gets the kind its level implied in the four-level tree of before: province -> tinh,
district -> huyen-cu (the legacy district tier, kept until the tree is merged into the new
communes), commune -> xa, village -> thon; ``level`` becomes the tier of that kind. ``code``
holds the official unit code (mã đơn vị hành chính), unique.

Revision ID: 0005
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

KIND_OF_LEVEL = {"province": ("tinh", "province"), "district": ("huyen-cu", "legacy"),
                 "commune": ("xa", "commune"), "village": ("thon", "village")}


def upgrade() -> None:
    # Plain ADD COLUMN and a unique index, no table rebuild: SQLite rebuilds a table for other
    # changes (batch mode), which the rows referencing zones (speakers, APs, scopes) refuse
    # while foreign keys are on, and they cannot be turned off inside the migration's transaction.
    # The column default only fills the rows that exist; netmgr always gives the kind.
    op.add_column('zones', sa.Column('kind', sa.String(length=16), nullable=False, server_default='tinh'))
    op.add_column('zones', sa.Column('code', sa.String(length=8), nullable=True))
    op.create_index('uq_zones_code', 'zones', ['code'], unique=True)
    zones = sa.table('zones', sa.column('level', sa.String), sa.column('kind', sa.String))
    for level, (kind, tier) in KIND_OF_LEVEL.items():
        op.execute(zones.update().where(zones.c.level == level).values(kind=kind, level=tier))


def downgrade() -> None:
    zones = sa.table('zones', sa.column('level', sa.String), sa.column('kind', sa.String))
    for level, (kind, _tier) in KIND_OF_LEVEL.items():
        op.execute(zones.update().where(zones.c.kind == kind).values(level=level))
    op.drop_index('uq_zones_code', table_name='zones')
    with op.batch_alter_table('zones', schema=None) as batch_op:
        batch_op.drop_column('code')
        batch_op.drop_column('kind')
