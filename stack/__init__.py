"""The local single-node stack: real servers on 127.0.0.1 for development, tests and the demo.

Not part of the product. Every server comes from a registry these machines reach (Maven Central,
PyPI, Debian) and runs as a plain process this package owns: a pid file, a log file and a health
check under one git-ignored state folder (``.stack/`` in the checkout, or ``$KAPPA_STACK__HOME``).
``python -m stack up|status|down|clean`` is the command line; the Makefile calls it.
"""
