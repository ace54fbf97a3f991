"""The interactive explorer: ``whiteboxdl app`` (Gradio).

``handlers`` holds the pure request handlers (plain inputs -> images and tables), ``ui`` the
layout, ``models`` the shared, load-once model registry, ``inputs`` input validation.
Gradio is imported only by ``ui``.
"""
