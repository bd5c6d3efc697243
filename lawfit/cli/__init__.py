"""The ``lawfit`` command line: one module per command group; ``lawfit.cli.main:main`` is the entry
point (see :mod:`lawfit.cli.main`)."""
