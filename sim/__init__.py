"""Botify's listener simulator: a seeded world of tracks and listeners, the course's user
model as a Gymnasium environment, the agents that drive it and the runner.

Only this package reads a world's ``hidden/`` folder; it imports nothing from
``service/`` or ``training/`` (the in-process agent loads a recommender factory by its
``module:function`` name at run time).
"""
