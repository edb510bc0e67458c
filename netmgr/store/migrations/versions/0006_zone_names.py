"""zone names with their validity (issue 16): what a zone was called until when

Revision ID: 0006
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa
import netmgr.store.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('zone_names',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=True),
    sa.Column('valid_until', netmgr.store.models.UTCDateTime(), nullable=False),
    sa.Column('changed_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['path'], ['zones.path'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_zone_names_path', 'zone_names', ['path'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_zone_names_path', table_name='zone_names')
    op.drop_table('zone_names')
