"""Stand-in for hosted Colab's ``google.colab`` package: only what colabmagic uses.

Put ``tests/standins/colab`` on sys.path (only in the tests that need it):
``google.colab.output.eval_js`` then answers ``google.colab.kernel.proxyPort(PORT)``,
``google.colab.userdata.get`` plays the Secrets panel and ``google.colab.drive``
mounts a local "Drive". Each module names the colabtools source it follows.
"""
