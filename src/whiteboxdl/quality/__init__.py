"""whiteboxdl.quality"""
