"""litlab: the intro lesson's learning loop as a config-driven Lightning template."""
