"""whiteboxdl.semantic"""
