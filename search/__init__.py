"""Running the search: datasets and the cached proxy loader, the proxy trainer (one trial), the
Ray Tune + Optuna orchestration, run folders and resume, and the ``mdsearch`` command line.

Heavy modules (torch, Ray) are imported by the submodules that need them, not here.
"""
