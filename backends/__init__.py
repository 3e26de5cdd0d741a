"""One package per framework, each with the same modules: model.py, optim.py, trainer.py, reference.py.

Nothing here is imported until :func:`bench.backend.load_backend` asks for a backend by name, so a machine with
only one framework installed can still run that framework's configs.
"""
