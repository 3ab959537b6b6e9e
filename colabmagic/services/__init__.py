"""Plain-Python services behind the magics: sshd, tunnels, vnc, aria2, drive (no IPython here)."""
