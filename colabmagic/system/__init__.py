"""The machinery every magic rests on: paths, processes, probes, the installer, secrets."""
