"""The state store: a per-stack cache of what was applied, a step journal and a lock.

State is a cache and a journal, never the only record of what exists: the cloud
is the source of truth and every resource carries ownership tags or a
deterministic name, by which discovery finds it.  Losing the state costs a discovery pass,
not resources.

What the store holds, per stack (:mod:`.store` unless named):

* ``resources`` - address -> :class:`ResourceRecord` (target, region, physical
  id, last-applied spec and its hash, attributes).  Every change bumps the
  stack's ``serial``; a plan file records the serial it saw.
* ``outputs`` - output name -> JSON value, in the template's order.
* ``stacks.template`` - the template file the stack was last applied from (its path
  relative to the project directory, POSIX form), so that applying another file
  onto the stack is noticed; NULL for a stack written before schema 3.
* ``runs`` and ``journal`` (:mod:`.journal`) - each apply/destroy is a run; every
  step is written *before* it starts (phase ``intent``) and *after* it ends
  (``done`` or ``failed``).  Each journal call commits before it returns, so
  after a kill at any instant :meth:`StateStore.open_intents` tells the next run
  which steps may be half-done and must be looked up in the cloud before being
  retried.
* ``locks`` (:mod:`.lock`) - one apply/destroy per stack at a time; a second one
  fails at once with :class:`StackLocked` naming the holder.  The row carries the
  lock's generation (``stacks.lock_generation`` counts acquisitions): the fencing
  token that every write of the stack is checked against.
* ``audit`` - lock take-overs, forced unlocks, forgotten stacks.

Secrets: the store never receives clear-text secrets.  Hidden parameters,
generated passwords and private keys are redacted by the engine *before*
anything reaches ``put_resource``, ``set_outputs`` or ``journal``; the store
writes what it is given and does not try to detect secrets itself.  The database
file is nevertheless created with mode 0600 in a 0700 directory.

Concurrency (:mod:`.core`):

* Every public method is one short transaction.  Writes use a write
  transaction that serializes against all other writers, in this process and in
  others (``BEGIN IMMEDIATE`` in SQLite, WAL mode, a busy timeout).
* Thread safety: the store keeps one connection per thread (created on first
  use, all closed by :meth:`StateStore.close`).  In addition a per-store mutex
  serializes write transactions inside one process, so threads queue in Python
  instead of spinning in SQLite's busy handler; readers are never blocked (WAL).
  A store may therefore be shared by the engine's worker threads.
* The lock (:meth:`StateStore.acquire_lock`) is a row in ``locks`` claimed in a
  write transaction, so two processes cannot both take it, under a lock that the
  kernel drops when its holder ends (an exclusive ``flock`` on
  ``state.db.locks/<stack>.lock``, held open for as long as the lock is held).
  A row whose lock file nobody holds is stale - its process ended, however and
  wherever (a PID namespace records pid 1) - and is taken over automatically,
  with an audit line.
* Fencing: a write of a stack checks, inside its own write transaction, that
  the lock row still carries the generation its writer got (:class:`LockLost`
  otherwise), and a store that holds no lock may not write a stack someone else
  has locked.  A holder whose lock was taken over or force-removed writes
  nothing more, whether or not it noticed (:meth:`StateStore.check_lock`).
* Failures of the database itself (a damaged file, a read-only file or
  directory, a full disk, an I/O error) are diagnostics with a hint
  (``state-corrupt``, ``state-readonly``, ``state-full``, ``state-io``).

PostgreSQL (``postgresql://`` or ``postgres://`` URLs, psycopg 3; :mod:`.postgres`):

* Same tables and SQL.  Write transactions are READ COMMITTED; writers of one
  stack queue on a transaction-level advisory lock keyed by the stack
  (``pg_advisory_xact_lock``), which is what keeps the journal's ``seq``
  (``MAX(seq) + 1``) and the outputs' delete-and-insert correct across
  processes.  Schema creation and migration take the same kind of lock on a
  key of their own, so two processes opening a new database at once are safe.
  Reads run in REPEATABLE READ READ ONLY transactions (one snapshot).
* The stack lock is a *session-level* advisory lock (``pg_try_advisory_lock``
  on a 64-bit hash of the stack name) held on a connection of its own for as
  long as the lock is held, plus the ``locks`` row naming holder, pid, host and
  since.  The server drops the advisory lock when that session ends - the
  holder released it, closed the store, or died (SIGKILL closes its socket; a
  vanished host is noticed through TCP keepalives) - so liveness does not
  depend on pids: a row whose advisory lock is free is stale, whatever host
  wrote it, and is taken over with an audit line.  Taking, releasing and
  force-removing the lock all run under the stack's transaction-level lock, so
  nobody ever sees the advisory lock held without its row.  A forced unlock
  also ends the holder's lock session (``pg_terminate_backend``).  A holder
  whose session ended (terminated, or a broken connection) notices before its
  next step; the fencing token keeps it from writing once another run took the
  lock over.
* Connection failures are ``state-connect`` diagnostics; no message, hint or
  :attr:`StateStore.description` ever contains the password.

Portability: the SQL is plain SQL that SQLite (>= 3.35) and PostgreSQL both
accept (``INSERT ... ON CONFLICT``, ``RETURNING``, ``?`` placeholders translated
by the backend).  Everything database-specific lives in the two backends,
:mod:`.sqlite` and :mod:`.postgres`, behind the small protocol of
:mod:`.backend`; the tables and their migrations are in :mod:`.schema`, the
values and errors in :mod:`.records`.
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
