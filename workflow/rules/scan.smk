def scan_targets():
    """Final outputs of this module for rule all."""
    return []
