"""whiteboxdl.stability"""
