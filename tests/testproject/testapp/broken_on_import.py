"""A module that fails to import with something other than ImportError (a reload must survive it)."""

raise RuntimeError("broken_on_import: failing on purpose")
