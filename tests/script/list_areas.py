#!/usr/bin/env python3
"""Prints the area directories under tests/script/cases (one per line) for
tests/script/meson.build, which registers one TAP test per area."""
import os
import sys

root = sys.argv[1]
for name in sorted(os.listdir(root)):
    if os.path.isdir(os.path.join(root, name)) and not name.startswith("."):
        print(name)
