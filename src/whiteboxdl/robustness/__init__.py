"""whiteboxdl.robustness"""
