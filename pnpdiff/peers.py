"""Moved to :mod:`pnpdiff.config.peers` (issue 26); a temporary re-export until the importers move."""

from pnpdiff.config.peers import DIFFPIR_KEYS, DPS_KEYS, PeerLoader, Translation, load_yaml, translate

__all__ = ["PeerLoader", "Translation", "load_yaml", "translate", "DPS_KEYS", "DIFFPIR_KEYS"]
