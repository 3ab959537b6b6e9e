"""Stand-ins for what this machine cannot have (provider agents and services, hosted Colab and
Kaggle APIs, the Drive API, an old rclone), each written from the real project's source.

The executables here run as programs (they put this folder on their own path); the tests
import the in-process parts as ``standins.<module>``.
"""
