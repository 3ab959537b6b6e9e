"""Stand-ins for what this machine cannot have (provider agents and services, hosted Colab and
Kaggle APIs, the Drive API, an old rclone), each written from the real project's source.

Each module or executable names, in its opening comment or docstring, the real project's
file and version whose behaviour it follows (log lines, errors, timeouts, failures).

The executables here run as programs (they put this folder on their own path); the tests
import the in-process parts as ``standins.<module>``.
"""
