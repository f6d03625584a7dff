"""Project types as data, with their Chinese and English names.

Revision ID: 0010_project_types
Revises: 0009_fault_isolation
Create Date: 2026-12-01 22:00

An issuance names its project type by a short code (`forestry`, `hydropower`, …); pages and certificates
show it by name in both languages. The codes stay free text on issuances (new kinds need no migration):
a code this table does not know is shown as it is, and the exchange adds names with
`POST /v1/project-types`.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_project_types"
down_revision: str | None = "0009_fault_isolation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
CREATE TABLE project_type (
    code text CONSTRAINT pk_project_type PRIMARY KEY,
    name_zh text NOT NULL,
    name_en text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO project_type (code, name_zh, name_en) VALUES
    ('forestry', '林业碳汇', 'Forestry carbon sink'),
    ('afforestation', '造林碳汇', 'Afforestation'),
    ('mangrove', '红树林营造', 'Mangrove restoration'),
    ('hydropower', '水电', 'Hydropower'),
    ('wind', '风力发电', 'Wind power'),
    ('solar', '光伏发电', 'Solar power'),
    ('solar_thermal', '光热发电', 'Solar thermal power'),
    ('methane', '甲烷回收利用', 'Methane recovery'),
    ('coal_mine_methane', '煤矿瓦斯利用', 'Coal mine methane'),
    ('biomass', '生物质利用', 'Biomass'),
    ('energy_efficiency', '节能改造', 'Energy efficiency'),
    ('transport', '低碳出行', 'Low-carbon transport'),
    ('waste', '垃圾处理', 'Waste management');
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'registry_app') THEN
        GRANT SELECT, INSERT ON project_type TO registry_app;
        REVOKE UPDATE, DELETE, TRUNCATE ON project_type FROM registry_app;
    END IF;
END $$;
"""

DOWNGRADE = "DROP TABLE project_type;"


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
