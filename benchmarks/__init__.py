"""colabmagic's benchmarks: time to a working login, desktop, download or verified sync, beside the hand recipes.

``python -m benchmarks`` (or ``make bench``) runs each row's colabmagic path
and the recipe it replaces side by side on this machine, several times, and
prints one table of ratios (recipe time / colabmagic time: above 1.0x
colabmagic is faster). Everything runs on loopback with COLABMAGIC_OFFLINE=1
under a throwaway COLABMAGIC_HOME.
"""
