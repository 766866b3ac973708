"""Host tools for posguard (CPython only): simulator, virtual board, deploy, receipt renderer, journal dump."""
