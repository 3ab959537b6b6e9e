"""Stand-in for hosted Colab's ``google.colab`` package: only what the colab tunnel provider uses.

Put ``tests/standins/colab`` on sys.path (only in the tests that need it):
``google.colab.output.eval_js`` then answers ``google.colab.kernel.proxyPort(PORT)``.
"""
