"""Resolve a loaded template into desired resources (load -> resolve -> discover -> plan).

:func:`resolve` checks the template's shape, merges parameter values from
environments and ``-p``, converts and constrains them as Heat does, evaluates
conditions, checks every resource against its type schema and every function
reference, partially evaluates properties (parameters, conditions and ``if``
are done; ``get_resource``/``get_attr`` stay as function nodes) and chooses a
placement per resource.  Every problem found is reported in one
:class:`~cloudtmpl.diagnostics.DiagnosticError`.

Heat behaviours kept:

* environments merge in order; their ``parameters`` override (an undeclared
  name is an error), their ``parameter_defaults`` replace template defaults
  (undeclared names are ignored); each file's ``parameter_merge_strategies``
  (``overwrite``, ``merge``, ``deep_merge``, ``default``) say how a value joins
  the earlier files' value; ``-p`` values override everything;
* ``resource_registry`` maps types to types (exact, ``Prefix*`` wildcards,
  per-resource ``resources:`` entries); a type mapped to a template file is
  kept in :class:`ResourceRegistry` and reported ``unsupported`` for now;
* parameters: every constraint (``modulo`` from 2017-02-24), constraints that
  do not apply to the type are ``invalid-constraint``, ``custom_constraint``
  values are collected for the engine, hidden values never appear in a
  diagnostic;
* ``get_file`` reads through :attr:`ResolveOptions.read_file`, relative to the file
  naming it (``../`` allowed; the reader confines reads to the project directory,
  :mod:`cloudtmpl.sourcefiles`); every file read is in :attr:`ResolvedStack.files`;
* features of a later ``heat_template_version`` are ``feature-not-available``
  (functions: ``function-not-available``, see :mod:`cloudtmpl.functions`);
* ``validate`` mode is Heat's template-validate: a parameter without a value is
  not an error (its value is UNKNOWN), but every value given is checked, and a
  missing provider target/region is not an error either (validate has no
  ``--target``); unknown target names still are;
* pseudo parameters ``OS::stack_name`` (the stack name), ``OS::stack_id`` and
  ``OS::project_id`` (UNKNOWN until apply);
* a resource or output whose ``condition`` is false is dropped; a property or
  output that still references a dropped resource is an error.
"""

from cloudtmpl.resolve.core import resolve, template_hash
from cloudtmpl.resolve.parameters import convert_parameter
from cloudtmpl.resolve.ssh import ssh_problems, with_ssh_defaults
from cloudtmpl.resolve.values import (
    PSEUDO_PARAMETERS,
    CustomConstraint,
    Mode,
    ParseCache,
    RegistryEntry,
    ResolvedStack,
    ResolveOptions,
    ResourceRegistry,
)

__all__ = [
    "PSEUDO_PARAMETERS",
    "CustomConstraint",
    "Mode",
    "ParseCache",
    "RegistryEntry",
    "ResolveOptions",
    "ResolvedStack",
    "ResourceRegistry",
    "convert_parameter",
    "resolve",
    "ssh_problems",
    "template_hash",
    "with_ssh_defaults",
]
