"""Everything that runs training. The only package that imports ``distributed``."""
