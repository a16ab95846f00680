"""Provider adapters: one per cloud family, the only code that touches libcloud."""
