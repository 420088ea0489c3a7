"""csvimport: bulk user import for unified-communications partner portals."""

__version__ = "0.1.0"
