"""The state database's tables, their migrations, and the one function that applies them.

``meta.schema_version`` says which version a database has.  A new database gets
every table at once (:data:`SCHEMA`); an older one is taken forward one version
at a time (:data:`MIGRATIONS`), in the same write transaction that records the
new version.  A database newer than this cloudtmpl is refused (``state-version``).
"""

from __future__ import annotations

from cloudtmpl.diagnostics import error
from cloudtmpl.state.backend import Backend, Tx

SCHEMA_VERSION = 6
SCHEMA_KEY = "#schema"  # writers' serialization key of all schema work (not a stack name)

_TABLES: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS stacks (
        name TEXT PRIMARY KEY,
        serial INTEGER NOT NULL,
        created TEXT NOT NULL,
        updated TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS resources (
        stack TEXT NOT NULL,
        address TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        region TEXT NOT NULL,
        physical_id TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        attributes TEXT NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (stack, address))""",
    """CREATE TABLE IF NOT EXISTS outputs (
        stack TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (stack, name))""",
    """CREATE TABLE IF NOT EXISTS runs (
        id {autoinc_pk},
        stack TEXT NOT NULL,
        operation TEXT NOT NULL CHECK (operation IN ('apply', 'destroy')),
        holder TEXT NOT NULL,
        started TEXT NOT NULL,
        finished TEXT,
        status TEXT NOT NULL
            CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')))""",
    "CREATE INDEX IF NOT EXISTS runs_by_stack ON runs (stack, status)",
    """CREATE TABLE IF NOT EXISTS journal (
        run_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        stack TEXT NOT NULL,
        address TEXT NOT NULL,
        action TEXT NOT NULL,
        phase TEXT NOT NULL CHECK (phase IN ('intent', 'done', 'failed')),
        physical_id TEXT,
        detail TEXT,
        at TEXT NOT NULL,
        PRIMARY KEY (run_id, seq))""",
    "CREATE INDEX IF NOT EXISTS journal_by_address ON journal (stack, address, phase)",
    """CREATE TABLE IF NOT EXISTS locks (
        stack TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        acquired TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit (
        id {autoinc_pk},
        at TEXT NOT NULL,
        stack TEXT NOT NULL,
        who TEXT NOT NULL,
        what TEXT NOT NULL)""",
)

_PARAMETERS_TABLE = """CREATE TABLE IF NOT EXISTS parameters (
        stack TEXT NOT NULL,
        name TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (stack, name))"""
# outputs keep the template's order: a row's place among the stack's outputs
_OUTPUTS_POSITION = "ALTER TABLE outputs ADD COLUMN position INTEGER NOT NULL DEFAULT 0"
# the id of the last plan file applied to the stack: re-applying it says so
_APPLIED_PLAN = "ALTER TABLE stacks ADD COLUMN applied_plan TEXT"
# the template file the stack was applied from (NULL: not known)
_TEMPLATE_COLUMN = "ALTER TABLE stacks ADD COLUMN template TEXT"
# the stack lock's fencing token: a per-stack counter bumped by every acquisition, and
# the value the current holder got (0: a lock record written before schema 4)
_LOCK_GENERATION = "ALTER TABLE stacks ADD COLUMN lock_generation INTEGER NOT NULL DEFAULT 0"
_LOCK_ROW_GENERATION = "ALTER TABLE locks ADD COLUMN generation INTEGER NOT NULL DEFAULT 0"
# what a provider keeps of a cloud that the cloud cannot say itself (the libcloud
# attachment records): per target and namespace, key -> JSON value
_PROVIDER_RECORDS_TABLE = """CREATE TABLE IF NOT EXISTS provider_records (
        target TEXT NOT NULL,
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (target, namespace, key))"""
# the scaling groups' sizes and cooldowns (cloudtmpl.state.scaling_groups)
_SCALING_GROUPS_TABLE = """CREATE TABLE IF NOT EXISTS scaling_groups (
        stack TEXT NOT NULL,
        grp TEXT NOT NULL,
        size INTEGER NOT NULL,
        definition TEXT NOT NULL,
        cooldowns TEXT NOT NULL,
        removed TEXT NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (stack, grp))"""

# What a new database gets: the tables of schema 1, then every later change.
SCHEMA: tuple[str, ...] = (*_TABLES, _PARAMETERS_TABLE, _OUTPUTS_POSITION, _APPLIED_PLAN,
                           _TEMPLATE_COLUMN, _LOCK_GENERATION, _LOCK_ROW_GENERATION,
                           _PROVIDER_RECORDS_TABLE, _SCALING_GROUPS_TABLE)

# Migration hook: MIGRATIONS[n] holds the statements that take schema version n to
# n + 1.  They run in one write transaction together with the version update.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 2: digests of the values of `immutable` parameters, to refuse changing them
    1: (_PARAMETERS_TABLE,),
    # 3: outputs.position (rows written before it keep position 0: name order),
    # stacks.applied_plan and stacks.template (the template file each stack was
    # applied from)
    2: (_OUTPUTS_POSITION, _APPLIED_PLAN, _TEMPLATE_COLUMN),
    # 4: the lock's generation (fencing token): stacks.lock_generation, locks.generation
    3: (_LOCK_GENERATION, _LOCK_ROW_GENERATION),
    # 5: provider_records (until then the libcloud attachment records were a JSON file
    # in the project, imported on first use: cloudtmpl.providers.libcloud.records)
    4: (_PROVIDER_RECORDS_TABLE,),
    # 6: scaling_groups (a scaling group's size, kept across applies)
    5: (_SCALING_GROUPS_TABLE,),
}


def ensure_schema(tx: Tx, backend: Backend) -> None:
    """Create or migrate the schema to :data:`SCHEMA_VERSION`, inside ``tx`` (a write
    transaction serialized on :data:`SCHEMA_KEY`, so that processes opening one
    database at once queue)."""
    tx.run("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = tx.one("SELECT value FROM meta WHERE key = 'schema_version'")
    if row is None:
        for statement in SCHEMA:
            tx.run(statement.format(autoinc_pk=backend.autoinc_pk))
        tx.run(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        return
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise error(
            "state-version",
            f"the state database {backend.description} has schema version "
            f"{version}; this cloudtmpl understands up to {SCHEMA_VERSION}",
            hint="upgrade cloudtmpl",
        )
    while version < SCHEMA_VERSION:
        for statement in MIGRATIONS[version]:
            tx.run(statement.format(autoinc_pk=backend.autoinc_pk))
        version += 1
        tx.run("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
