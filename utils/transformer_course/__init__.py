"""transformer_course: reference implementations, grading helpers and tools for the
notebook course "From RNNs to CLIP".

Modules are organised by concept; each module's docstring names the notebooks that
teach it.  The README maps notebooks to modules.
"""
__version__ = "0.1.0"
