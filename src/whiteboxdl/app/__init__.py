"""whiteboxdl.app"""
