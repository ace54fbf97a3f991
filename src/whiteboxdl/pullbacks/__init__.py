"""whiteboxdl.pullbacks"""
