"""Helpers shared by the test folders (homes, runtimes, stand-in clients, per-domain helpers).

Imported as ``support.<module>``: pytest puts ``tests/`` (the root conftest's folder) on
``sys.path``. No helper is reached through a path insert; only the stand-ins that play
installed packages (``google.colab``, ``kaggle_secrets``) are put on the path, per test,
with ``monkeypatch.syspath_prepend``.
"""
