"""Demo helpers the quickstart notebook and the tests share: local servers and swarms on loopback."""
