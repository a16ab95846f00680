"""The state store: a per-stack cache of what was applied, a step journal and a lock.

State is a cache and a journal, never the only record of what exists: the cloud
is the source of truth and every resource carries ownership tags or a
deterministic name, by which discovery finds it.  Losing the state costs a discovery pass,
not resources.

What the store holds, per stack:

* ``resources`` - address -> :class:`ResourceRecord` (target, region, physical
  id, last-applied spec and its hash, attributes).  Every change bumps the
  stack's ``serial``; a plan file records the serial it saw.
* ``outputs`` - output name -> JSON value, in the template's order.
* ``stacks.template`` - the template file the stack was last applied from (its path
  relative to the project directory, POSIX form), so that applying another file
  onto the stack is noticed; NULL for a stack written before schema 3.
* ``runs`` and ``journal`` - each apply/destroy is a run; every
  step is written *before* it starts (phase ``intent``) and *after* it ends
  (``done`` or ``failed``).  Each journal call commits before it returns, so
  after a kill at any instant :meth:`StateStore.open_intents` tells the next run
  which steps may be half-done and must be looked up in the cloud before being
  retried.
* ``locks`` - one apply/destroy per stack at a time; a second one
  fails at once with :class:`StackLocked` naming the holder.  The row carries the
  lock's generation (``stacks.lock_generation`` counts acquisitions): the fencing
  token that every write of the stack is checked against.
* ``audit`` - lock take-overs, forced unlocks, forgotten stacks, provider records
  imported from an older cloudtmpl's files.

Per target, not per stack: ``provider_records`` - what a provider keeps of a cloud
that the cloud cannot say itself (the libcloud attachment records), namespace and
key -> JSON value; not fenced by a stack's lock (they describe the cloud), read
without any lock.

Secrets: the store never receives clear-text secrets.  Hidden parameters,
generated passwords and private keys are redacted by the engine *before*
anything reaches ``put_resource``, ``set_outputs`` or ``journal``; the store
writes what it is given and does not try to detect secrets itself.  The database
file is nevertheless created with mode 0600 in a 0700 directory.

How it is built (each module's docstring has the details):

* :mod:`.core` - every public method is one short transaction; writers
  serialize against all other writers of the stack (on SQLite: all writers), in
  this process and in others; one connection per thread, so a store may be shared by the engine's
  worker threads; failures of the database itself (a damaged file, a read-only
  file or directory, a full disk, an I/O error, a lost connection) are
  diagnostics with a hint (``state-corrupt``, ``state-readonly``, ``state-full``,
  ``state-io``, ``state-connect``, ...); fencing: a write of a stack checks,
  inside its own write transaction, that the lock row still carries the
  generation its writer got (:class:`LockLost` otherwise), so a holder whose lock
  was taken over or force-removed writes nothing more, whether or not it noticed.
* :mod:`.lock` - the stack lock: a ``locks`` row claimed in a write transaction
  plus a held lock that ends by itself when its holder ends; a row whose held
  lock is free is stale, whatever pid or host it names, and is taken over with an
  audit line.
* :mod:`.journal` - runs, the step journal, open intents, the audit trail.
* :mod:`.provider_records` - the providers' records (writers of a target's records queue).
* :mod:`.store` - :class:`StateStore` itself: opening by URL, stacks, resources,
  outputs, parameter digests, the template.
* :mod:`.sqlite` - the default backend (``sqlite:///`` URLs or plain paths):
  WAL, ``BEGIN IMMEDIATE``, the lock file (an exclusive ``flock`` on
  ``state.db.locks/<stack>.lock``) as the held lock.
* :mod:`.postgres` - a team's shared state (``postgresql://`` or ``postgres://``
  URLs, psycopg 3): advisory locks for writers and for the held lock, a session
  of its own per held lock; no message, hint or :attr:`StateStore.description`
  ever contains the password.
* :mod:`.backend` - the small protocol the two backends implement; the SQL is
  plain SQL both accept.  :mod:`.schema` - the tables and their migrations.
  :mod:`.records` - the values and errors.
"""

from cloudtmpl.state.records import (
    AuditEntry,
    JournalEntry,
    LockInfo,
    LockLost,
    Operation,
    Phase,
    ResourceRecord,
    RunInfo,
    RunStatus,
    StackLocked,
    StackSummary,
    StateError,
    StateValueError,
)
from cloudtmpl.state.schema import MIGRATIONS, SCHEMA_VERSION
from cloudtmpl.state.sqlite import default_state_url, project_dir
from cloudtmpl.state.store import StateStore

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AuditEntry",
    "JournalEntry",
    "LockInfo",
    "LockLost",
    "Operation",
    "Phase",
    "ResourceRecord",
    "RunInfo",
    "RunStatus",
    "StackLocked",
    "StackSummary",
    "StateError",
    "StateStore",
    "StateValueError",
    "default_state_url",
    "project_dir",
]
