"""Helpers shared by the test folders (homes, runtimes, stand-in clients, per-domain helpers).

Imported as ``support.<module>``: pytest puts ``tests/`` (the root conftest's folder) on
``sys.path``; no test inserts paths of its own.
"""
